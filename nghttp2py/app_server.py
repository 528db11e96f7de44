"""AppServer: an ASGI app, a WSGI app or a handler class, served on one or more binds.

This is what ``python -m nghttp2py MODULE:APP`` runs, and what a program
that starts the server itself uses::

    server = AppServer(app, ["127.0.0.1:8000", "unix:/run/app.sock"])
    await server.start()          # lifespan startup, then listen
    ...
    server.close()
    await server.wait_closed()    # drained, then lifespan shutdown

or, blocking, ``nghttp2py.serve(app, bind="127.0.0.1:8000")``.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import socket
import ssl as _ssl
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import loops
from .asgi import Lifespan, asgi_handler
from .binds import Bind, listening_socket, parse_bind
from .handler import BaseRequestHandler
from .proxy_headers import TrustedProxies, asgi_proxy_headers, wsgi_proxy_headers
from .server import HTTP2Server, alt_svc_value
from .settings import GuardLimits, ServerSettings, Timeouts

__all__ = ["INTERFACES", "AppServer", "detect_interface", "serve"]

logger = logging.getLogger("nghttp2py")

INTERFACES = ("asgi", "wsgi", "handler")


def detect_interface(app: object) -> str:
    """``"asgi"``, ``"wsgi"`` or ``"handler"`` for ``app``.

    Raises TypeError for something that is not an app, ValueError when it
    cannot be told.

    A BaseRequestHandler subclass is a handler; a coroutine function (or an
    object whose ``__call__`` is one) taking three arguments is ASGI 3; a
    plain callable taking two is WSGI.
    """
    if isinstance(app, type) and issubclass(app, BaseRequestHandler):
        return "handler"
    if not callable(app):
        raise TypeError(f"a {type(app).__name__} is not an app: not callable")
    if isinstance(app, type):
        raise TypeError(f"the class {app.__name__} is neither a BaseRequestHandler subclass "
                         "nor an app (an ASGI app is called with scope, receive, send)")
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    positional = _positional_count(call)
    if call is not app and positional is not None:
        positional -= 1  # self
    if inspect.iscoroutinefunction(call):
        if positional in (None, 3):
            return "asgi"
    elif positional == 2:
        return "wsgi"
    raise ValueError("cannot tell whether it is an ASGI or a WSGI app: give --interface")


def _positional_count(function: Callable[..., Any]) -> int | None:
    """How many positional arguments ``function`` takes; None for *args or no signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class AppServer:
    """Serves ``app`` on every bind in ``binds`` (``"HOST:PORT"``, ``"unix:PATH"``, ``"fd://N"``).

    ``interface`` is ``"asgi"``, ``"wsgi"`` or ``"handler"`` (a
    BaseRequestHandler subclass), detected when None. ``lifespan``
    (``"auto"``, ``"on"``, ``"off"``) applies to ASGI apps, ``wsgi_threads``
    bounds the WSGI thread pool. ``sockets`` are listening sockets to serve
    instead of opening the binds (worker processes are given theirs);
    ``reuse_port`` opens each bind with SO_REUSEPORT. After ``max_requests``
    requests (plus a random 0 to ``max_requests_jitter``, so that workers do
    not all recycle at once) :meth:`serve` shuts down gracefully, for a
    supervisor to start a fresh process; ``multiprocess`` tells WSGI apps that
    other processes serve the same app. ``proxy_headers`` takes the client
    and scheme of ASGI and WSGI apps from ``X-Forwarded-*``/``Forwarded``
    when the peer is one of ``forwarded_allow_ips`` (addresses, networks or
    ``"*"``). ``quic_bind`` (a list of ``(host, port)``) serves HTTP/3 there
    too, with ``quic_certfile``/``quic_keyfile``, from the first bind's server
    (see docs/http3.md). ``websocket_options`` are the :meth:`WebSocket.accept`
    options every ASGI ``websocket.accept`` uses (``max_message_size``,
    ``ping_interval``...). The other options (``proxy_protocol``,
    ``quic_retry``, ``alt_svc``...) are HTTP2Server's.
    """

    def __init__(self, app: object, binds: Iterable[str | Bind] | str = ("127.0.0.1:8080",), *,
                 interface: str | None = None, ssl: _ssl.SSLContext | None = None,
                 root_path: str = "", lifespan: str = "auto",
                 settings: ServerSettings | None = None, timeouts: Timeouts | None = None,
                 guard: GuardLimits | None = None, access_log: bool = False,
                 push_early_hints: bool = True, http1: bool = True,
                 shutdown_timeout: float = 30.0, backlog: int = 1024, wsgi_threads: int = 32,
                 reuse_port: bool = False, sockets: Iterable[socket.socket] | None = None,
                 max_requests: int | None = None, max_requests_jitter: int = 0,
                 multiprocess: bool = False, proxy_headers: bool = False,
                 forwarded_allow_ips: str | Iterable[str] = ("127.0.0.1", "::1"),
                 proxy_protocol: bool = False, quic_bind: Iterable[tuple[str, int]] = (),
                 quic_certfile: str | None = None, quic_keyfile: str | None = None,
                 quic_retry: bool = False,
                 websocket_options: dict[str, Any] | None = None,
                 alt_svc: str | None = None) -> None:
        if interface is None:
            interface = detect_interface(app)
        if interface not in INTERFACES:
            raise ValueError(f"interface is one of {', '.join(INTERFACES)}, not {interface!r}")
        if isinstance(binds, str):
            binds = [binds]
        alt_svc_value(alt_svc)  # a bad value fails here, not once the binds are open
        self.app = app
        self.interface = interface
        self.binds = [bind if isinstance(bind, Bind) else parse_bind(bind) for bind in binds]
        self.ssl = ssl
        self.root_path = root_path
        self.lifespan = Lifespan(app, lifespan if interface == "asgi" else "off")  # type: ignore[arg-type]
        self.options: dict[str, Any] = {
            "settings": settings, "timeouts": timeouts, "guard": guard, "access_log": access_log,
            "push_early_hints": push_early_hints, "http1": http1,
            "shutdown_timeout": shutdown_timeout,
            "backlog": backlog, "proxy_protocol": proxy_protocol, "alt_svc": alt_svc}
        # HTTP/3 is served by one HTTP2Server: the first bind's.
        self.quic_options: dict[str, Any] = {
            "quic_bind": list(quic_bind), "quic_certfile": quic_certfile,
            "quic_keyfile": quic_keyfile, "quic_retry": quic_retry}
        self.wsgi_threads = wsgi_threads
        self.reuse_port = reuse_port
        self.servers: list[HTTP2Server] = []
        self._sockets = list(sockets) if sockets is not None else None
        self._executor: ThreadPoolExecutor | None = None
        self._handler_classes: list[type[BaseRequestHandler]] = []
        self.max_requests = (max_requests + random.randint(0, max(max_requests_jitter, 0))
                             if max_requests else None)
        self.multiprocess = multiprocess
        self.trusted_proxies = TrustedProxies(forwarded_allow_ips) if proxy_headers else None
        self.websocket_options = websocket_options
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        """Run the lifespan startup (ASGI), then listen on every bind.

        Raises :exc:`~nghttp2py.asgi.LifespanFailure` when the app's startup
        fails, OSError when a bind cannot be opened.
        """
        await self.lifespan.startup()
        try:
            sockets = self._sockets
            if sockets is None:
                sockets = []
                try:
                    for bind in self.binds:
                        sockets.append(listening_socket(bind, backlog=self.options["backlog"],
                                                        reuse_port=self.reuse_port))
                except BaseException:
                    for sock in sockets:
                        sock.close()
                    raise
            for index, sock in enumerate(sockets):
                handler_class = self._handler_class(sock)
                self._handler_classes.append(handler_class)
                options = dict(self.options, **(self.quic_options if index == 0 else {}))
                if index and options["alt_svc"] is None:
                    options["alt_svc"] = self.servers[0].alt_svc  # the QUIC port, if any
                server = HTTP2Server(_address(sock), handler_class, self.ssl,
                                     sock=sock, **options)
                await server.start()
                self.servers.append(server)
        except BaseException:
            self.close()
            await self.wait_closed()
            raise

    def _handler_class(self, sock: socket.socket) -> type[BaseRequestHandler]:
        if self.interface == "handler":
            return self.app  # type: ignore[return-value]
        app = self.app
        if self.interface == "asgi":
            if self.trusted_proxies is not None:
                app = asgi_proxy_headers(app, self.trusted_proxies)  # type: ignore[arg-type]
            return asgi_handler(app, root_path=self.root_path,  # type: ignore[arg-type]
                                server=_scope_server(sock), state=self.lifespan.state,
                                tls=self.ssl is not None,
                                websocket_options=self.websocket_options)
        from .wsgi import wsgi_handler
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.wsgi_threads, thread_name_prefix="wsgi")
        if self.trusted_proxies is not None:
            app = wsgi_proxy_headers(app, self.trusted_proxies)  # type: ignore[arg-type]
        return wsgi_handler(app, executor=self._executor,  # type: ignore[arg-type]
                            root_path=self.root_path, server=_scope_server(sock),
                            multiprocess=self.multiprocess)

    @property
    def requests(self) -> int:
        """Requests started so far (ASGI and WSGI apps; 0 for a handler class)."""
        total = 0
        for handler_class in self._handler_classes:
            config = getattr(handler_class, "asgi_config", None)
            total += config.requests if config is not None else \
                getattr(handler_class, "requests", 0)
        return total

    def close(self) -> None:
        """Stop accepting; shut connections down gracefully (see HTTP2Server.close)."""
        if self._stop is not None:
            self._stop.set()
        for server in self.servers:
            server.close()

    def abort(self) -> None:
        """Close every connection at once."""
        for server in self.servers:
            server.abort()

    async def wait_closed(self) -> None:
        """Wait until every connection has ended, then run the lifespan shutdown."""
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()
        executor, self._executor = self._executor, None
        if executor is not None:
            # The WSGI threads end once their streams have (the connections are
            # gone by now); an app stuck in its own code is not waited for long.
            waiting = asyncio.ensure_future(asyncio.to_thread(executor.shutdown, True))
            try:
                await asyncio.wait_for(asyncio.shield(waiting),
                                       self.options["shutdown_timeout"])
            except asyncio.TimeoutError:
                logger.warning("WSGI threads still busy after the shutdown timeout")

    @property
    def urls(self) -> list[str]:
        """Where the server listens, as URLs (``unix:PATH`` for a Unix socket)."""
        urls = []
        for server in self.servers:
            for sock in server.sockets:
                name = sock.getsockname()
                if isinstance(name, str) or sock.family == socket.AF_UNIX:
                    urls.append(f"unix:{name}")
                    continue
                host, port = name[:2]
                if host in ("0.0.0.0", "::"):
                    host = "localhost"  # every interface: localhost is one of them
                if ":" in host:
                    host = f"[{host}]"
                urls.append(f"{'https' if self.ssl else 'http'}://{host}:{port}/")
        return urls

    async def serve(self, *, ready: Callable[[], object] | None = None) -> None:
        """Start unless started, serve until SIGINT or SIGTERM, shut down gracefully.

        A second signal closes every connection at once. ``ready`` is called
        once listening with the signals handled.
        """
        if not self.servers:
            await self.start()
        loop = asyncio.get_running_loop()
        stopped = self._stop = asyncio.Event()
        loops.handle_shutdown_signals(loop, stopped.is_set, self.close, self.abort)
        recycle = loop.create_task(self._recycle()) if self.max_requests else None
        try:
            if ready is not None:
                ready()
            await stopped.wait()
            await self.wait_closed()
        finally:
            if recycle is not None:
                recycle.cancel()
            loops.remove_shutdown_signals(loop)

    async def _recycle(self) -> None:
        """Shut down gracefully once ``max_requests`` requests have started."""
        assert self.max_requests is not None
        while self.requests < self.max_requests:
            await asyncio.sleep(0.2)
        logger.info("served %d requests (--max-requests): shutting down to be replaced",
                    self.requests)
        self.close()


def serve(app: object, bind: str | Iterable[str] = "127.0.0.1:8080", *, loop: str | None = None,
          **options: Any) -> None:
    """Serve ``app`` (ASGI, WSGI or a handler class) until SIGINT or SIGTERM.

    ``bind`` is one bind or several; ``loop`` names the event loop
    (``"asyncio"`` or ``"uvloop"``); the other options are
    :class:`AppServer`'s.
    """
    loops.run(AppServer(app, bind, **options).serve(), loop)


def _address(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    if isinstance(name, str) or sock.family == socket.AF_UNIX:
        return (str(name), 0)
    return (name[0], name[1])


def _scope_server(sock: socket.socket) -> tuple[str, int | None]:
    """The ASGI scope's ``server``: ``(host, port)``, or ``(path, None)`` for a Unix socket."""
    name = sock.getsockname()
    if isinstance(name, str) or sock.family == socket.AF_UNIX:
        return (str(name), None)
    return (name[0], name[1])
