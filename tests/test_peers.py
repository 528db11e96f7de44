"""Real HTTP/2 clients as oracles: nghttp, h2load, curl and httpx against the server.

Each test asserts on what the peer saw on the wire (its verbose frame dump,
its status line, the bytes it received), never on the server's own view.
"""
from __future__ import annotations

import hashlib
import re
import ssl

import pytest

from conftest import curl, run_peer
from nghttp2py import BaseRequestHandler

BODY = b"hello, world\n"
PUSHED_BODY = b"body{}"
# IMF-fixdate (RFC 9110 section 5.6.7), e.g. "Sat, 21 Nov 2026 15:07:53 GMT".
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$")


class HelloHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, [("content-type", "text/plain")], BODY)


class PushHandler(BaseRequestHandler):
    """Pushes /style.css with every response; remembers whether push() said yes."""

    promised: list = []

    def on_headers(self):
        if self.path == b"/":
            PushHandler.promised.append(self.push("/style.css", body=PUSHED_BODY))
        self.send_response(200, [("content-type", "text/html")], BODY)


class CountingUploadHandler(BaseRequestHandler):
    """Answers an upload with ``<byte count> <sha256>`` of what on_data received."""

    def on_headers(self):
        self.received = 0
        self.digest = hashlib.sha256()

    def on_data(self, data):
        self.received += len(data)
        self.digest.update(data)

    def on_request_done(self):
        self.send_response(200, [("content-type", "text/plain")],
                           f"{self.received} {self.digest.hexdigest()}")


def nghttp_headers(output: str, stream_id: int) -> dict[str, str]:
    """The response header fields ``nghttp -v`` printed as received on ``stream_id``."""
    headers = {}
    for match in re.finditer(rf"recv \(stream_id={stream_id}\) ([^:\s][^:]*|:[a-z]+): (.*)",
                             output):
        headers[match.group(1)] = match.group(2).strip()
    return headers


# -- nghttp ------------------------------------------------------------------------


