"""The client against HTTP/2 servers we did not write: nghttpd, h2o and Hypercorn.

Each server runs as a subprocess on a free port, serving files (or, for
Hypercorn, a small ASGI app) whose bytes the test knows, so that what the
client received is checked against what the server had, not against what it
reports.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from clientkit import chunks, free_port, run, sha

from conftest import ROOT, require
from nghttp2py import BaseResponseHandler, Client, HTTP2Client

MiB = 1 << 20
SIZES = {"empty.bin": 0, "small.txt": 13, "one.bin": MiB + 3, "big.bin": 100 * MiB}


@pytest.fixture(scope="module")
def docroot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docroot")
    for name, size in SIZES.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "index.html").write_bytes(b"<link rel=stylesheet href=/style.css>hello\n")
    (root / "style.css").write_bytes(b"body { color: green }\n")
    return root


def wait_listening(process: subprocess.Popen, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def start(argv: list[str], port: int, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               **kwargs)
    try:
        wait_listening(process, port)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture
def nghttpd(docroot, certificate):
    """``nghttpd(tls=False)``: an nghttpd on docroot pushing /style.css with /index.html."""
    started = []

    def launch(tls: bool = False) -> str:
        port = free_port()
        argv = [require("nghttpd"), "-d", str(docroot), "-p", "/index.html=/style.css"]
        argv += [str(port), str(certificate[1]), str(certificate[0])] if tls \
            else ["--no-tls", str(port)]
        started.append(start(argv, port))
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield launch
    for process in started:
        stop(process)


async def fetch_all(url: str, **kwargs) -> dict[str, bytes]:
    async with Client(url, **kwargs) as client:
        responses = await asyncio.gather(*(client.get(f"/{name}") for name in SIZES))
        assert [r.status for r in responses] == [200] * len(SIZES)
        return {name: await r.read() for name, r in zip(SIZES, responses)}


def assert_files(docroot: Path, bodies: dict[str, bytes]) -> None:
    for name, body in bodies.items():
        assert len(body) == SIZES[name]
        assert sha(body) == sha((docroot / name).read_bytes()), name


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_nghttpd_files_of_every_size(nghttpd, docroot, certificate, tls):
    url = nghttpd(tls)
    assert_files(docroot, run(fetch_all(url, cafile=str(certificate[0]) if tls else None)))


def test_nghttpd_push_accepted(nghttpd):
    url = nghttpd()

    async def main():
        async with Client(url, push=True) as client:
            response = await client.get("/index.html")
            assert await response.read() == b"<link rel=stylesheet href=/style.css>hello\n"
            [pushed] = response.pushed
            assert pushed.url == f"{url}/style.css"
            assert await pushed.read() == b"body { color: green }\n"
            assert pushed.status == 200
    run(main())


def test_nghttpd_push_rejected_by_the_default_handler(nghttpd):
    url = nghttpd()

    class Page(BaseResponseHandler):
        def __init__(self):
            self.body = bytearray()
            self.closed = asyncio.Event()
            self.promised = []

        def on_push_promise(self, push_promise):
            self.promised.append(push_promise.path)  # and rejected: not accepted

        def on_data(self, data):
            self.body += data

        def on_close(self, error_code):
            self.closed.set()

    async def main():
        port = int(url.rsplit(":", 1)[1])
        client = HTTP2Client(("127.0.0.1", port))
        page = client.send_request(url="/index.html", handler=Page)
        await page.closed.wait()
        assert page.promised == [b"/style.css"] and page.response_done
        assert bytes(page.body) == b"<link rel=stylesheet href=/style.css>hello\n"
        # The connection is fine after the RST_STREAM for the promise.
        again = client.send_request(url="/small.txt", handler=Page)
        await again.closed.wait()
        assert again.status == 200 and len(again.body) == SIZES["small.txt"]
        client.close()
        await client.wait_closed()
    run(main())


def test_nghttpd_upload_under_flow_control(nghttpd, docroot):
    url = nghttpd()
    data = os.urandom(16 * MiB)

    async def main():
        async with Client(url) as client:
            response = await client.post("/small.txt", body=chunks(data))
            assert response.status == 200
            return await response.read()
    assert run(main()) == (docroot / "small.txt").read_bytes()


@pytest.fixture
def h2o(docroot, certificate, tmp_path):
    """An h2o serving docroot over TLS (ALPN h2)."""
    port = free_port()
    config = tmp_path / "h2o.conf"
    config.write_text(textwrap.dedent(f"""\
        user: root
        pid-file: {tmp_path / "h2o.pid"}
        error-log: {tmp_path / "error.log"}
        listen:
          host: 127.0.0.1
          port: {port}
          ssl:
            certificate-file: {certificate[0]}
            key-file: {certificate[1]}
        hosts:
          default:
            paths:
              /:
                file.dir: {docroot}
        """))
    process = start([require("h2o"), "-c", str(config)], port)
    yield f"https://127.0.0.1:{port}"
    stop(process)


def test_h2o_files_of_every_size_over_tls(h2o, docroot, certificate):
    assert_files(docroot, run(fetch_all(h2o, cafile=str(certificate[0]))))


ASGI_APP = '''
import hashlib

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        digest.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/push" and "http.response.push" in scope.get("extensions", {}):
        await send({"type": "http.response.push", "path": "/pushed", "headers": []})
    if path.startswith("/bytes/"):
        body = bytes(range(256)) * (int(path[7:]) // 256)
    else:
        body = f"{scope['method']} {path} {size} {digest.hexdigest()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


@pytest.fixture
def hypercorn(tmp_path, certificate):
    (tmp_path / "asgi_peer.py").write_text(ASGI_APP)
    port = free_port()
    process = start([sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
                     "--certfile", str(certificate[0]), "--keyfile", str(certificate[1]),
                     "asgi_peer:app"], port, cwd=tmp_path,
                    env=dict(os.environ, PYTHONPATH=str(ROOT)))
    yield f"https://127.0.0.1:{port}"
    stop(process)


def test_hypercorn_bodies_both_ways(hypercorn, certificate):
    upload = os.urandom(8 * MiB)

    async def main():
        async with Client(hypercorn, cafile=str(certificate[0])) as client:
            download, posted, streamed = await asyncio.gather(
                client.get(f"/bytes/{4 * MiB}"), client.post("/up", body=upload),
                client.post("/up", body=chunks(upload)))
            assert await download.read() == bytes(range(256)) * (4 * MiB // 256)
            expected = f"POST /up {len(upload)} {sha(upload)}"
            assert await posted.text() == expected
            assert await streamed.text() == expected
            many = await asyncio.gather(*(client.get(f"/n{i}") for i in range(300)))
            assert [await r.text() for r in many][-1].startswith("GET /n299 0 ")
    run(main())


def test_hypercorn_push(hypercorn, certificate):
    async def main():
        async with Client(hypercorn, cafile=str(certificate[0]), push=True) as client:
            response = await client.get("/push")
            await response.read()
            [pushed] = response.pushed
            assert (await pushed.text()).startswith("GET /pushed 0 ")
    run(main())
