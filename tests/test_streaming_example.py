"""examples/streaming.py, checked with curl and nghttp."""
from __future__ import annotations

import hashlib
import os
import re

import pytest
from served import EXAMPLES, ServedPrograms

from conftest import run_peer


@pytest.fixture
def streaming_server(tmp_path):
    """The URL of examples/streaming.py, running as a plain script."""
    programs = ServedPrograms(tmp_path)
    server = programs([EXAMPLES / "streaming.py"])
    yield server.url
    server.stop()
    programs.kill()


def test_upload_is_hashed_and_trailer_carries_the_digest(streaming_server, tmp_path):
    body = os.urandom(3 * 1024 * 1024 + 7)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    result = run_peer("nghttp", "-v", "-d", str(upload), streaming_server + "upload")
    assert result.returncode == 0, result.stderr
    assert f"received {len(body)} bytes" in result.stdout
    assert re.search(r"recv \(stream_id=\d+\) x-sha256: " + hashlib.sha256(body).hexdigest(),
                     result.stdout)


def test_ticks_stream_from_an_async_generator(streaming_server):
    result = run_peer("curl", "-sS", "--http2-prior-knowledge", "-N",
                      streaming_server + "ticks?n=5")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"tick {n}\n" for n in range(1, 6))


def test_early_hints_precede_the_page(streaming_server):
    result = run_peer("nghttp", "-v", streaming_server)
    assert result.returncode == 0, result.stderr
    informational = result.stdout.index(":status: 103")
    final = result.stdout.index(":status: 200")
    assert informational < final
    assert "link: </style.css>; rel=preload; as=style" in result.stdout
