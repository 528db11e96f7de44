"""HPACK header compression (RFC 7541) on libnghttp2.

:class:`HDDeflater` compresses header lists into header blocks,
:class:`HDInflater` decompresses them, and both show their dynamic table as
a list of :class:`HDTableEntry`, which :func:`print_hd_table` prints. The
names are those of nghttp2's former Python binding.
"""
from __future__ import annotations

from collections.abc import Iterable

from nghttp2py._nghttp2 import HDDeflater, HDInflater, HDTableEntry

__all__ = [
    "DEFAULT_HEADER_TABLE_SIZE",
    "DEFLATE_MAX_HEADER_TABLE_SIZE",
    "HDDeflater",
    "HDInflater",
    "HDTableEntry",
    "print_hd_table",
]

#: The dynamic table size HTTP/2 starts with (SETTINGS_HEADER_TABLE_SIZE,
#: RFC 9113 section 6.5.2), and the one an :class:`HDInflater` starts with.
DEFAULT_HEADER_TABLE_SIZE = 4096

#: The default ``hd_table_bufsize_max`` of :class:`HDDeflater`: the most
#: dynamic table it uses, whatever larger size the peer allows.
DEFLATE_MAX_HEADER_TABLE_SIZE = 4096


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
