"""The examples in examples/, run as plain scripts and checked with real HTTP/2 peers.

Each example runs in a subprocess (``--bind 127.0.0.1:0`` and the event loop of
the current pass, see served.py); its first line of output gives the URL.
nghttp, curl, h2load, httpx and headless Chromium are the clients. Every
example must stop with status 0 within 5 s of SIGINT (graceful close).
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import page_texts
from served import EXAMPLES, PEER_ENV, ServedPrograms

from conftest import ROOT, TEST_LOOP, require, run_peer

SITE_STATIC = EXAMPLES / "site" / "static"


@pytest.fixture
def example(tmp_path):
    """``example(script, *args, tls=None, ...)`` runs examples/<script> (or an absolute
    path) as ``python SCRIPT ARGS``; the keywords are those of ServedPrograms."""
    programs = ServedPrograms(tmp_path)
    yield lambda script, *args, **kwargs: programs([EXAMPLES / script, *args], **kwargs)
    programs.kill()


@pytest.fixture
def program(tmp_path):
    """``program(args, ...)`` runs ``python ARGS``, e.g. ``["-m", "nghttp2py", ...]``."""
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def nghttp(*args: str) -> str:
    result = run_peer("nghttp", *args, env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout


def curl_responses(*args: str) -> tuple[list[tuple[str, dict[str, str]]], bytes]:
    """Every response head curl received, 1xx first and the final one last, as
    (status line, headers with repeated fields joined by ", "), and the body."""
    result = subprocess.run([require("curl"), "-sS", "-D", "/dev/stderr", *args],
                            check=False, capture_output=True, timeout=60, env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    heads = []
    for block in result.stderr.decode("latin-1").strip().split("\r\n\r\n"):
        lines = block.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        heads.append((lines[0].strip(), headers))
    return heads, result.stdout


def curl_response(*args: str) -> tuple[str, dict[str, str], bytes]:
    """curl's final status line, its headers and the body."""
    heads, body = curl_responses(*args)
    status, headers = heads[-1]
    return status, headers, body


# -- hello.py -------------------------------------------------------------------


def test_hello_prints_url_and_answers_nghttp_and_curl(example):
    hello = example("hello.py")
    assert hello.url.startswith("http://127.0.0.1:")
    assert hello.first_line.endswith(f"(try: nghttp -nv {hello.url})")

    out = nghttp("-nv", hello.url)
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    # The seed sets content-length itself: it is sent once, not twice.
    assert len(re.findall(r"recv \(stream_id=\d+\) content-length: ", out)) == 1, out
    assert re.search(r"recv \(stream_id=\d+\) content-length: 12$", out, re.MULTILINE), out
    assert re.search(r"recv \(stream_id=\d+\) server: nghttp2py$", out, re.MULTILINE), out

    assert "nghttp2 FTW" in run_peer("nghttp", hello.url, env=PEER_ENV).stdout

    status, headers, body = curl_response("--http2-prior-knowledge", hello.url)
    assert status == "HTTP/2 200"
    assert headers["content-length"] == "12"
    assert body == b"nghttp2 FTW\n"
    hello.stop()


def test_hello_over_tls_with_access_log(example, certificate):
    hello = example("hello.py", "--access-log", tls=certificate)
    assert hello.url.startswith("https://127.0.0.1:")

    status, _, body = curl_response("--http2", "--cacert", str(certificate[0]),
                                    hello.url + "tls-check")
    assert status == "HTTP/2 200"
    assert body == b"nghttp2 FTW\n"
    assert "nghttp2 FTW" in run_peer("nghttp", hello.url, env=PEER_ENV).stdout
    hello.stop()
    assert re.search(r'^127\.0\.0\.1 - - \[.+\] "GET /tls-check HTTP/2" 200 12$',
                     hello.stderr(), re.MULTILINE), hello.stderr()


NO_PYTHONPATH = {name: value for name, value in PEER_ENV.items() if name != "PYTHONPATH"}


def test_hello_runs_as_a_plain_script_from_anywhere(example, tmp_path):
    # `python examples/hello.py` imports only the library: after `make` (which
    # puts the checkout on the venv's path) or `pip install .`, from any directory.
    hello = example("hello.py", env=NO_PYTHONPATH, cwd=tmp_path)
    status, _, body = curl_response("--http2-prior-knowledge", hello.url)
    assert (status, body) == ("HTTP/2 200", b"nghttp2 FTW\n")
    hello.stop(signal.SIGTERM)


