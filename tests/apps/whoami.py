"""Apps that answer with who they think the client is: ASGI ``app`` and WSGI ``wsgi_app``."""
from __future__ import annotations

import json
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"][0] if scope["client"] else None,
                       "scheme": scope["scheme"], "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"client": environ.get("REMOTE_ADDR"),
                        "scheme": environ["wsgi.url_scheme"]}).encode()]


async def tls_app(scope, receive, send):
    """Answers with the scope's tls extension."""
    if scope["type"] != "http":
        return
    tls = dict(scope["extensions"].get("tls") or {})
    tls["client_cert_chain"] = len(tls.get("client_cert_chain", ()))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(tls).encode()})
