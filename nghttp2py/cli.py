"""The command line: turn arguments into an :class:`~nghttp2py.HTTP2Server` and run it.

``python -m nghttp2py MODULE:Handler`` serves a
:class:`~nghttp2py.BaseRequestHandler` subclass (see docs/cli.md), and
:func:`serve` gives a script the same options for a handler class of its
own, as the examples do. Both print one line once listening::

    serving on http://127.0.0.1:8080/ (try: nghttp -nv http://127.0.0.1:8080/)

then serve until SIGINT or SIGTERM (a graceful shutdown; a second signal
closes every connection at once) and exit with status 0. Bad input (a module
or attribute that is not there, a class that is not a handler, a certificate
that cannot be read, an address that cannot be bound) is one line on stderr
and exit status 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Sequence

from . import loops
from .handler import BaseRequestHandler
from .server import HTTP2Server

__all__ = ["DEFAULT_BIND", "CommandLineError", "load_handler", "main", "parse_bind", "serve"]

DEFAULT_BIND = "127.0.0.1:8080"

_LOG_LEVELS = ("debug", "info", "warning", "error")


class CommandLineError(Exception):
    """Bad input on the command line: reported as one line, exit status 1."""


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every interface) as ``(host, port)``.

    Raises ``argparse.ArgumentTypeError`` for anything else.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT, [IPv6 address]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise argparse.ArgumentTypeError(f"{text!r}: only an IPv6 address goes in brackets")
    elif ":" in host:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{port_text}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the port must be a number from 0 to 65535 (0 picks a free one)")
    return host, int(port_text)


def load_handler(spec: str) -> type[BaseRequestHandler]:
    """The :class:`BaseRequestHandler` subclass that ``MODULE:ATTRIBUTE`` names.

    ``ATTRIBUTE`` may be dotted (``module:Outer.Handler``). Raises
    :exc:`CommandLineError` when the module or the attribute is not there or
    is not a handler class. An exception raised by the module's own code while
    it is imported propagates: its traceback is what tells the author why.
    """
    module_name, colon, attribute = spec.partition(":")
    if not (colon and _dotted_name(module_name) and _dotted_name(attribute)):
        raise CommandLineError(
            f"{spec!r} is not MODULE:ATTRIBUTE (e.g. examples.hello:Handler)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise  # the module was found; something it imports was not
        raise CommandLineError(
            f"no module named {missing!r} (looked in the current directory and sys.path)"
        ) from None
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise CommandLineError(f"module {module_name!r} has no attribute {attribute!r}"
                                   ) from None
    if not (isinstance(found, type) and issubclass(found, BaseRequestHandler)):
        what = f"the class {found.__name__}" if isinstance(found, type) else \
            f"a {type(found).__name__}"
        raise CommandLineError(
            f"{spec} is {what}, not a subclass of nghttp2py.BaseRequestHandler")
    return found


def serve(handler_class: type[BaseRequestHandler], argv: Sequence[str] | None = None, *,
          description: str | None = None, bind: str = DEFAULT_BIND,
          try_command: str = "nghttp -nv {url}") -> None:
    """Serve ``handler_class`` with the options of ``python -m nghttp2py`` (``--help``).

    ``argv`` defaults to ``sys.argv[1:]``; ``bind`` is the default of
    ``--bind``. ``try_command`` is printed after the URL, with ``{url}``
    replaced. Returns after a graceful shutdown; on bad input, prints one
    line and exits with status 1.
    """
    parser = _parser(description=description, bind=bind)
    options = parser.parse_args(argv)
    status = _run(parser, options, lambda: handler_class, try_command)
    if status:
        sys.exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nghttp2py``: the exit status."""
    parser = _parser(
        prog="python -m nghttp2py",
        description="Serve a request handler class (a subclass of nghttp2py.BaseRequestHandler)\n"
                    "over HTTP/2 and HTTP/1.1 until Ctrl-C or SIGTERM.",
        bind=DEFAULT_BIND,
        epilog="examples:\n"
               "  python -m nghttp2py examples.hello:Handler\n"
               "  python -m nghttp2py examples.hello:Handler --bind :8443 \\\n"
               "      --certfile server.crt --keyfile server.key --access-log\n\n"
               "The current directory is on the module path. The environment variable\n"
               f"{loops.LOOP_ENVIRONMENT_VARIABLE} names the event loop when --loop is not given.")
    parser.add_argument("app", metavar="MODULE:ATTRIBUTE",
                        help="the handler class, e.g. examples.hello:Handler")
    options = parser.parse_args(argv)
    return _run(parser, options, lambda: load_handler(options.app), "nghttp -nv {url}")