def test_hello_served_by_python_m_nghttp2py(program):
    # The current directory (the checkout) is where MODULE is looked up.
    hello = program(["-m", "nghttp2py", "examples.hello:Handler"], env=NO_PYTHONPATH)
    assert hello.first_line == f"serving on {hello.url} (try: nghttp -nv {hello.url})"
    out = nghttp("-nv", hello.url)
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert "nghttp2 FTW" in nghttp(hello.url)
    status, headers, body = curl_response("--http2-prior-knowledge", hello.url)
    assert (status, headers["content-length"], body) == ("HTTP/2 200", "12", b"nghttp2 FTW\n")
    hello.stop()


SEED_LINES = re.compile(
    r"^#     (server = nghttp2\.HTTP2Server\(\('', 8080\), Handler, ssl=None\))\n"
    r"#     (server\.serve_forever\(\))$", re.MULTILINE)


def test_the_seeds_two_lines_quoted_in_hello_py_serve(tmp_path):
    """The tutorial's own start-up lines, as hello.py quotes them, run as they are
    (on port 0 instead of 8080, with logging on to learn the port)."""
    source = (EXAMPLES / "hello.py").read_text()
    quoted = SEED_LINES.search(source)
    assert quoted, "hello.py no longer quotes the tutorial's two lines"
    script = tmp_path / "seed.py"
    script.write_text(
        "import logging\nlogging.basicConfig(level=logging.INFO)\n"
        + source[:source.index('if __name__ == "__main__":')]
        + quoted.group(1).replace("8080", "0") + "\n" + quoted.group(2) + "\n")
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True,
                               env=dict(PEER_ENV, PYTHONPATH=str(ROOT)))
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = re.search(r"serving HTTP/2 \(h2c\) on \S+:(\d+), on the (\w+) event loop", line)
        assert port, line
        assert port.group(2) == TEST_LOOP  # NGHTTP2PY_LOOP, set by conftest
        status, _, body = curl_response("--http2-prior-knowledge",
                                        f"http://127.0.0.1:{port.group(1)}/")
        assert (status, body) == ("HTTP/2 200", b"nghttp2 FTW\n")
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


# -- push.py ----------------------------------------------------------------------


def test_push_promises_and_delivers_push(example):
    push = example("push.py")
    out = nghttp("-v", push.url)  # without -n: the bodies are printed
    promise = re.search(r"recv PUSH_PROMISE frame <length=\d+, flags=0x04, stream_id=(\d+)>\n"
                        r"\s+; END_HEADERS\n\s+\(padlen=0, promised_stream_id=(\d+)\)", out)
    assert promise, out
    parent, promised = promise.groups()
    assert f"recv (stream_id={parent}) :path: /push" in out
    assert f"recv (stream_id={promised}) :status: 200" in out
    assert "pushed content" in out
    assert "nghttp2-python FTW" in out

    # curl disables push: push() returns False, and the path is announced in a
    # 103 Early Hints response before the response itself.
    heads, body = curl_responses("--http2-prior-knowledge", push.url)
    assert [(status, headers.get("link")) for status, headers in heads] == [
        ("HTTP/2 103", "</push>; rel=preload"), ("HTTP/2 200", None)]
    assert body == b"nghttp2-python FTW\n"
    push.stop()


def test_push_without_early_hints(example):
    push = example("push.py", "--no-early-hints")
    heads, body = curl_responses("--http2-prior-knowledge", push.url)
    assert [status for status, _ in heads] == ["HTTP/2 200"]
    assert body == b"nghttp2-python FTW\n"
    assert "PUSH_PROMISE" in nghttp("-nv", push.url)  # push itself is unaffected
    push.stop()


# -- site/server.py -------------------------------------------------------------------


def static_files() -> list[Path]:
    return sorted(path for path in SITE_STATIC.rglob("*") if path.is_file())


EXPECTED_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                  ".js": "text/javascript; charset=utf-8"}


def test_site_pushes_css_and_js_with_the_page(example, certificate):
    site = example("site/server.py", tls=certificate)
    assert site.url.startswith("https://127.0.0.1:")
    assert site.first_line.endswith(f"(try: nghttp -nvas {site.url})")

    out = nghttp("-nvas", site.url)
    pushed = set(re.findall(r"recv \(stream_id=\d+\) :path: (\S+)", out))
    assert out.count("recv PUSH_PROMISE frame") == 2, out
    assert pushed == {"/static/css/style.css", "/static/js/app.js"}, out
    # In nghttp's statistics a '*' marks a pushed response.
    for path in ("/static/css/style.css", "/static/js/app.js"):
        assert re.search(r"^\s*\d+\s+\+\S+ \*\s+.*\s200\s+\S+ " + re.escape(path) + "$",
                         out, re.MULTILINE), out
    assert re.search(r"\s200\s+\S+ /$", out, re.MULTILINE), out
    site.stop()


