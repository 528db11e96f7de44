"""HPACK header compression (RFC 7541) on libnghttp2.

:class:`HDDeflater` compresses header lists into header blocks,
:class:`HDInflater` decompresses them, and both show their dynamic table as
a list of :class:`HDTableEntry`, which :func:`print_hd_table` prints.
"""
from __future__ import annotations

from collections.abc import Iterable

from nghttp2py._nghttp2 import HDDeflater, HDInflater, HDTableEntry

__all__ = ["HDDeflater", "HDInflater", "HDTableEntry", "print_hd_table"]


def print_hd_table(hdtable: Iterable[HDTableEntry]) -> None:
    """Print a dynamic table, one entry a line, numbered from 1.

    ``s`` is the size the entry counts for in the table (RFC 7541 section
    4.1).  Bytes outside ASCII are shown as U+FFFD.
    """
    for idx, entry in enumerate(hdtable, 1):
        print("[{:3}] (s = {:3}) {}: {}".format(
            idx, entry.space,
            entry.name.decode("ascii", "replace"),
            entry.value.decode("ascii", "replace")))
