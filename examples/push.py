"""Server push, from nghttp2's Python API tutorial: push /push, then answer the request.

Run it from the repository root (after ``make``)::

    python -m examples.push                        # or: PYTHONPATH=. python examples/push.py
    nghttp -nv http://localhost:8080/

nghttp prints a PUSH_PROMISE frame for ``/push`` and then the pushed stream's
HEADERS and DATA ("pushed content") next to the response ("nghttp2-python FTW").
``push()`` must be called before ``send_response()``; it returns False when the
client has disabled push (e.g. curl). See docs/push.md.
"""
import nghttp2py as nghttp2
from examples._cli import run


class Handler(nghttp2.BaseRequestHandler):

    def on_headers(self):
        self.push(path='/push',
                  body='pushed content')

        res = b'nghttp2-python FTW\n'
        self.send_response(status=200,
                           headers=[('content-length', str(len(res)))],
                           body=res)


if __name__ == "__main__":
    run(Handler, description="Push /push, then answer 'nghttp2-python FTW'.",
        default_port=8080)