def test_site_serves_every_file_with_its_type(example, certificate):
    site = example("site/server.py", tls=certificate)
    files = static_files()
    assert {path.suffix for path in files} >= {".html", ".css", ".js"}
    for path in files:
        url = site.url + "static/" + path.relative_to(SITE_STATIC).as_posix()
        status, headers, body = curl_response("--http2", "-k", url)
        assert status == "HTTP/2 200", url
        assert headers["content-type"] == EXPECTED_TYPES[path.suffix], url
        assert headers["cache-control"], url
        assert headers["content-length"] == str(path.stat().st_size)
        assert body == path.read_bytes(), url

    # "/" is index.html; curl disables push, so preload links name the assets.
    heads, body = curl_responses("--http2", "-k", site.url)
    assert [status for status, _ in heads] == ["HTTP/2 103", "HTTP/2 200"]
    status, headers = heads[-1]
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    assert "</static/css/style.css>; rel=preload; as=style" in headers["link"]
    assert body == (SITE_STATIC / "index.html").read_bytes()

    status, headers, _ = curl_response("--http2", "-k", "--head", site.url + "static/js/app.js")
    assert status == "HTTP/2 200"
    assert headers["content-length"] == str((SITE_STATIC / "js" / "app.js").stat().st_size)

    for path in ("nope", "static/nope.css", "static/", "static/css", "index.html"):
        status, headers, _ = curl_response("--http2", "-k", site.url + path)
        assert status == "HTTP/2 404", path
        assert headers["content-type"] == "text/plain; charset=utf-8"

    status, headers, _ = curl_response("--http2", "-k", "-X", "POST", site.url)
    assert status == "HTTP/2 405"
    assert headers["allow"] == "GET, HEAD"
    site.stop()


TRAVERSALS = [
    "/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../server.py",
    "/static/../server.py",
    "/static/%2e%2e/%2e%2e/site/server.py",
    "/static/..%2f..%2fserver.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/css/../../../../../../../etc/passwd",
    "/static/%00/etc/passwd",
    "/static/\\..\\..\\server.py",
]


SITE_PRELOADS = ["</static/css/style.css>; rel=preload; as=style",
                 "</static/js/app.js>; rel=preload; as=script"]


def test_site_sends_early_hints_when_push_is_refused(example, certificate):
    # nghttp --no-push announces SETTINGS_ENABLE_PUSH=0, as browsers do.
    site = example("site/server.py", tls=certificate)
    out = nghttp("-nv", "--no-push", site.url)
    assert "recv PUSH_PROMISE" not in out
    stream = re.search(r"recv \(stream_id=(\d+)\) :status: 103", out)
    assert stream, out
    sid = stream.group(1)
    early = out[stream.start():out.index(f"recv (stream_id={sid}) :status: 200")]
    assert re.findall(rf"recv \(stream_id={sid}\) link: (.+)", early) == SITE_PRELOADS, out

    heads, body = curl_responses("--http2", "-k", site.url)
    (informational, hints), (final, headers) = heads
    assert (informational, final) == ("HTTP/2 103", "HTTP/2 200")
    assert hints["link"] == ", ".join(SITE_PRELOADS)
    assert headers["link"] == ", ".join(SITE_PRELOADS)  # the page's own preload links
    assert body == (SITE_STATIC / "index.html").read_bytes()
    site.stop()

    # Turned off: the page's preload links only.
    site = example("site/server.py", "--no-early-hints", tls=certificate)
    out = nghttp("-nv", "--no-push", site.url)
    assert ":status: 103" not in out and ":status: 200" in out, out
    site.stop()


def test_site_refuses_paths_outside_static(example, certificate):
    site = example("site/server.py", tls=certificate)
    origin = site.url.rstrip("/")
    server_source = (EXAMPLES / "site" / "server.py").read_bytes()
    for path in TRAVERSALS:
        status, _, body = curl_response("--http2", "-k", "--path-as-is", origin + path)
        assert status == "HTTP/2 404", path
        assert b"root:" not in body and server_source not in body, path
    site.stop()


