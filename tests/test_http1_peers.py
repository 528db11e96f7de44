"""One port, every client: curl in each mode, httpx, h2load --h1 and Python's http.client,
over cleartext and TLS, against the same server; the h2c upgrade; the examples."""
from __future__ import annotations

import asyncio
import http.client
import json
import re
import ssl
import subprocess

import pytest
from browser import page_texts
from served import EXAMPLES, PEER_ENV, ServedPrograms
from test_peers import h2load_summary

from conftest import ROOT, curl, digest, require, run_peer
from nghttp2py import BaseRequestHandler


class VersionHandler(BaseRequestHandler):
    """Answers ``VERSION METHOD PATH DIGEST-OF-BODY`` (the request body read whole)."""

    def on_headers(self):
        self.received = bytearray()

    def on_data(self, data):
        self.received += data

    def on_request_done(self):
        self.send_response(200, body=f"{self.http_version} {self.method.decode()} "
                                     f"{self.path.decode()} {digest(bytes(self.received))}\n")


def expected(version: str, path: str = "/", method: str = "GET", body: bytes = b"") -> str:
    return f"{version} {method} {path} {digest(body)}\n"


def fetch(*args: str) -> tuple[str, int, str]:
    """curl's (body, status, HTTP version of the response)."""
    result = curl(*args)
    return result.body.decode(), result.status, result.http_version


# -- curl, every mode, one port ------------------------------------------------------------


def test_curl_every_cleartext_mode_on_one_port(serve):
    server = serve(VersionHandler)
    url = server.url("/x")
    assert fetch(url) == (expected("1.1", "/x"), 200, "1.1")
    assert fetch("--http1.1", url) == (expected("1.1", "/x"), 200, "1.1")
    # Upgrade: h2c, answered on stream 1 over HTTP/2.
    assert fetch("--http2", url) == (expected("2", "/x"), 200, "2")
    assert fetch("--http2-prior-knowledge", url) == (
        expected("2", "/x"), 200, "2")


def test_curl_every_tls_mode_on_one_port(serve, server_ssl_context):
    server = serve(VersionHandler, ssl=server_ssl_context)
    url = server.url("/t")
    assert fetch("-k", url) == (expected("2", "/t"), 200, "2")
    assert fetch("-k", "--http1.1", url) == (expected("1.1", "/t"), 200, "1.1")
    # (curl reports the version of the response: the server answers as HTTP/1.1.)
    assert fetch("-k", "--http1.0", url) == (expected("1.1", "/t"), 200, "1.1")


def test_curl_h2c_upgrade_carries_the_request_body(serve, tmp_path):
    server = serve(VersionHandler)
    payload = bytes(range(256)) * 300
    (tmp_path / "payload").write_bytes(payload)
    body, status, version = fetch("--http2", "--data-binary", f"@{tmp_path / 'payload'}",
                                  server.url("/upload"))
    # curl upgrades a request with a body too, which arrives whole on stream 1.
    assert (body, status, version) == (expected("2", "/upload", "POST", payload), 200, "2")


