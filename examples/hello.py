"""The first server of nghttp2's Python API tutorial: answers every request with "nghttp2 FTW".

Run it (after ``make``, or ``pip install .``)::

    python examples/hello.py                       # or: python -m nghttp2py examples.hello:Handler
    nghttp -nv http://localhost:8080/
    curl --http2-prior-knowledge http://localhost:8080/

``--bind :8443 --certfile server.crt --keyfile server.key`` serves TLS with
ALPN h2 on every interface (then ``curl --http2 -k https://localhost:8443/``);
``--help`` lists the options. See docs/examples.md.
"""
import nghttp2py as nghttp2
from nghttp2py.cli import serve


class Handler(nghttp2.BaseRequestHandler):

    def on_headers(self):
        res = b'nghttp2 FTW\n'
        self.send_response(status=200,
                           headers=[('content-length', str(len(res)))],
                           body=res)


# The tutorial starts the server with these two lines, which work as they are
# (cleartext HTTP/2 on port 8080 of every interface, until Ctrl-C):
#
#     server = nghttp2.HTTP2Server(('', 8080), Handler, ssl=None)
#     server.serve_forever()
#
# serve() does the same, with the options of `python -m nghttp2py` (--bind,
# --certfile, --keyfile, --access-log, --loop, ...) and a line printed once
# the server listens.
if __name__ == "__main__":
    serve(Handler, description="Answer every request with 'nghttp2 FTW'.")
