"""Real ASGI frameworks served unchanged: Starlette, FastAPI (Django and Quart: test_cli_apps.py),
exercised with httpx over HTTP/2 and with curl."""
from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from conftest import run_peer

MiB = 1 << 20


def h2c() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


@pytest.fixture
def starlette(serve_app):
    from apps import starlette_app
    starlette_app.background_log.clear()
    server = serve_app(starlette_app.app)
    yield server, starlette_app


def test_starlette_lifespan_state_reaches_requests(starlette):
    server, _ = starlette
    with h2c() as client:
        response = client.get(server.url())
    assert response.http_version == "HTTP/2"
    assert response.text == "hello from lifespan over HTTP/2"


def test_starlette_lifespan_shutdown_runs_on_close(starlette):
    server, module = starlette
    server.stop()
    assert module.background_log == ["shutdown"]


def test_starlette_streaming_response(starlette):
    server, _ = starlette
    with h2c() as client, client.stream("GET", server.url("/numbers?count=20")) as response:
        chunks = list(response.iter_text())
    assert "".join(chunks) == "".join(f"{n}\n" for n in range(20))
    assert len(chunks) > 1  # streamed, not buffered whole
    assert "content-length" not in response.headers


def test_starlette_streamed_upload(starlette):
    server, _ = starlette
    data = bytes(range(256)) * (6 * MiB // 256)

    def body():
        for start in range(0, len(data), 100_000):
            yield data[start:start + 100_000]

    with h2c() as client:
        response = client.post(server.url("/upload"), content=body())
    assert response.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_starlette_multipart_upload(starlette):
    server, _ = starlette
    content = b"\x00\x01binary" * 50_000
    with h2c() as client:
        response = client.post(server.url("/form"), data={"field": "value"},
                               files={"file": ("report.bin", content)})
    assert response.json() == {"field": "value", "filename": "report.bin",
                               "size": len(content),
                               "sha256": hashlib.sha256(content).hexdigest()}


def test_starlette_background_task_runs_after_the_response(starlette):
    server, module = starlette
    with h2c() as client:
        response = client.get(server.url("/later?id=job-1"))
    assert response.text == "queued"
    deadline = time.monotonic() + 5
    while "job-1" not in module.background_log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert module.background_log == ["job-1"]


def test_starlette_with_curl(starlette):
    server, _ = starlette
    result = run_peer("curl", "-s", "--http2-prior-knowledge", server.url("/numbers?count=3"))
    assert result.stdout == "0\n1\n2\n"
    result = run_peer("curl", "-s", "--http2-prior-knowledge", "-F", "field=from curl",
                      "-F", "file=@-;filename=stdin.txt", server.url("/form"),
                      input="piped text")
    assert json.loads(result.stdout)["field"] == "from curl"
    assert json.loads(result.stdout)["size"] == len("piped text")


@pytest.fixture
def fastapi(serve_app):
    from apps import fastapi_app
    return serve_app(fastapi_app.app)


def test_fastapi_json_body(fastapi):
    with h2c() as client:
        response = client.post(fastapi.url("/items"),
                               json={"name": "pen", "price": 2.5, "tags": ["office"]})
    assert response.status_code == 200
    assert response.json() == {"name": "pen", "price_with_tax": 3.0, "tags": ["office"]}


def test_fastapi_validation_error(fastapi):
    with h2c() as client:
        response = client.post(fastapi.url("/items"), json={"name": "pen", "price": "cheap"})
        missing = client.post(fastapi.url("/items"), content=b"{not json",
                              headers={"content-type": "application/json"})
        bad_path = client.get(fastapi.url("/items/abc"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]
    assert missing.status_code == 422
    assert bad_path.status_code == 422


def test_fastapi_plain_endpoint_in_thread_pool(fastapi):
    with h2c() as client:
        response = client.get(fastapi.url("/items/7?q=search"))
    assert response.json() == {"item_id": 7, "q": "search"}


def test_fastapi_with_curl(fastapi):
    result = run_peer("curl", "-s", "--http2-prior-knowledge", "-H",
                      "content-type: application/json", "-d", '{"name": "cup", "price": 10}',
                      fastapi.url("/items"))
    assert json.loads(result.stdout) == {"name": "cup", "price_with_tax": 12.0, "tags": []}
