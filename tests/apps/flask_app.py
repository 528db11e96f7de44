"""A Flask app, served over WSGI: forms, JSON, uploads, streaming, errors."""
from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def home():
    return f"flask over {request.environ['SERVER_PROTOCOL']}"


@app.post("/upload")
def upload():
    digest = hashlib.sha256()
    size = 0
    while chunk := request.stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest())


@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify(received=data, query=request.args.get("q"))


@app.get("/stream")
def stream():
    count = int(request.args.get("count", "5"))

    def lines():
        for number in range(count):
            yield f"line {number}\n"

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/error")
def error():
    raise RuntimeError("flask view failed")
