"""httpx.AsyncClient on nghttp2py.HTTPXTransport: httpx's own features work unchanged
(streaming, timeouts, redirects, cookies, request bodies), errors are httpx's."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from clientkit import free_port, run, sha, silent_listener

from conftest import digest
from nghttp2py import BaseRequestHandler, HTTPXTransport

BIG = bytes(range(256)) * 40000  # 10 MB


class Handler(BaseRequestHandler):
    def on_headers(self):
        self.received = bytearray()
        path = self.path.decode()
        headers = dict(self.headers)
        if self.method != b"GET":
            return  # answered once the body is in
        if path == "/home":
            self.send_response(200, body=b"cookie=" + headers.get(b"cookie", b"-"))
        elif path == "/big":
            self.send_response(200, [("content-type", "application/octet-stream")], BIG)
        elif path == "/slow":
            asyncio.get_running_loop().call_later(2, self.send_response, 200)
        else:
            self.send_response(200, [("content-type", "application/json")],
                               json.dumps({k.decode(): v.decode() for k, v in self.headers}))

    def on_data(self, data):
        self.received += data

    def on_request_done(self):
        if self.path == b"/login":
            self.send_response(303, [("location", "/home"), ("set-cookie", "session=abc; Path=/")])
        elif self.method != b"GET":
            self.send_response(200, body=digest(bytes(self.received)))


@pytest.fixture
def server(serve):
    return serve(Handler)


def test_redirects_cookies_and_http2(server):
    async def main():
        async with httpx.AsyncClient(transport=HTTPXTransport(), base_url=server.url(""),
                                     follow_redirects=True) as client:
            response = await client.post("/login", content=b"user=me")
            assert response.http_version == "HTTP/2"
            assert [r.status_code for r in response.history] == [303]
            assert (response.status_code, response.text) == (200, "cookie=session=abc")
            assert client.cookies["session"] == "abc"
            echo = (await client.get("/echo", headers={"X-Mixed-Case": "v"})).json()
            assert echo["x-mixed-case"] == "v" and echo["cookie"] == "session=abc"
            assert "host" not in echo and echo["user-agent"].startswith("python-httpx")
    run(main())


def test_request_bodies(server):
    async def parts():
        for _ in range(10):
            yield b"x" * 100000

    async def main():
        async with httpx.AsyncClient(transport=HTTPXTransport(), base_url=server.url("")) as c:
            assert (await c.post("/p", content=BIG)).text == digest(BIG)
            assert (await c.post("/p", json={"a": 1})).text == digest(b'{"a":1}')
            assert (await c.post("/p", data={"a": "b c"})).text == digest(b"a=b+c")
            assert (await c.put("/p", content=parts())).text == digest(b"x" * 1000000)
    run(main())


def test_streaming_download(server):
    async def main():
        async with httpx.AsyncClient(transport=HTTPXTransport()) as client, \
                client.stream("GET", server.url("/big")) as response:
                assert response.headers["content-length"] == str(len(BIG))
                received = bytearray()
                count = 0
                async for chunk in response.aiter_bytes():
                    received += chunk
                    count += 1
                return bytes(received), count
    body, count = run(main())
    assert sha(body) == sha(BIG) and count > 10


def test_timeouts_are_httpx_exceptions(server):
    async def main(silent_port):
        async with httpx.AsyncClient(transport=HTTPXTransport()) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url("/slow"), timeout=httpx.Timeout(5, read=0.3))
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"https://127.0.0.1:{silent_port}/", timeout=0.3)
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/")
            # The connection that timed out one request still serves the next.
            assert (await client.get(server.url("/echo"))).status_code == 200
    with silent_listener() as port:
        run(main(port))


def test_tls_with_cafile(serve, server_ssl_context, certificate):
    server = serve(Handler, ssl=server_ssl_context)

    async def main():
        transport = HTTPXTransport(cafile=str(certificate[0]))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(server.url("/echo"))
            assert response.status_code == 200 and response.http_version == "HTTP/2"
        async with httpx.AsyncClient(transport=HTTPXTransport()) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(server.url("/echo"))
    run(main())
