"""``--proxy-headers``: the client and scheme a trusted proxy reports.

Behind a load balancer the peer of every connection is the proxy. The proxy
names the real client in ``X-Forwarded-For`` and the scheme the client used in
``X-Forwarded-Proto``, or both in RFC 7239 ``Forwarded``. Those headers are
believed only from a trusted peer (``--forwarded-allow-ips``), and in a chain
of proxies the client is the last address that is not itself trusted.

:func:`asgi_proxy_headers` and :func:`wsgi_proxy_headers` wrap an app so that
its scope's ``client``/``scheme`` (its environ's ``REMOTE_ADDR``/``wsgi.url_scheme``)
are those.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from .asgi import ASGIApp, Receive, Scope, Send
from .wsgi import WSGIApp

__all__ = ["TrustedProxies", "asgi_proxy_headers", "forwarded_client", "wsgi_proxy_headers"]


class TrustedProxies:
    """Addresses and networks (``"10.0.0.0/8"``) proxy headers are believed from; ``"*"``: all.

    A client reached over a Unix socket (no address) is trusted: only a local
    proxy can connect there.
    """

    def __init__(self, trusted: Iterable[str] | str = ("127.0.0.1", "::1")) -> None:
        if isinstance(trusted, str):
            trusted = [part.strip() for part in trusted.split(",") if part.strip()]
        self.everyone = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in trusted:
            if item == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None

    def __contains__(self, host: object) -> bool:
        if self.everyone or host is None:
            return True
        try:
            address = ipaddress.ip_address(str(host).strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def forwarded_client(headers: Iterable[tuple[bytes, bytes]], trusted: TrustedProxies
                     ) -> tuple[str | None, str | None]:
    """``(client host, scheme)`` from the proxy headers; None where they say nothing.

    ``Forwarded`` wins over the ``X-Forwarded-*`` pair when both are there.
    """
    forwarded: list[dict[str, str]] = []
    hosts: list[str] = []
    protos: list[str] = []
    for name, value in headers:
        if name == b"forwarded":
            forwarded += _parse_forwarded(value.decode("latin-1"))
        elif name == b"x-forwarded-for":
            hosts += [part.strip() for part in value.decode("latin-1").split(",")]
        elif name == b"x-forwarded-proto":
            protos += [part.strip() for part in value.decode("latin-1").split(",")]
    if forwarded:
        hosts = [_strip_port(element.get("for", "")) for element in forwarded]
        protos = [element["proto"] for element in forwarded if "proto" in element]
    client = None
    for host in reversed(hosts):
        client = host
        if host not in trusted:
            break
    scheme = protos[-1].lower() if protos and protos[-1].lower() in ("http", "https") else None
    return client or None, scheme


def _parse_forwarded(text: str) -> list[dict[str, str]]:
    elements = []
    for element in text.split(","):
        pairs = {}
        for pair in element.split(";"):
            key, equals, value = pair.strip().partition("=")
            if equals:
                pairs[key.lower()] = value.strip().strip('"')
        elements.append(pairs)
    return elements


def _strip_port(node: str) -> str:
    """``"[2001:db8::1]:4711"`` → ``"2001:db8::1"``, ``"192.0.2.1:80"`` → ``"192.0.2.1"``."""
    if node.startswith("["):
        return node[1:node.find("]")] if "]" in node else node
    return node.rpartition(":")[0] if node.count(":") == 1 else node


def asgi_proxy_headers(app: ASGIApp, trusted: TrustedProxies) -> ASGIApp:
    """``app`` with ``client`` and ``scheme`` taken from a trusted proxy's headers."""

    async def with_proxy_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if (peer[0] if peer else None) in trusted:
                host, scheme = forwarded_client(scope["headers"], trusted)
                if host is not None:
                    scope["client"] = (host, 0)
                if scheme is not None:
                    scope["scheme"] = scheme if scope["type"] == "http" else \
                        "wss" if scheme == "https" else "ws"
        await app(scope, receive, send)

    return with_proxy_headers


def wsgi_proxy_headers(app: WSGIApp, trusted: TrustedProxies) -> WSGIApp:
    """``app`` with ``REMOTE_ADDR`` and ``wsgi.url_scheme`` from a trusted proxy's headers."""

    def with_proxy_headers(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") in trusted:
            headers = [(key[5:].lower().replace("_", "-").encode("latin-1"),
                        value.encode("latin-1"))
                       for key, value in environ.items()
                       if key in ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR",
                                  "HTTP_X_FORWARDED_PROTO")]
            host, scheme = forwarded_client(headers, trusted)
            if host is not None:
                environ["REMOTE_ADDR"] = host
                environ["REMOTE_PORT"] = "0"
            if scheme is not None:
                environ["wsgi.url_scheme"] = scheme
        return app(environ, start_response)

    return with_proxy_headers
