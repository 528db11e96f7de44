"""The bookstore API of the Twisted HTTP/2 article: 3000 books as JSON.

Run it (after ``make``, or ``pip install .``)::

    python examples/bookstore.py        # or: python -m nghttp2py examples.bookstore:Handler
    nghttp -nv http://localhost:8080/              # the list of book ids
    curl --http2-prior-knowledge 'http://localhost:8080/book?id=1042'

API:

``GET /``
    ``[id, ...]``: the ids of the 3000 books, as JSON numbers.
``GET /book?id=ID``
    ``{"id", "title", "author", "year", "pages", "rating"}`` of one book;
    ``404`` with ``{"error": ...}`` for an unknown id, ``400`` without ``id``.

The books are made up, the same on every run (``random.Random(42)``), so no
data set is downloaded. A client that multiplexes its requests over one
connection fetches all of them in well under a second; see docs/examples.md.
"""
from __future__ import annotations

import json
import random
from urllib.parse import parse_qs

from nghttp2py import BaseRequestHandler
from nghttp2py.cli import serve

BOOK_COUNT = 3000

_ADJECTIVES = ("Silent", "Last", "Burning", "Hidden", "Iron", "Distant", "Glass", "Frozen",
               "Electric", "Forgotten", "Hollow", "Crimson", "Endless", "Quiet", "Broken")
_NOUNS = ("Star", "Machine", "Dune", "Orbit", "City", "Signal", "Garden", "Empire", "Tide",
          "Engine", "Moon", "Archive", "Horizon", "Colony", "Mirror")
_FIRST_NAMES = ("Ada", "Ray", "Ursula", "Frank", "Octavia", "Isaac", "Arthur", "Becky",
                "Liu", "Ann", "Stanislaw", "Kim", "Iain", "Nnedi", "Ted")
_LAST_NAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Brennan", "Novak", "Halloran",
               "Castillo", "Weber", "Achebe", "Sato", "Kowalski", "Ferreira", "Quinn", "Vance")


def make_books(count: int = BOOK_COUNT, seed: int = 42) -> dict[int, dict]:
    """``count`` made-up books by id; the same for the same seed."""
    rng = random.Random(seed)
    ids = rng.sample(range(1000, 100000), count)
    books = {}
    for book_id in ids:
        books[book_id] = {
            "id": book_id,
            "title": f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
            "author": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            "year": rng.randint(1920, 2023),
            "pages": rng.randint(120, 900),
            "rating": round(rng.uniform(2.5, 5.0), 2),
        }
    return books


BOOKS = make_books()
# Encoded once: every request for a book sends the same bytes.
INDEX_JSON = json.dumps(list(BOOKS)).encode()
BOOK_JSON = {str(book_id): json.dumps(book).encode() for book_id, book in BOOKS.items()}

JSON_HEADERS = [("content-type", "application/json")]


def error_json(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class Handler(BaseRequestHandler):

    def on_headers(self):
        if self.method not in (b"GET", b"HEAD"):
            self.send_response(405, [*JSON_HEADERS, ("allow", "GET, HEAD")],
                               error_json("only GET and HEAD are allowed"))
            return
        path, _, query = self.path.decode("latin-1").partition("?")
        if path == "/":
            self.send_response(200, JSON_HEADERS, INDEX_JSON)
        elif path == "/book":
            ids = parse_qs(query).get("id")
            if not ids:
                self.send_response(400, JSON_HEADERS, error_json("missing query parameter: id"))
                return
            body = BOOK_JSON.get(ids[0])
            if body is None:
                self.send_response(404, JSON_HEADERS, error_json(f"no book with id {ids[0]!r}"))
            else:
                self.send_response(200, JSON_HEADERS, body)
        else:
            self.send_response(404, JSON_HEADERS, error_json(f"no such resource: {path}"))


if __name__ == "__main__":
    serve(Handler, description="A JSON API over 3000 made-up books.")
