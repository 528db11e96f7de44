"""The first server of nghttp2's Python API tutorial: answers every request with "nghttp2 FTW".

Run it from the repository root (after ``make``)::

    python -m examples.hello                       # or: PYTHONPATH=. python examples/hello.py
    nghttp -nv http://localhost:8080/
    curl --http2-prior-knowledge http://localhost:8080/

With ``--certfile server.crt --keyfile server.key`` it serves TLS with ALPN h2
(then ``curl --http2 -k https://localhost:8080/``). See docs/examples.md.
"""
import nghttp2py as nghttp2
from examples._cli import run


class Handler(nghttp2.BaseRequestHandler):

    def on_headers(self):
        res = b'nghttp2 FTW\n'
        self.send_response(status=200,
                           headers=[('content-length', str(len(res)))],
                           body=res)


# The tutorial starts the server with these two lines, which work as they are:
#
#     server = nghttp2.HTTP2Server(('', 8080), Handler, ssl=None)
#     server.serve_forever()
#
# run() does the same, with --host/--port/--certfile/--keyfile/--access-log and
# a line printed once the server listens (examples/_cli.py).
if __name__ == "__main__":
    run(Handler, description="Answer every request with 'nghttp2 FTW'.", default_port=8080)
