"""Where a server listens: ``HOST:PORT``, ``unix:PATH`` or an inherited ``fd://N``.

:func:`parse_bind` reads the text the command line and config files use;
:func:`listening_socket` opens (or adopts) the socket, with ``SO_REUSEPORT``
when several worker processes share one port.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass

__all__ = ["Bind", "BindError", "listening_socket", "parse_bind"]


class BindError(ValueError):
    """A bind that is not ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT``, ``unix:PATH`` or ``fd://N``."""


@dataclass(frozen=True)
class Bind:
    """One place to listen. ``kind`` is ``"tcp"`` (``host``, ``port``; host ``""``
    for every interface), ``"unix"`` (``path``) or ``"fd"`` (``fd``, a socket the
    process inherited, e.g. from systemd socket activation)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """The :class:`Bind` that ``text`` names; raises :exc:`BindError` otherwise."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise BindError(f"{text!r}: give the socket's path, e.g. unix:/run/app.sock")
        return Bind("unix", path=path)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not number.isdigit():
            raise BindError(f"{text!r}: fd:// takes a file descriptor number, e.g. fd://3")
        return Bind("fd", fd=int(number))
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise BindError(
            f"{text!r} is not HOST:PORT, [IPv6 address]:PORT, :PORT, unix:PATH or fd://N")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise BindError(f"{text!r}: only an IPv6 address goes in brackets")
    elif ":" in host:
        raise BindError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{port_text}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise BindError(f"{text!r}: the port must be a number from 0 to 65535 "
                        "(0 picks a free one)")
    return Bind("tcp", host=host, port=int(port_text))


def listening_socket(bind: Bind, *, backlog: int = 1024, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking socket for ``bind``. Raises OSError as the system does."""
    if bind.kind == "fd":
        sock = socket.socket(fileno=bind.fd)
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise OSError(f"fd://{bind.fd} is not a stream socket")
        sock.setblocking(False)
        return sock
    if bind.kind == "unix":
        _remove_stale_socket(bind.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(bind.path)
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock
    if bind.host:
        family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        if family == socket.AF_INET and not _is_ipv4(bind.host):
            family = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((bind.host, bind.port), family=family, backlog=backlog,
                                    reuse_port=reuse_port)
    elif socket.has_dualstack_ipv6():
        sock = socket.create_server(("", bind.port), family=socket.AF_INET6, backlog=backlog,
                                    dualstack_ipv6=True, reuse_port=reuse_port)
    else:
        sock = socket.create_server(("", bind.port), backlog=backlog, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a server that is gone would make bind() fail; a live one stays."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
            return
    raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
