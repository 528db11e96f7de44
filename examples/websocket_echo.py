"""A WebSocket echo server, over HTTP/2 (RFC 8441) and HTTP/1.1 (RFC 6455), and a page
that talks to it.

Run it with TLS, the way browsers reach WebSockets over HTTP/2::

    python examples/websocket_echo.py --bind :8443 --certfile server.crt --keyfile server.key

then open https://localhost:8443/ in a browser: the page opens ``wss://…/echo``
over the page's own HTTP/2 connection (extended CONNECT), sends a message and
shows the echo. A browser or client on HTTP/1.1 (``ws://`` without TLS, say)
gets the same WebSocket through the ``Upgrade: websocket`` handshake: the
handler does not change. Any other WebSocket path is refused (``403``). See
docs/websockets.md, which also shows the ``async for`` style.
"""
import nghttp2py as nghttp2
from nghttp2py.cli import serve

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>nghttp2py WebSocket echo</title></head>
<body>
<p id="status">connecting</p>
<script>
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/echo");
const status = document.getElementById("status");
// The protocol the page came over ("h2" or "http/1.1"), which its WebSocket shares.
const protocol = performance.getEntriesByType("navigation")[0].nextHopProtocol;
ws.onopen = () => ws.send("hello over " + protocol + " \\u20ac");
ws.onmessage = (event) => { status.textContent = "echo: " + event.data; ws.close(1000); };
ws.onerror = () => { status.textContent = "error"; };
</script>
</body></html>
"""


class Handler(nghttp2.BaseRequestHandler):

    def on_headers(self):
        ws = self.websocket  # None unless the request opens a WebSocket
        if ws is not None and self.path == b"/echo":
            ws.accept()  # 200 on HTTP/2, 101 on HTTP/1.1; then on_message gets each message
        elif ws is not None:
            ws.close()  # refused: 403
        elif self.path == b"/":
            self.send_response(200, [("content-type", "text/html; charset=utf-8"),
                                     ("cache-control", "no-cache")], PAGE)
        else:
            self.send_response(404, [("content-type", "text/plain")], "not found\n")

    def on_message(self, message):
        self.websocket.send(message)


if __name__ == "__main__":
    serve(Handler, description="A WebSocket echo over HTTP/2 and HTTP/1.1, with a page at /.",
          try_command="open {url} in a browser")
