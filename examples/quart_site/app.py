"""The Quart site of the "How to serve HTTP/2 using Python" article, served by nghttp2py.

The article's app pushed the page's stylesheet and script with
``response.push_promises``; today's Quart asks the server to push with
``quart.make_push_promise(path)``, which sends the ASGI ``http.response.push``
message. nghttp2py answers it with a PUSH_PROMISE and runs the pushed request
through the app itself (Quart's static route here); a client that refuses push
(every current browser) gets the paths as ``103 Early Hints`` preload links.

``/ws`` is the WebSocket echo of the article "How to serve HTTP 1, 2, and 3 in
Python": served through the ASGI ``websocket`` scope, over HTTP/2 (RFC 8441
extended CONNECT) on the same connection as the page.

Run it from the repository root (``scripts/make-cert.sh .certs`` makes a
certificate)::

    python -m nghttp2py examples.quart_site.app:app --bind localhost:8443 \\
        --certfile .certs/server.crt --keyfile .certs/server.key
    nghttp -nv https://localhost:8443/        # a PUSH_PROMISE for each asset
    # wss://localhost:8443/ws echoes what it receives
"""
from __future__ import annotations

from pathlib import Path

from quart import Quart, make_push_promise, render_template, url_for, websocket

# The stylesheet and the script are the ones of examples/site.
STATIC = Path(__file__).resolve().parent.parent / "site" / "static"

app = Quart(__name__, static_folder=str(STATIC), static_url_path="/static")

ASSETS = ("css/style.css", "js/app.js")


@app.route("/")
async def index() -> str:
    for asset in ASSETS:
        await make_push_promise(url_for("static", filename=asset))
    return await render_template("index.html")


@app.websocket("/ws")
async def echo() -> None:
    """Every message back as it came, text or bytes."""
    while True:
        await websocket.send(await websocket.receive())
