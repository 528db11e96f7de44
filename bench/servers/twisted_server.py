"""Twisted web benchmark server: ``twisted_server.py PORT [--cert C --key K]``.

Twisted negotiates HTTP/2 only through ALPN on TLS, so cleartext runs serve
HTTP/1.1 only and the harness uses Twisted in TLS scenarios alone.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BIG_PATH, HELLO, ONE_MIB, announce_loop, parse_args
from twisted.internet import epollreactor

epollreactor.install()  # named, not left to Twisted's platform default

from twisted.internet import reactor, ssl  # noqa: E402 (after the reactor choice)
from twisted.web import resource, server  # noqa: E402


class Hello(resource.Resource):
    """Leaf resource answering every path."""

    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        """Return 1 MiB for /1m and hello world otherwise (POST body is read by Twisted)."""
        if request.path == BIG_PATH.encode():
            request.setHeader(b"content-type", b"application/octet-stream")
            return ONE_MIB
        request.setHeader(b"content-type", b"text/plain")
        return HELLO


def main() -> None:
    """Listen on 127.0.0.1:PORT (TLS with ALPN h2 when cert/key given)."""
    args = parse_args(__doc__)
    site = server.Site(Hello())
    site.displayTracebacks = False
    if args.cert:
        with open(args.cert, "rb") as f:
            cert_pem = f.read()
        with open(args.key, "rb") as f:
            key_pem = f.read()
        cert = ssl.PrivateCertificate.loadPEM(key_pem + cert_pem)
        options = cert.options()
        options._acceptableProtocols = [b"h2", b"http/1.1"]
        reactor.listenSSL(args.port, site, options, interface="127.0.0.1")
    else:
        reactor.listenTCP(args.port, site, interface="127.0.0.1")
    announce_loop(reactor)
    reactor.run()


if __name__ == "__main__":
    main()