def test_curl_many_requests_on_one_keep_alive_connection(serve):
    server = serve(VersionHandler)
    urls = [server.url(f"/{n}") for n in range(20)]
    result = run_peer("curl", "-sS", "-v", "--http1.1", *urls, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(expected("1.1", f"/{n}") for n in range(20))
    assert result.stderr.count("Re-using existing connection") == 19, result.stderr


def test_curl_chunked_upload_and_expect_continue(serve, tmp_path):
    server = serve(VersionHandler)
    payload = b"p" * 3_000_000
    (tmp_path / "big").write_bytes(payload)
    result = run_peer("curl", "-sS", "-v", "--http1.1", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", f"@{tmp_path / 'big'}", server.url("/chunked"),
                      timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected("1.1", "/chunked", "POST", payload)
    # curl asks for 100-continue before a large body: the server answers it.
    assert "HTTP/1.1 100 Continue" in result.stderr


def test_curl_head_over_http1(serve):
    server = serve(VersionHandler)
    result = run_peer("curl", "-sS", "-I", "--http1.1", server.url("/h"), timeout=30)
    assert result.returncode == 0, result.stderr
    lines = [line.strip().lower() for line in result.stdout.splitlines()]
    assert lines[0] == "http/1.1 200 ok"
    assert f"content-length: {len(expected('1.1', '/h', 'HEAD'))}" in lines


# -- h2load --h1: pipelined --------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h2load_h1_pipelined(serve, server_ssl_context, tls):
    server = serve(VersionHandler, ssl=server_ssl_context if tls else None)
    result = run_peer("h2load", "--h1", "-n", "5000", "-c", "4", "-m", "16",
                      server.url("/"), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Application protocol: http/1.1" in result.stdout
    assert h2load_summary(result.stdout) == (5000, 0, 0, 0, 5000)


def test_h2load_h2c_and_http1_together(serve):
    server = serve(VersionHandler)
    h1 = subprocess.Popen([require("h2load"), "--h1", "-n", "3000", "-c", "2", "-m", "8",
                           server.url("/")], stdout=subprocess.PIPE, text=True)
    h2 = run_peer("h2load", "-n", "3000", "-c", "2", "-m", "8", server.url("/"), timeout=60)
    out, _ = h1.communicate(timeout=60)
    assert h2load_summary(out) == (3000, 0, 0, 0, 3000)
    assert h2load_summary(h2.stdout) == (3000, 0, 0, 0, 3000)


# -- httpx and http.client ------------------------------------------------------------------------


def test_httpx_http1_and_http2_on_one_server(serve, server_ssl_context, certificate):
    httpx = pytest.importorskip("httpx")
    server = serve(VersionHandler, ssl=server_ssl_context)
    context = ssl.create_default_context(cafile=str(certificate[0]))

    async def fetch_all(http2: bool):
        async with httpx.AsyncClient(http1=True, http2=http2, verify=context,
                                     trust_env=False, timeout=10) as client:
            responses = await asyncio.gather(*(
                client.post(server.url(f"/{n}").replace("127.0.0.1", "localhost"),
                            content=b"b" * n) for n in range(30)))
            return [(r.http_version, r.text) for r in responses]

    for http2, version in ((False, "1.1"), (True, "2")):
        results = asyncio.run(fetch_all(http2))
        assert results == [(f"HTTP/{version}", expected(version, f"/{n}", "POST", b"b" * n))
                           for n in range(30)]


def test_httpx_cleartext_http1(serve):
    httpx = pytest.importorskip("httpx")
    server = serve(VersionHandler)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for n in range(3):
            response = client.put(server.url(f"/put{n}"), content=b"x" * (n * 100000))
            assert response.http_version == "HTTP/1.1"
            assert response.text == expected("1.1", f"/put{n}", "PUT", b"x" * (n * 100000))


def test_http_client_over_tls(serve, server_ssl_context):
    server = serve(VersionHandler, ssl=server_ssl_context)
    context = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    for n in range(3):
        conn.request("GET", f"/tls{n}")
        response = conn.getresponse()
        assert response.read().decode() == expected("1.1", f"/tls{n}")
    assert conn.sock.selected_alpn_protocol() is None  # http.client offers no ALPN
    conn.close()


def test_tls_alpn_http1_1_is_selected(serve, server_ssl_context):
    server = serve(VersionHandler, ssl=server_ssl_context)
    context = ssl._create_unverified_context()
    context.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    conn.request("GET", "/alpn")
    assert conn.getresponse().read().decode() == expected("1.1", "/alpn")
    assert conn.sock.selected_alpn_protocol() == "http/1.1"
    conn.close()


def test_access_log_names_the_protocol(serve, log_records):
    import logging
    log_records.set_level(logging.INFO, logger="nghttp2py.access")
    server = serve(VersionHandler, access_log=True)
    curl(server.url("/one"))
    curl("--http2-prior-knowledge", server.url("/two"))
    curl("--http2", server.url("/three"))
    lines = [r.getMessage() for r in log_records.records if r.name == "nghttp2py.access"]
    assert any('"GET /one HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /two HTTP/2" 200' in line for line in lines), lines
    assert any('"GET /three HTTP/2" 200' in line for line in lines), lines


# -- the examples, without --http2 --------------------------------------------------------------


@pytest.fixture
def example(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield lambda script, *args, **kwargs: programs([EXAMPLES / script, *args], **kwargs)
    programs.kill()


@pytest.mark.parametrize("script", ["hello.py", "push.py", "streaming.py", "bookstore.py"])
def test_examples_answer_plain_curl(example, script):
    server = example(script)
    url = server.url.replace("127.0.0.1", "localhost")
    result = subprocess.run([require("curl"), "-sS", "--max-time", "10", "-o", "/dev/null",
                             "-w", "%{http_code} %{http_version}", url],
                            capture_output=True, text=True, timeout=30, env=PEER_ENV,
                            check=False)
    assert result.returncode == 0, result.stderr
    status, version = result.stdout.split()
    assert version == "1.1" and status in ("200", "404"), result.stdout
    server.stop()


def test_site_in_headless_chromium_over_http1(tmp_path, certificate):
    """A browser with HTTP/2 disabled loads the demo site over TLS and HTTP/1.1."""
    programs = ServedPrograms(tmp_path)
    try:
        site = programs([EXAMPLES / "site" / "server.py", "--access-log"], tls=certificate)
        status = page_texts(site.url, ("status",), profile=tmp_path / "profile",
                            flags=("--disable-http2", "--ignore-certificate-errors"))["status"]
        assert status.startswith("Page loaded over http/1.1 with 2 assets"), status
        site.stop()
        requests = re.findall(r'"GET (\S+) HTTP/1.1" (\d+)', site.stderr())
        assert ("/static/css/style.css", "200") in requests, site.stderr()
        assert ("/static/js/app.js", "200") in requests
    finally:
        programs.kill()


def test_the_http1_page_example_runs(tmp_path):
    """docs/http1.md's example, run as its reader would, with the clients it names."""
    page = (ROOT / "docs" / "http1.md").read_text()
    script = tmp_path / "http1_demo.py"
    script.write_text(re.search(r"```python\n(.*?)```", page, re.DOTALL).group(1))
    programs = ServedPrograms(tmp_path)
    try:
        server = programs([script])
        assert fetch(server.url) == ("HTTP/1.1 GET / (0 bytes)\n", 200, "1.1")
        assert fetch("--http2", "-d", "hello", server.url) == (
            "HTTP/2 POST / (5 bytes)\n", 200, "2")
        assert fetch("--http2-prior-knowledge", server.url) == (
            "HTTP/2 GET / (0 bytes)\n", 200, "2")
        load = run_peer("h2load", "--h1", "-n", "1000", "-c", "2", "-m", "10", server.url,
                        timeout=60)
        assert h2load_summary(load.stdout) == (1000, 0, 0, 0, 1000)
        server.stop()
    finally:
        programs.kill()


def test_json_examples_over_http1(example):
    store = example("bookstore.py")
    conn = http.client.HTTPConnection(store.url.split("//")[1].rstrip("/").split(":")[0],
                                      int(store.url.rstrip("/").rsplit(":", 1)[1]), timeout=10)
    conn.request("GET", "/")
    ids = json.loads(conn.getresponse().read())
    conn.request("GET", f"/book?id={ids[0]}")
    book = json.loads(conn.getresponse().read())
    assert book["id"] == ids[0]
    store.stop()


def test_command_line_no_http1_serves_http2_only(tmp_path):
    programs = ServedPrograms(tmp_path)
    try:
        server = programs(["-m", "nghttp2py", "examples.hello:Handler", "--no-http1"])
        refused = curl(server.url)
        assert (refused.status, refused.header("connection")) == (505, "close")
        assert fetch("--http2-prior-knowledge", server.url) == ("nghttp2 FTW\n", 200, "2")
        server.stop()
        server = programs(["-m", "nghttp2py", "examples.hello:Handler"])
        assert fetch(server.url) == ("nghttp2 FTW\n", 200, "1.1")
        server.stop()
    finally:
        programs.kill()
