"""HTTP/3 beside HTTP/2 and HTTP/1.1: every request is answered with the protocol it came over.

HTTP/3 runs over QUIC (UDP) and always over TLS, so it needs the ``h3`` extra
(``pip install nghttp2py[h3]``) and a certificate::

    python examples/http3.py --bind 127.0.0.1:8443 --quic-bind 127.0.0.1:8443 \\
        --certfile server.crt --keyfile server.key

The same port number serves TCP (HTTP/2 and HTTP/1.1) and UDP (HTTP/3). Try
``curl --http3-only -k https://127.0.0.1:8443/`` with a curl built with
HTTP/3, ``curl --http2 -k ...`` and ``curl --http1.1 -k ...``. See docs/http3.md.
"""
import nghttp2py
from nghttp2py.cli import serve


class Handler(nghttp2py.BaseRequestHandler):

    def on_headers(self):
        self.send_response(200, [("content-type", "text/plain")],
                           f"hello over HTTP/{self.http_version}\n")


if __name__ == "__main__":
    serve(Handler, description="Answer every request with the HTTP version it came over.")
