"""A small static site over HTTP/2, pushing its stylesheet and script with the page.

Run it from the repository root (after ``make``; ``make run`` does all this)::

    scripts/make-cert.sh .certs
    python -m examples.site.server --certfile .certs/server.crt --keyfile .certs/server.key
    nghttp -nvas https://localhost:8443/       # PUSH_PROMISE for the css and the js
    curl --http2 -k -I https://localhost:8443/static/css/style.css

(``PYTHONPATH=. python examples/site/server.py ...`` works as well.) Without a
certificate it serves cleartext HTTP/2 (h2c), which browsers do not speak.

URLs: ``/`` is ``static/index.html``; ``/static/<file>`` is ``static/<file>``;
anything else, or anything that resolves outside ``static/`` (``..``,
``%2e%2e``, absolute paths, symlinks that lead out), is ``404``.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote_to_bytes

from examples._cli import run
from nghttp2py import BaseRequestHandler

STATIC = (Path(__file__).resolve().parent / "static").resolve()

# What the page needs, pushed with "/" when the client accepts push: the URL
# path and the ``as`` of a preload link, used when it does not.
PUSHED_ASSETS = (("/static/css/style.css", "style"), ("/static/js/app.js", "script"))

_TYPES = mimetypes.MimeTypes()  # the built-in table only: the same on every system
_TYPES.add_type("text/javascript", ".js")  # RFC 9239


def find_file(url_path: str) -> Path | None:
    """The file under STATIC that a decoded URL path names, or None."""
    if url_path == "/":
        relative = "index.html"
    elif url_path.startswith("/static/"):
        relative = url_path[len("/static/"):]
    else:
        return None
    if "\0" in relative:
        return None
    # resolve() removes ".." and follows symlinks; a leading "/" makes the
    # join absolute. Whatever the path was, it must still be inside STATIC.
    candidate = (STATIC / relative).resolve()
    if not candidate.is_relative_to(STATIC) or not candidate.is_file():
        return None
    return candidate


def file_headers(path: Path) -> list[tuple[str, str]]:
    """content-type and cache-control of a static file."""
    content_type, encoding = _TYPES.guess_type(path.name)
    if content_type is None or encoding is not None:
        content_type = "application/octet-stream"
    elif content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    # The page is revalidated each time, the assets may be cached for an hour.
    cache_control = "no-cache" if path.suffix == ".html" else "public, max-age=3600"
    return [("content-type", content_type), ("cache-control", cache_control)]


class Handler(BaseRequestHandler):

    def on_headers(self):
        if self.method not in (b"GET", b"HEAD"):
            self.send_error(405, [("allow", "GET, HEAD")])
            return
        url_path = self.path.split(b"?", 1)[0].split(b"#", 1)[0]
        try:
            path = find_file(unquote_to_bytes(url_path).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, OSError):
            path = None
        if path is None:
            self.send_error(404)
            return
        try:
            body = open(path, "rb")
        except OSError:
            self.send_error(404)
            return
        headers = file_headers(path)
        if url_path == b"/" and self.method == b"GET":
            headers += self.push_assets()
        # The file is sent in chunks as the client's window allows, then closed.
        self.send_response(200, headers, body)

    def push_assets(self) -> list[tuple[str, str]]:
        """Push the page's assets; preload links for those not pushed."""
        links = []
        push_enabled = True
        for url, kind in PUSHED_ASSETS:
            path = find_file(url)
            if path is None:
                continue
            if push_enabled:
                # push() returns False when the client disabled push (curl does);
                # it closes the file then.
                push_enabled = self.push(url, headers=file_headers(path), body=open(path, "rb"))
                if push_enabled:
                    continue
            links.append(f"<{url}>; rel=preload; as={kind}")
        return [("link", ", ".join(links))] if links else []

    def send_error(self, status, headers=()):
        reason = {404: "Not Found", 405: "Method Not Allowed"}[status]
        self.send_response(status, [("content-type", "text/plain; charset=utf-8"),
                                    ("cache-control", "no-store"), *headers],
                           f"{status} {reason}\n")


if __name__ == "__main__":
    run(Handler, description="Serve examples/site/static over HTTP/2 with server push.",
        default_port=8443, try_command="nghttp -nvas {url}")
