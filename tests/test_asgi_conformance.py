"""Our own conformance check of the ASGI 3 HTTP spec (version 2.4), from the app's side.

``checker`` is an app that checks every scope it is given and every message
``receive()`` returns against the types and sequencing the spec prescribes,
and answers with the list of violations it found (empty when conformant).
Besides our reading of the spec, each scope and message is also checked against
the spec's types as asgiref (the spec's reference package, which we did not
write) declares them, by typeguard: a second, independent reading.
Requests of many shapes are sent by clients we did not write (httpx, curl,
nghttp, h2load); each must come back with no violation. The send side is
checked the other way: every form of message the spec allows an app to send
must be accepted.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote

import httpx
import pytest
from asgiref.typing import HTTPDisconnectEvent, HTTPRequestEvent, HTTPScope
from served import PEER_ENV
from typeguard import TypeCheckError, check_type

from conftest import run_peer
from nghttp2py.asgi import asgi_handler

SPEC_KEYS = {"type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
             "query_string", "root_path", "headers", "client", "server"}
OPTIONAL_KEYS = {"state", "extensions"}


def asgiref_violations(value: object, spec_type: object) -> list[str]:
    """What asgiref's declaration of spec_type finds wrong with value (typeguard's words)."""
    try:
        check_type(value, spec_type)
    except TypeCheckError as exc:
        return [f"asgiref {getattr(spec_type, '__name__', spec_type)}: {exc}"]
    return []


def scope_violations(scope: dict) -> list[str]:
    problems = asgiref_violations(scope, HTTPScope)
    missing = SPEC_KEYS - set(scope)
    if missing:
        problems.append(f"missing keys {sorted(missing)}")
    extra = set(scope) - SPEC_KEYS - OPTIONAL_KEYS
    if extra:
        problems.append(f"keys the spec does not define {sorted(extra)}")
    if scope.get("type") != "http":
        problems.append("type is not 'http'")
    asgi = scope.get("asgi", {})
    if asgi.get("version") != "3.0" or not isinstance(asgi.get("spec_version"), str):
        problems.append(f"asgi is {asgi!r}")
    if scope.get("http_version") not in ("1.0", "1.1", "2"):
        problems.append(f"http_version {scope.get('http_version')!r}")
    method = scope.get("method")
    if not isinstance(method, str) or method != method.upper():
        problems.append(f"method {method!r} is not an upper-case str")
    if scope.get("scheme") not in ("http", "https"):
        problems.append(f"scheme {scope.get('scheme')!r}")
    path, raw_path = scope.get("path"), scope.get("raw_path")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"path {path!r}")
    if not isinstance(raw_path, bytes) or b"?" in raw_path:
        problems.append(f"raw_path {raw_path!r}")
    elif isinstance(path, str) and unquote(raw_path.decode("ascii")) != path:
        problems.append(f"path {path!r} is not raw_path {raw_path!r} decoded")
    if not isinstance(scope.get("query_string"), bytes):
        problems.append("query_string is not bytes")
    if not isinstance(scope.get("root_path"), str):
        problems.append("root_path is not a str")
    names = []
    for pair in scope.get("headers", ()):
        name, value = pair
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            problems.append(f"header {pair!r} is not two byte strings")
            continue
        if name != name.lower() or name.startswith(b":"):
            problems.append(f"header name {name!r} is upper-case or a pseudo-header")
        names.append(name)
    if names.count(b"host") != 1:
        problems.append(f"{names.count(b'host')} host headers (the spec wants :authority as host)")
    for key in ("client", "server"):
        address = scope.get(key)
        if address is not None and not (
                len(address) == 2 and isinstance(address[0], str)
                and (isinstance(address[1], int) or (key == "server" and address[1] is None))):
            problems.append(f"{key} {address!r}")
    if "extensions" in scope and not isinstance(scope["extensions"], dict):
        problems.append("extensions is not a dict")
    return problems


async def checker(scope, receive, send):
    """Checks the scope and the request messages; answers with the violations as JSON."""
    if scope["type"] != "http":
        return
    problems = scope_violations(scope)
    body = b""
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            problems.append(f"got {message.get('type')!r} before the body was whole")
            break
        problems += asgiref_violations(message, HTTPRequestEvent)
        if not isinstance(message.get("body", b""), bytes):
            problems.append("body is not bytes")
        if not isinstance(message.get("more_body", False), bool):
            problems.append("more_body is not a bool")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    # Nothing but http.disconnect may follow, and only once the response is sent.
    later = asyncio.ensure_future(receive())
    await asyncio.sleep(0.01)
    if later.done():
        problems.append(f"receive() returned {later.result()!r} before the response")
    answer = json.dumps({"problems": problems, "body_length": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [[b"content-type", b"application/json"]]})
    await send({"type": "http.response.body", "body": answer})
    disconnect = await later
    if disconnect != {"type": "http.disconnect"} or asgiref_violations(disconnect,
                                                                       HTTPDisconnectEvent):
        raise AssertionError(f"not http.disconnect after the response: {disconnect!r}")


@pytest.fixture
def checked(serve):
    return serve(asgi_handler(checker, server=("127.0.0.1", 80)))


@pytest.mark.parametrize("path", ["/", "/plain", "/a%20b/%E2%9C%93", "/x?y=1&z=%2F",
                                  "/deep/er/path/?", "/%25percent"])
def test_paths(checked, path):
    with httpx.Client(http1=False, http2=True) as client:
        response = client.get(checked.url(path), headers={"X-Upper": "Case", "cookie": "a=1"})
    assert response.json() == {"problems": [], "body_length": 0}


@pytest.mark.parametrize("size", [0, 1, 16384, 100_000, 3 << 20])
def test_bodies(checked, size):
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        response = client.post(checked.url("/upload"), content=b"b" * size)
    assert response.json() == {"problems": [], "body_length": size}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"])
def test_methods(checked, method):
    with httpx.Client(http1=False, http2=True) as client:
        response = client.request(method, checked.url("/m"))
    assert response.json()["problems"] == []


def test_with_curl_and_nghttp(checked):
    result = run_peer("curl", "-s", "--http2-prior-knowledge", "-H", "Cookie: a=1",
                      "-H", "Cookie: b=2", "--data-binary", "x" * 5000, checked.url("/c"),
                      env=PEER_ENV)
    assert json.loads(result.stdout) == {"problems": [], "body_length": 5000}
    result = run_peer("nghttp", "-d", "-", "-H", ":method: PUT", checked.url("/n"),
                      input="abc", env=PEER_ENV)
    assert json.loads(result.stdout) == {"problems": [], "body_length": 3}


def test_many_concurrent_streams(checked):
    result = run_peer("h2load", "-n", "500", "-c", "2", "-m", "50", checked.url("/load?x=1"),
                      env=PEER_ENV)
    assert "500 succeeded, 0 failed" in result.stdout, result.stdout


# -- the send side: every form the spec allows is accepted ---------------------------------


@pytest.mark.parametrize("messages, body", [
    # headers as lists, as tuples, as a generator; body and more_body left out.
    ([{"type": "http.response.start", "status": 200, "headers": [[b"x-a", b"1"]]},
      {"type": "http.response.body"}], b""),
    ([{"type": "http.response.start", "status": 200,
       "headers": ((b"x-a", b"1") for _ in range(1))},
      {"type": "http.response.body", "body": b"gen"}], b"gen"),
    ([{"type": "http.response.start", "status": 204}, {"type": "http.response.body"}], b""),
    ([{"type": "http.response.start", "status": 200, "headers": []},
      {"type": "http.response.body", "body": b"a", "more_body": True},
      {"type": "http.response.body", "body": b"", "more_body": True},
      {"type": "http.response.body", "body": b"b"}], b"ab"),
    ([{"type": "http.response.start", "status": 200, "headers": [], "trailers": False},
      {"type": "http.response.body", "body": bytearray(b"ba")}], b"ba"),
])
def test_send_forms(serve, messages, body):
    async def app(scope, receive, send):
        for message in messages:
            await send(message)

    server = serve(asgi_handler(app))
    with httpx.Client(http1=False, http2=True) as client:
        response = client.get(server.url())
    assert response.status_code == messages[0]["status"]
    assert response.content == body
