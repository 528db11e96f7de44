"""The Quart app of the "How to serve HTTP 1, 2, and 3 in Python" article, served by
nghttp2py over HTTP/1.1, HTTP/2 and HTTP/3 at once.

Run it from the repository root (``pip install nghttp2py[h3]`` for HTTP/3;
``scripts/make-cert.sh .certs`` makes a certificate)::

    python -m nghttp2py examples.quart_hello.run:app \\
        --quic-bind localhost:4433 --bind localhost:8000 \\
        --certfile .certs/server.crt --keyfile .certs/server.key
    curl --http1.1 -k https://localhost:8000/     # HTTP/1.1, with alt-svc: h3=":4433"
    curl --http2 -k https://localhost:8000/       # HTTP/2, the same

and HTTP/3 on https://localhost:4433/ (an aioquic client, or Chromium; see
docs/http3.md). The article's ``index`` had lost its route decorator; here it
has it.
"""
from __future__ import annotations

from quart import Quart

app = Quart(__name__)


@app.route("/")
async def index() -> str:
    return "<b>Hello World!</b>"