def _parser(*, bind: str, prog: str | None = None, description: str | None = None,
            epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", metavar="HOST:PORT", type=parse_bind, default=parse_bind(bind),
                        help=f"address to listen on: HOST:PORT, [IPv6 address]:PORT, or "
                             f":PORT for every interface; port 0 picks a free one "
                             f"(default {bind})")
    parser.add_argument("--certfile", metavar="FILE",
                        help="PEM certificate (chain): serve over TLS, with ALPN h2 and "
                             "http/1.1; without it, cleartext HTTP/2 (h2c) and HTTP/1.1")
    parser.add_argument("--keyfile", metavar="FILE",
                        help="PEM private key of --certfile, if it is not in that file")
    parser.add_argument("--access-log", action="store_true",
                        help="log one line per request to stderr (common log format)")
    parser.add_argument("--no-early-hints", dest="early_hints", action="store_false",
                        help="do not answer push() to a client that refuses server push "
                             "(every current browser) with 103 Early Hints preload links")
    parser.add_argument("--no-http1", dest="http1", action="store_false",
                        help="serve HTTP/2 only: no HTTP/1.1 on the same port (a TLS client "
                             "without h2 is closed, a cleartext HTTP/1 request gets 505)")
    parser.add_argument("--loop", choices=loops.LOOPS,
                        help=f"event loop (default: ${loops.LOOP_ENVIRONMENT_VARIABLE}, "
                             "else asyncio)")
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="info",
                        help="log messages at this level and above to stderr (default info)")
    return parser


def _run(parser: argparse.ArgumentParser, options: argparse.Namespace,
         load: Callable[[], type[BaseRequestHandler]], try_command: str) -> int:
    """Build the server that ``options`` describe and serve; the exit status."""
    if options.keyfile and not options.certfile:
        parser.error("--keyfile needs --certfile")
    try:
        handler_class = load()
        context = _ssl_context(options.certfile, options.keyfile)
        try:
            loops.loop_factory(options.loop)
        except (ValueError, RuntimeError) as exc:  # a bad $NGHTTP2PY_LOOP, uvloop missing
            raise CommandLineError(str(exc)) from None
        _configure_logging(options.log_level, options.access_log)
        server = HTTP2Server(options.bind, handler_class, ssl=context,
                             access_log=options.access_log,
                             push_early_hints=options.early_hints, http1=options.http1)
        loops.run(_serve(server, try_command), options.loop)
    except CommandLineError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before serve() handles the signals itself
        return 130
    return 0


async def _serve(server: HTTP2Server, try_command: str) -> None:
    try:
        await server.start()
    except OSError as exc:
        host, port = server.address
        raise CommandLineError(f"cannot listen on {_host_port(host, port)}: {_reason(exc)}"
                               ) from None

    def ready() -> None:
        host = server.address[0]
        if host in ("", "0.0.0.0", "::"):
            host = "localhost"  # every interface: localhost is one of them
        url = f"{'https' if server.ssl else 'http'}://{_host_port(host, server.port)}/"
        print(f"serving on {url} (try: {try_command.format(url=url)})", flush=True)

    await server.serve(ready=ready)


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """A server context holding the certificate, or None for cleartext."""
    if not certfile:
        return None
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise CommandLineError(f"cannot read {option} {path}: {_reason(exc)}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError:
        with open(certfile, "rb") as file:
            has_certificate = b"-----BEGIN CERTIFICATE-----" in file.read()
        if not has_certificate:
            raise CommandLineError(f"--certfile {certfile} holds no PEM certificate") from None
        raise CommandLineError(
            f"no PEM private key matching the certificate in {keyfile or certfile}"
            + ("" if keyfile else " (give it with --keyfile)")) from None
    return context


def _configure_logging(level: str, access_log: bool) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if access_log:
        # The access lines carry their own timestamp: print them as they are.
        access = logging.getLogger("nghttp2py.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def _dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: OSError) -> str:
    """The system's words for an OSError, without Python's decoration."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)
