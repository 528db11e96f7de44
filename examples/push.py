"""Server push, from nghttp2's Python API tutorial: push /push, then answer the request.

Run it (after ``make``, or ``pip install .``)::

    python examples/push.py                        # or: python -m nghttp2py examples.push:Handler
    nghttp -nv http://localhost:8080/
    curl -v --http2-prior-knowledge http://localhost:8080/

nghttp prints a PUSH_PROMISE frame for ``/push`` and then the pushed stream's
HEADERS and DATA ("pushed content") next to the response ("nghttp2-python FTW").
``push()`` must be called before ``send_response()``. curl, like every current
browser, refuses push: there ``push()`` returns False and the server sends a
``103 Early Hints`` response with ``link: </push>; rel=preload`` before the
response instead (``--no-early-hints`` turns that off). See docs/push.md.
"""
import nghttp2py as nghttp2
from nghttp2py.cli import serve


class Handler(nghttp2.BaseRequestHandler):

    def on_headers(self):
        self.push(path='/push',
                  body='pushed content')

        res = b'nghttp2-python FTW\n'
        self.send_response(status=200,
                           headers=[('content-length', str(len(res)))],
                           body=res)


if __name__ == "__main__":
    serve(Handler, description="Push /push, then answer 'nghttp2-python FTW'.")