def test_site_does_not_follow_symlinks_out(example, certificate, tmp_path):
    # A copy of the site, so that the links do not touch the source tree.
    copy = tmp_path / "site"
    shutil.copytree(EXAMPLES / "site", copy)
    (copy / "static" / "secret").symlink_to("/etc")
    (copy / "static" / "passwd.txt").symlink_to("/etc/passwd")
    (copy / "static" / "server.py").symlink_to(copy / "server.py")
    (copy / "static" / "alias.css").symlink_to(copy / "static" / "css" / "style.css")
    site = example(copy / "server.py", tls=certificate)
    for path in ("static/secret/passwd", "static/passwd.txt", "static/server.py"):
        status, _, body = curl_response("--http2", "-k", site.url + path)
        assert status == "HTTP/2 404", path
        assert b"root:" not in body
    # A link that stays inside static/ is served.
    status, headers, body = curl_response("--http2", "-k", site.url + "static/alias.css")
    assert status == "HTTP/2 200"
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert body == (SITE_STATIC / "css" / "style.css").read_bytes()
    site.stop()


# -- bookstore.py --------------------------------------------------------------------


def test_bookstore_all_books_multiplexed(example, certificate):
    httpx = pytest.importorskip("httpx")
    store = example("bookstore.py", tls=certificate)
    context = ssl.create_default_context(cafile=str(certificate[0]))

    async def crawl():
        # One connection: all 3000 requests are multiplexed over it.
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(http1=False, http2=True, verify=context, limits=limits,
                                     trust_env=False, timeout=30) as client:
            index = await client.get(store.url)
            assert index.status_code == 200
            assert index.http_version == "HTTP/2"
            assert index.headers["content-type"] == "application/json"
            ids = index.json()

            async def fetch(book_id):
                response = await client.get(f"{store.url}book", params={"id": book_id})
                return book_id, response

            started = time.monotonic()
            results = await asyncio.gather(*(fetch(book_id) for book_id in ids))
            return ids, results, time.monotonic() - started

    ids, results, elapsed = asyncio.run(crawl())
    assert len(ids) == 3000 and len(set(ids)) == 3000
    assert elapsed < 30
    for book_id, response in results:
        assert response.status_code == 200, book_id
        assert response.http_version == "HTTP/2"
        assert response.headers["content-type"] == "application/json"
        book = response.json()
        assert book["id"] == book_id
        assert set(book) == {"id", "title", "author", "year", "pages", "rating"}
        assert isinstance(book["title"], str) and isinstance(book["author"], str)
    store.stop()


def test_bookstore_errors_and_determinism(example):
    store = example("bookstore.py")
    status, headers, body = curl_response("--http2-prior-knowledge", store.url)
    ids = json.loads(body)
    assert status == "HTTP/2 200" and len(ids) == 3000

    for query, expected in (("book?id=1", 404), ("book?id=nope", 404), ("book", 400),
                            ("book?isbn=1", 400), ("shelf", 404)):
        status, headers, body = curl_response("--http2-prior-knowledge", store.url + query)
        assert status == f"HTTP/2 {expected}", query
        assert headers["content-type"] == "application/json"
        assert "error" in json.loads(body)

    _, _, first = curl_response("--http2-prior-knowledge", f"{store.url}book?id={ids[0]}")
    store.stop()

    # The same books on every run.
    again = example("bookstore.py")
    _, _, body = curl_response("--http2-prior-knowledge", again.url)
    assert json.loads(body) == ids
    _, _, book = curl_response("--http2-prior-knowledge", f"{again.url}book?id={ids[0]}")
    assert book == first
    again.stop()


def test_bookstore_under_h2load(example, tmp_path):
    # h2load: 3000 requests, 100 in flight on one connection.
    store = example("bookstore.py")
    _, _, body = curl_response("--http2-prior-knowledge", store.url)
    uris = tmp_path / "uris.txt"
    uris.write_text("".join(f"{store.url}book?id={book_id}\n" for book_id in json.loads(body)))
    result = run_peer("h2load", "-n", "3000", "-c", "1", "-m", "100", "-i", str(uris),
                      env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    assert "3000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
    assert "status codes: 3000 2xx" in result.stdout, result.stdout
    store.stop()


def test_site_in_headless_chromium(example, certificate, tmp_path):
    """A real browser loads the site over TLS: h2 by ALPN, stylesheet and script applied.

    The page's script writes the protocol the page came over (Resource Timing)
    into #status; Chromium dumps the DOM after running it.
    """
    site = example("site/server.py", "--access-log", tls=certificate)
    status = page_texts(site.url, ("status",), profile=tmp_path / "profile",
                        flags=("--ignore-certificate-errors",))["status"]
    assert status.startswith("Page loaded over h2 with 2 assets"), status
    site.stop()
    requests = re.findall(r'"GET (\S+) HTTP/2" (\d+)', site.stderr())
    assert ("/static/css/style.css", "200") in requests
    assert ("/static/js/app.js", "200") in requests