def test_nghttp_verbose_shows_settings_status_and_response_headers(serve):
    server = serve(HelloHandler)
    result = run_peer("nghttp", "-v", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "recv SETTINGS frame" in out
    # The client's request is stream 13 after nghttp's five PRIORITY anchors;
    # find it from the HEADERS frame nghttp sent rather than assuming.
    stream_id = int(re.search(r"send HEADERS frame <[^>]*stream_id=(\d+)>", out).group(1))
    headers = nghttp_headers(out, stream_id)
    assert headers[":status"] == "200"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == str(len(BODY))
    assert headers["server"]
    assert IMF_FIXDATE.match(headers["date"]), headers["date"]
    assert re.search(rf"recv DATA frame <length={len(BODY)}, flags=0x01, stream_id={stream_id}>",
                     out)
    assert BODY.decode() in out
    # No stray empty DATA frame after the body (the old binding sent one).
    assert len(re.findall(rf"recv DATA frame <[^>]*stream_id={stream_id}>", out)) == 1


def test_nghttp_null_out_still_receives_whole_response(serve):
    server = serve(HelloHandler)
    result = run_peer("nghttp", "-nv", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    assert "recv SETTINGS frame" in result.stdout
    assert ":status: 200" in result.stdout
    assert f"content-length: {len(BODY)}" in result.stdout
    assert "; END_STREAM" in result.stdout
    # -n discards the body: it must not be printed.
    assert BODY.decode() not in result.stdout


def test_nghttp_receives_push_promise_and_pushed_body(serve):
    PushHandler.promised = []
    server = serve(PushHandler)
    result = run_peer("nghttp", "-v", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert PushHandler.promised == [True]
    promise = re.search(r"recv PUSH_PROMISE frame <[^>]*stream_id=(\d+)>\s*"
                        r"; END_HEADERS\s*\(padlen=0, promised_stream_id=(\d+)\)", out)
    assert promise, out
    parent_id, promised_id = int(promise.group(1)), int(promise.group(2))
    assert promised_id % 2 == 0  # server-initiated
    assert nghttp_headers(out, parent_id)[":path"] == "/style.css"
    pushed = nghttp_headers(out, promised_id)
    assert pushed[":status"] == "200"
    assert pushed["content-length"] == str(len(PUSHED_BODY))
    assert re.search(rf"recv DATA frame <length={len(PUSHED_BODY)}, flags=0x01, "
                     rf"stream_id={promised_id}>", out)
    assert PUSHED_BODY.decode() in out
    assert BODY.decode() in out


def test_nghttp_with_push_disabled_gets_no_promise(serve):
    PushHandler.promised = []
    server = serve(PushHandler)
    result = run_peer("nghttp", "-v", "--no-push", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    assert "PUSH_PROMISE" not in result.stdout
    assert PushHandler.promised == [False]
    assert BODY.decode() in result.stdout


def test_nghttp_over_tls_negotiates_h2(serve, server_ssl_context):
    server = serve(HelloHandler, ssl=server_ssl_context)
    result = run_peer("nghttp", "-v", server.url("/"), timeout=20)
    assert result.returncode == 0, result.stderr
    assert "negotiated protocol: h2\n" in result.stdout
    assert ":status: 200" in result.stdout
    assert BODY.decode() in result.stdout


# -- h2load ------------------------------------------------------------------------


def h2load_summary(output: str) -> tuple[int, int, int, int, int]:
    """(succeeded, failed, errored, timeout, 2xx) from h2load's report."""
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout", output)
    codes = re.search(r"status codes: (\d+) 2xx", output)
    assert requests and codes, output
    return (int(requests.group(4)), int(requests.group(5)), int(requests.group(6)),
            int(requests.group(7)), int(codes.group(1)))


def test_h2load_cleartext(serve):
    server = serve(HelloHandler)
    result = run_peer("h2load", "-n", "10000", "-c", "10", "-m", "10", server.url("/"),
                      timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert h2load_summary(result.stdout) == (10000, 0, 0, 0, 10000)
    assert "Application protocol: h2c" in result.stdout


def test_h2load_tls(serve, server_ssl_context):
    server = serve(HelloHandler, ssl=server_ssl_context)
    result = run_peer("h2load", "-n", "10000", "-c", "10", "-m", "10", server.url("/"),
                      timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Application protocol: h2\n" in result.stdout
    assert h2load_summary(result.stdout) == (10000, 0, 0, 0, 10000)


# -- curl --------------------------------------------------------------------------

def test_curl_prior_knowledge(serve):
    server = serve(HelloHandler)
    got = curl("--http2-prior-knowledge", server.url("/"))
    assert (got.body, got.status, got.http_version) == (BODY, 200, "2")


def test_curl_tls_alpn_insecure(serve, server_ssl_context):
    server = serve(HelloHandler, ssl=server_ssl_context)
    got = curl("--http2", "-k", server.url("/"))
    assert (got.body, got.status, got.http_version) == (BODY, 200, "2")


def test_curl_tls_alpn_verified_with_cacert(serve, server_ssl_context, certificate):
    server = serve(HelloHandler, ssl=server_ssl_context)
    got = curl("--http2", "--cacert", str(certificate[0]), server.url("/"))
    assert (got.body, got.status, got.http_version) == (BODY, 200, "2")


def test_curl_head_gets_headers_without_body(serve):
    server = serve(HelloHandler)
    got = curl("-I", "--http2-prior-knowledge", server.url("/"))
    assert (got.status, got.http_version) == (200, "2")
    assert got.header("content-length") == str(len(BODY))


def test_curl_upload_1mib(serve, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB, not all one byte
    path = tmp_path / "upload.bin"
    path.write_bytes(payload)
    server = serve(CountingUploadHandler)
    got = curl("--http2-prior-knowledge", "--data-binary", f"@{path}",
               "-H", "content-type: application/octet-stream", server.url("/upload"))
    assert (got.status, got.http_version) == (200, "2")
    assert got.body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


def test_curl_upload_over_tls(serve, server_ssl_context, certificate, tmp_path):
    payload = b"x" * 300_000
    path = tmp_path / "upload.bin"
    path.write_bytes(payload)
    server = serve(CountingUploadHandler, ssl=server_ssl_context)
    got = curl("--http2", "--cacert", str(certificate[0]), "--data-binary", f"@{path}",
               server.url("/upload"))
    assert (got.status, got.http_version) == (200, "2")
    assert got.body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


# -- httpx -------------------------------------------------------------------------


def test_httpx_http2_over_tls(serve, server_ssl_context, certificate):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    server = serve(HelloHandler, ssl=server_ssl_context)
    verify = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(http2=True, verify=verify, timeout=10) as client:
        responses = [client.get(server.url(f"/{i}")) for i in range(3)]
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        assert response.content == BODY
        assert response.headers["content-length"] == str(len(BODY))


def test_httpx_upload_over_tls(serve, server_ssl_context, certificate):
    httpx = pytest.importorskip("httpx")
    server = serve(CountingUploadHandler, ssl=server_ssl_context)
    payload = b"0123456789abcdef" * 65536  # 1 MiB
    verify = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(http2=True, verify=verify, timeout=10) as client:
        response = client.post(server.url("/upload"), content=payload)
    assert response.http_version == "HTTP/2"
    assert response.text == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
