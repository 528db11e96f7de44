"""Seed 001: the article's Quart hello (examples/quart_hello/run.py) served with
``--quic-bind`` and ``--bind`` at once answers over HTTP/3 (aioquic's client), HTTP/2
(httpx) and HTTP/1.1 (curl); the TCP responses name the QUIC port in alt-svc.

Hypercorn, which the article runs, serves the same app to the same clients first:
that checks the clients.
"""
from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest
from h3client import h3_connect
from h3peers import Hypercorn, free_udp_port
from served import PEER_ENV, ServedPrograms

from conftest import ROOT, curl

HELLO = b"<b>Hello World!</b>"
APP = "examples.quart_hello.run:app"


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


async def h3_get(port: int) -> tuple[int | None, bytes]:
    async with h3_connect(port) as client:
        response = await client.request("GET", "/")
    return response.status, bytes(response.body)


def answers_on_every_protocol(tcp_port: int, quic_port: int, certificate) -> None:
    assert asyncio.run(h3_get(quic_port)) == (200, HELLO)
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(http2=True, verify=trusted, trust_env=False) as client:
        response = client.get(f"https://localhost:{tcp_port}/")
    assert response.http_version == "HTTP/2" and response.content == HELLO
    assert response.headers["alt-svc"].startswith(f'h3=":{quic_port}"')
    result = curl("--http1.1", "--cacert", str(certificate[0]), f"https://localhost:{tcp_port}/")
    assert result.http_version == "1.1" and result.body == HELLO
    assert result.header("alt-svc").startswith(f'h3=":{quic_port}"')


def test_hypercorn_as_the_article_runs_it(certificate, tmp_path):
    hypercorn = Hypercorn(APP, certificate, tmp_path)
    try:
        answers_on_every_protocol(hypercorn.tcp_port, hypercorn.quic_port, certificate)
    finally:
        hypercorn.stop()


def test_nghttp2py_serves_it_over_h3_h2_and_http1(program, certificate):
    quic_port = free_udp_port()
    served = program(["-m", "nghttp2py", APP, "--quic-bind", f"127.0.0.1:{quic_port}",
                      "--access-log"], tls=certificate,
                     env=dict(PEER_ENV, PYTHONPATH=str(ROOT)))
    tcp_port = int(served.url.rsplit(":", 1)[1].strip("/"))
    answers_on_every_protocol(tcp_port, quic_port, certificate)
    served.stop()
    log = served.stderr()
    for version in ("HTTP/3", "HTTP/2", "HTTP/1.1"):
        assert f'"GET / {version}" 200' in log, log
