"""The command line: ``nghttp2py MODULE:APP`` (or ``python -m nghttp2py``) serves an app.

The app is an ASGI 3 application, a WSGI application or a
:class:`~nghttp2py.BaseRequestHandler` subclass (``--interface``, detected
when it can be told); see docs/cli.md. :func:`serve` gives a script the same
options for a handler class of its own, as the examples do. Once listening it
prints one line per address::

    serving on http://127.0.0.1:8080/ (try: nghttp -nv http://127.0.0.1:8080/)

then serves until SIGINT or SIGTERM (a graceful shutdown; a second signal
closes every connection at once) and exits with status 0. Bad input (a module
or attribute that is not there, something that is not an app, a certificate
that cannot be read, an address that cannot be bound, a bad config file, a
failed lifespan startup) is one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import loops
from .app_server import INTERFACES, AppServer, detect_interface
from .asgi import LifespanFailure
from .binds import Bind, BindError, listening_socket
from .binds import parse_bind as parse_any_bind
from .handler import BaseRequestHandler
from .proxy_headers import TrustedProxies
from .server import alt_svc_value
from .settings import ServerSettings, Timeouts
from .workers import Supervisor, WorkerSockets

__all__ = ["DEFAULT_BIND", "CommandLineError", "load_app", "load_handler", "main", "parse_bind",
           "serve"]

DEFAULT_BIND = "127.0.0.1:8080"

_LOG_LEVELS = ("debug", "info", "warning", "error")
# Timeouts that may be turned off with "none", and how an option holds that.
_OPTIONAL_TIMEOUTS = ("handshake", "settings_ack", "idle", "keepalive")
_TURNED_OFF = "none"


class CommandLineError(Exception):
    """Bad input on the command line: reported as one line, exit status 1."""


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every interface) as ``(host, port)``.

    Raises ``argparse.ArgumentTypeError`` for anything else (see
    :func:`nghttp2py.binds.parse_bind` for Unix sockets and inherited ones).
    """
    if text.startswith(("unix:", "fd://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return _bind_type(text).host, _bind_type(text).port


def _bind_type(text: str) -> Bind:
    try:
        return parse_any_bind(text)
    except BindError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _alt_svc(text: str) -> str:
    try:
        alt_svc_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def load_app(spec: str) -> object:
    """The object that ``MODULE:ATTRIBUTE`` names (the attribute may be dotted).

    Raises :exc:`CommandLineError` when the module or the attribute is not
    there. An exception raised by the module's own code while it is imported
    propagates: its traceback is what tells the author why.
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
    return found


def load_handler(spec: str) -> type[BaseRequestHandler]:
    """The :class:`BaseRequestHandler` subclass that ``MODULE:ATTRIBUTE`` names."""
    found = load_app(spec)
    if not (isinstance(found, type) and issubclass(found, BaseRequestHandler)):
        raise CommandLineError(f"{spec} is {_what(found)}, not a subclass of "
                               "nghttp2py.BaseRequestHandler")
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
    parser = _parser(description=description, bind=bind, app_argument=False)
    status = _main(parser, argv, lambda options: (handler_class, "handler"), bind, try_command)
    if status:
        sys.exit(status)


def main(argv: Sequence[str] | None = None, prog: str = "nghttp2py") -> int:
    """The ``nghttp2py`` console script (and ``python -m nghttp2py``): the exit status."""
    parser = _parser(
        prog=prog,
        description="Serve an ASGI app, a WSGI app or a request handler class (a subclass of\n"
                    "nghttp2py.BaseRequestHandler) over HTTP/2 and HTTP/1.1 until Ctrl-C or\n"
                    "SIGTERM.",
        bind=DEFAULT_BIND, app_argument=True,
        epilog="examples:\n"
               f"  {prog} examples.hello:Handler\n"
               f"  {prog} myproject.asgi:application --bind :8443 \\\n"
               "      --certfile server.crt --keyfile server.key --access-log -\n"
               f"  {prog} flask_app:app --interface wsgi --workers 4\n\n"
               "The current directory is on the module path. The environment variable\n"
               f"{loops.LOOP_ENVIRONMENT_VARIABLE} names the event loop when --loop is not given.")
    return _main(parser, argv, _load_from_options, DEFAULT_BIND, "nghttp -nv {url}")


def _load_from_options(options: argparse.Namespace) -> tuple[object, str]:
    if not options.app:
        raise CommandLineError("give the app as MODULE:ATTRIBUTE (or app = ... in --config)")
    app = load_app(options.app)
    if options.interface is not None:
        if options.interface == "handler" and not (
                isinstance(app, type) and issubclass(app, BaseRequestHandler)):
            raise CommandLineError(f"{options.app} is {_what(app)}, not a subclass of "
                                   "nghttp2py.BaseRequestHandler")
        if options.interface != "handler" and not callable(app):
            raise CommandLineError(f"{options.app} is {_what(app)}, not an "
                                   f"{options.interface.upper()} app")
        return app, options.interface
    try:
        return app, detect_interface(app)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError):
            raise CommandLineError(
                f"{options.app} is {_what(app)}, not an app (ASGI or WSGI) or a subclass of "
                "nghttp2py.BaseRequestHandler") from None
        raise CommandLineError(f"{options.app}: {exc}") from None


def _what(found: object) -> str:
    if isinstance(found, type):
        return f"the class {found.__name__}"
    return f"a {type(found).__name__}"


# -- options ------------------------------------------------------------------------------


def _parser(*, bind: str, app_argument: bool, prog: str | None = None,
            description: str | None = None, epilog: str | None = None
            ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if app_argument:
        parser.add_argument("app", metavar="MODULE:APP", nargs="?",
                            help="the app: an ASGI app, a WSGI app or a handler class, "
                                 "e.g. examples.hello:Handler")
        parser.add_argument("--interface", choices=INTERFACES,
                            help="what the app is (default: told from the app itself)")
    parser.add_argument("--bind", metavar="HOST:PORT", type=_bind_type, action="append",
                        help=f"address to listen on, repeatable: HOST:PORT, [IPv6 address]:PORT, "
                             f":PORT for every interface (port 0 picks a free one), "
                             f"unix:PATH, or fd://N for an inherited socket (default {bind})")
    parser.add_argument("--certfile", metavar="FILE",
                        help="PEM certificate (chain): serve over TLS, with ALPN h2 and "
                             "http/1.1; without it, cleartext HTTP/2 (h2c) and HTTP/1.1")
    parser.add_argument("--keyfile", metavar="FILE",
                        help="PEM private key of --certfile, if it is not in that file")
    parser.add_argument("--quic-bind", metavar="HOST:PORT", type=parse_bind, action="append",
                        help="serve HTTP/3 (QUIC) on this UDP address too, repeatable, with "
                             "--certfile's certificate (pip install nghttp2py[h3])")
    parser.add_argument("--quic-retry", action="store_true", default=None,
                        help="HTTP/3: validate each client's address with a QUIC Retry first")
    parser.add_argument("--ca-certs", metavar="FILE",
                        help="PEM CA certificates: ask clients for a certificate and verify it "
                             "against these (the app sees it in the tls extension)")
    parser.add_argument("--access-log", metavar="PATH", nargs="?", const="stderr",
                        help="log one line per request (common log format) to PATH, "
                             "'-' for stdout; alone, to stderr")
    parser.add_argument("--no-early-hints", dest="early_hints", action="store_false",
                        default=None,
                        help="do not answer push() to a client that refuses server push "
                             "(every current browser) with 103 Early Hints preload links")
    parser.add_argument("--no-http1", dest="http1", action="store_false",
                        help="serve HTTP/2 only: no HTTP/1.1 on the same port (a TLS client "
                             "without h2 is closed, a cleartext HTTP/1 request gets 505)")
    parser.add_argument("--alt-svc", metavar="VALUE", type=_alt_svc,
                        help="an Alt-Svc field value added to every HTTP/1.1 and HTTP/2 "
                             "response (and sent in an HTTP/2 ALTSVC frame), e.g. "
                             "'h3=\":443\"; ma=86400'")
    parser.add_argument("--loop", choices=loops.LOOPS,
                        help=f"event loop (default: ${loops.LOOP_ENVIRONMENT_VARIABLE}, "
                             "else asyncio)")
    parser.add_argument("--uvloop", dest="loop", action="store_const", const="uvloop",
                        help="the same as --loop uvloop")
    parser.add_argument("--no-uvloop", dest="loop", action="store_const", const="asyncio",
                        help="the same as --loop asyncio")
    parser.add_argument("--log-level", choices=_LOG_LEVELS,
                        help="log messages at this level and above to stderr (default info)")
    if app_argument:
        parser.add_argument("--root-path", metavar="PATH",
                            help="the path the app is mounted at behind a proxy "
                                 "(the ASGI root_path, WSGI SCRIPT_NAME)")
        parser.add_argument("--lifespan", choices=("auto", "on", "off"),
                            help="the ASGI lifespan protocol: auto (default: used if the app "
                                 "answers it), on (required), off")
        parser.add_argument("--wsgi-threads", metavar="N", type=_positive_int,
                            help="threads running WSGI requests (default 32)")
        parser.add_argument("--config", metavar="FILE.toml",
                            help="read options from a TOML file (keys are the long option "
                                 "names, e.g. bind = [\":8080\"]); the command line wins")
    if app_argument:
        websockets = parser.add_argument_group("WebSockets of ASGI apps (see docs/asgi.md)")
        websockets.add_argument("--ws-max-size", metavar="BYTES", type=_positive_int,
                                help="close a WebSocket with 1009 on a larger message "
                                     "(default 1 MiB)")
        websockets.add_argument("--ws-ping-interval", metavar="SECONDS", type=_positive_seconds,
                                help="send a ping this often (default: no pings)")
        websockets.add_argument("--ws-ping-timeout", metavar="SECONDS", type=_positive_seconds,
                                help="close with 1011 when a pong is this late (default 20)")
        websockets.add_argument("--no-ws-compression", dest="ws_compression",
                                action="store_false", default=None,
                                help="do not accept permessage-deflate")
    proxies = parser.add_argument_group("behind a proxy or load balancer")
    proxies.add_argument("--proxy-headers", action="store_true", default=None,
                         help="take the client address and scheme from X-Forwarded-For, "
                              "X-Forwarded-Proto or Forwarded, from trusted peers only")
    proxies.add_argument("--forwarded-allow-ips", metavar="LIST",
                         help="comma-separated addresses or networks whose proxy headers are "
                              "trusted, '*' for any (default 127.0.0.1,::1)")
    proxies.add_argument("--proxy-protocol", action="store_true", default=None,
                         help="every connection starts with a PROXY protocol v1/v2 header "
                              "(nghttpx, HAProxy): the client address comes from it")
    processes = parser.add_argument_group("processes")
    processes.add_argument("--workers", metavar="N", type=_positive_int,
                           help="serve from N worker processes sharing the listening sockets; "
                                "a dead worker is replaced, SIGHUP replaces them one by one "
                                "(default 1: no workers, one process)")
    processes.add_argument("--max-requests", metavar="N", type=_positive_int,
                           help="a worker that has served N requests (ASGI/WSGI) drains and "
                                "is replaced")
    processes.add_argument("--max-requests-jitter", metavar="N", type=int,
                           help="add a random 0..N to --max-requests per worker, so that they "
                                "are not replaced all at once")
    processes.add_argument("--reload", action="store_true", default=None,
                           help="development: restart when a .py file under the current "
                                "directory changes")
    processes.add_argument("--reuse-port", action="store_true", default=None,
                           help="open TCP binds with SO_REUSEPORT: with --workers, a socket "
                                "per worker, connections spread evenly by the kernel (see "
                                "docs/deploy.md for reloads)")
    processes.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    processes.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    settings = parser.add_argument_group("HTTP/2 settings (see nghttp2py.ServerSettings)")
    for field in dataclasses.fields(ServerSettings):
        settings.add_argument(f"--{field.name.replace('_', '-')}", metavar="N", type=int,
                              help=f"default {field.default}" if field.default is not None
                              else "default: no limit")
    timeouts = parser.add_argument_group("timeouts in seconds (see nghttp2py.Timeouts)")
    for field in dataclasses.fields(Timeouts):
        turn_off = ", 'none' turns it off" if field.name in _OPTIONAL_TIMEOUTS else ""
        timeouts.add_argument(f"--timeout-{field.name.replace('_', '-')}", metavar="SECONDS",
                              dest=f"timeout_{field.name}",
                              type=_seconds if turn_off else float,
                              help=f"default {field.default}{turn_off}")
    timeouts.add_argument("--shutdown-timeout", metavar="SECONDS", type=float,
                          help="how long a graceful shutdown waits for busy connections "
                               "(default 30)")
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def _seconds(text: str) -> float | str:
    if text.lower() == "none":
        return _TURNED_OFF
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds or 'none'"
                                         ) from None


def _read_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The options a TOML file sets, checked like the command line's."""
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python < 3.11
        try:
            tomllib = importlib.import_module("tomli")
        except ImportError:
            raise CommandLineError("--config needs Python 3.11 or the tomli package") from None
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise CommandLineError(f"cannot read --config {path}: {_reason(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CommandLineError(f"--config {path} is not TOML: {exc}") from None
    actions = {action.dest: action for action in parser._actions}
    values: dict[str, Any] = {}
    for key, value in table.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("help", "config"):
            raise CommandLineError(f"--config {path}: unknown option {key!r}")
        values[dest] = _config_value(path, key, action, value)
    return values


def _config_value(path: str, key: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise CommandLineError(f"--config {path}: {key} is true or false, not {value!r}")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    items = value if isinstance(action, argparse._AppendAction) else [value]
    if isinstance(action, argparse._AppendAction) and isinstance(value, str):
        items = [value]
    converted = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise CommandLineError(f"--config {path}: {key} = {item!r} is not a valid value")
        convert: Callable[[str], Any] = action.type if callable(action.type) else str
        try:
            item = convert(str(item))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise CommandLineError(f"--config {path}: {key}: {exc}") from None
        if action.choices is not None and item not in action.choices:
            raise CommandLineError(f"--config {path}: {key} is one of "
                                   f"{', '.join(map(str, action.choices))}, not {item!r}")
        converted.append(item)
    return converted if isinstance(action, argparse._AppendAction) else converted[0]


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    options = parser.parse_args(argv)
    if getattr(options, "config", None):
        values = _read_config(options.config, parser)
        if options.bind:
            values.pop("bind", None)  # the command line's binds replace the file's
        parser.set_defaults(**values)
        options = parser.parse_args(argv)
    return options


# -- running --------------------------------------------------------------------------------


def _main(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
          load: Callable[[argparse.Namespace], tuple[object, str]], default_bind: str,
          try_command: str) -> int:
    """Parse, build the server the options describe, serve; the exit status."""
    try:
        options = _parse(parser, argv)
        if options.keyfile and not options.certfile:
            parser.error("--keyfile needs --certfile")
        if options.ca_certs and not options.certfile:
            parser.error("--ca-certs needs --certfile")
        if options.quic_bind and not options.certfile:
            parser.error("--quic-bind needs --certfile (QUIC is always TLS)")
        if options.quic_bind and (options.workers or 1) > 1:
            parser.error("--quic-bind serves from one process: it cannot go with --workers")
        app, interface = load(options)
        context = _ssl_context(options.certfile, options.keyfile, options.ca_certs)
        try:
            loops.loop_factory(options.loop)
        except (ValueError, RuntimeError) as exc:  # a bad $NGHTTP2PY_LOOP, uvloop missing
            raise CommandLineError(str(exc)) from None
        settings, timeouts = _settings(options)
        _configure_logging(options.log_level or "info", options.access_log)
        binds = options.bind or [parse_any_bind(default_bind)]
        if ((options.workers or 1) > 1 or options.reload) and options.ready_fd is None:
            return _supervise(options, argv, binds, "https" if context else "http",
                              try_command)
        server = AppServer(
            app, binds, interface=interface, ssl=context,
            root_path=getattr(options, "root_path", None) or "",
            lifespan=getattr(options, "lifespan", None) or "auto",
            settings=settings, timeouts=timeouts, access_log=options.access_log is not None,
            push_early_hints=options.early_hints is not False,
            http1=options.http1 is not False,
            shutdown_timeout=options.shutdown_timeout or 30.0,
            wsgi_threads=getattr(options, "wsgi_threads", None) or 32,
            sockets=_open_sockets(binds, reuse_port=bool(options.reuse_port)),
            max_requests=options.max_requests,
            max_requests_jitter=options.max_requests_jitter or 0,
            multiprocess=options.parent_pid is not None,
            proxy_headers=bool(options.proxy_headers),
            forwarded_allow_ips=_trusted(options.forwarded_allow_ips),
            proxy_protocol=bool(options.proxy_protocol),
            quic_bind=options.quic_bind or (), quic_certfile=options.certfile,
            quic_keyfile=options.keyfile, quic_retry=bool(options.quic_retry),
            websocket_options=_websocket_options(options), alt_svc=options.alt_svc)
        loops.run(_serve(server, try_command, options.ready_fd, options.parent_pid),
                  options.loop)
    except CommandLineError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before serve() handles the signals itself
        return 130
    return 0


def _settings(options: argparse.Namespace) -> tuple[ServerSettings, Timeouts]:
    given = {field.name: getattr(options, field.name)
             for field in dataclasses.fields(ServerSettings)
             if getattr(options, field.name) is not None}
    timeouts: dict[str, Any] = {}
    for field in dataclasses.fields(Timeouts):
        value = getattr(options, f"timeout_{field.name}")
        if value is not None:
            timeouts[field.name] = None if value == _TURNED_OFF else value
    try:
        return ServerSettings(**given), Timeouts(**timeouts)
    except ValueError as exc:
        raise CommandLineError(str(exc)) from None


def _websocket_options(options: argparse.Namespace) -> dict[str, Any]:
    """The WebSocket.accept options the --ws-* options set."""
    names = {"ws_max_size": "max_message_size", "ws_ping_interval": "ping_interval",
             "ws_ping_timeout": "ping_timeout", "ws_compression": "compression"}
    return {name: getattr(options, option) for option, name in names.items()
            if getattr(options, option, None) is not None}


def _trusted(text: str | None) -> str:
    value = text or "127.0.0.1,::1"
    try:
        TrustedProxies(value)
    except ValueError as exc:
        raise CommandLineError(f"--forwarded-allow-ips: {exc}") from None
    return value


def _open_sockets(binds: list[Bind], reuse_port: bool = False) -> list[socket.socket]:
    """Every bind's listening socket, so that one that cannot be had is bad input."""
    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            try:
                sockets.append(listening_socket(bind, reuse_port=reuse_port))
            except OSError as exc:
                raise CommandLineError(f"cannot listen on {bind}: {_reason(exc)}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def _serve(server: AppServer, try_command: str, ready_fd: int | None = None,
                 parent_pid: int | None = None) -> None:
    try:
        await server.start()
    except LifespanFailure as exc:
        raise CommandLineError(f"the app's lifespan startup failed: {exc}") from None
    except OSError as exc:  # a --quic-bind address (the TCP ones are open already)
        raise CommandLineError(f"cannot listen for HTTP/3: {_reason(exc)}") from None
    except RuntimeError as exc:  # aioquic is not installed
        raise CommandLineError(str(exc)) from None

    def ready() -> None:
        if ready_fd is not None:  # a worker: its supervisor prints the addresses
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        else:
            _print_urls(server.urls, try_command)

    watchdog = None
    if parent_pid is not None:
        watchdog = asyncio.ensure_future(_watch_parent(server, parent_pid))
    try:
        await server.serve(ready=ready)
    finally:
        if watchdog is not None:
            watchdog.cancel()


async def _watch_parent(server: AppServer, parent_pid: int) -> None:
    """A worker whose supervisor is gone drains and exits."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    logging.getLogger("nghttp2py").info("the supervisor has gone: shutting down")
    server.close()


def _print_urls(urls: list[str], try_command: str) -> None:
    for url in urls:
        print(f"serving on {url} (try: {try_command.format(url=url)})"
              if not url.startswith("unix:") else f"serving on {url}", flush=True)


def _supervise(options: argparse.Namespace, argv: Sequence[str] | None, binds: list[Bind],
               scheme: str, try_command: str) -> int:
    """Run the server in worker processes (``--workers``, ``--reload``); the exit status."""
    sockets = WorkerSockets()
    try:
        for bind in binds:
            try:
                sockets.add(bind, scheme, reuse_port=bool(options.reuse_port))
            except OSError as exc:
                raise CommandLineError(f"cannot listen on {bind}: {_reason(exc)}") from None
    except BaseException:
        sockets.close()
        raise
    command = _worker_command(argv) + sockets.worker_binds
    count = 1 if options.reload else options.workers
    supervisor = Supervisor(command, count, sockets,
                            reload_dir=Path.cwd() if options.reload else None)
    return supervisor.run(ready=lambda: _print_urls(sockets.urls, try_command))


# Options the supervisor keeps to itself: (option, whether it takes a value).
_SUPERVISOR_OPTIONS = {"--workers": True, "--reload": False, "--bind": True}


def _worker_command(argv: Sequence[str] | None) -> list[str]:
    """How to start one worker: this program again, without the supervisor's options."""
    given = list(sys.argv[1:] if argv is None else argv)
    original = getattr(sys, "orig_argv", None)
    if argv is None and original and len(original) >= len(given) + 1:
        prefix = [sys.executable, *original[1:len(original) - len(given)]]
    else:
        prefix = [sys.executable, "-m", "nghttp2py"]
    kept = []
    skip = False
    for arg in given:
        if skip:
            skip = False
            continue
        name, equals, _ = arg.partition("=")
        if name in _SUPERVISOR_OPTIONS:
            skip = _SUPERVISOR_OPTIONS[name] and not equals
            continue
        kept.append(arg)
    return prefix + kept


def _ssl_context(certfile: str | None, keyfile: str | None,
                 ca_certs: str | None = None) -> ssl.SSLContext | None:
    """A server context holding the certificate, or None for cleartext."""
    if not certfile:
        return None
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile),
                         ("--ca-certs", ca_certs)):
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
    if ca_certs:
        try:
            context.load_verify_locations(ca_certs)
        except ssl.SSLError:
            raise CommandLineError(f"--ca-certs {ca_certs} holds no PEM certificate") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _configure_logging(level: str, access_log: str | None) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if access_log is not None:
        # The access lines carry their own timestamp: print them as they are.
        access = logging.getLogger("nghttp2py.access")
        if access_log == "stderr":
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        elif access_log == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            try:
                handler = logging.FileHandler(access_log)
            except OSError as exc:
                raise CommandLineError(
                    f"cannot write --access-log {access_log}: {_reason(exc)}") from None
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def _dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _reason(exc: OSError) -> str:
    """The system's words for an OSError, without Python's decoration."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)
