"""The client as programs: ``python -m nghttp2py.client``, examples/bookstore_client.py
against examples/bookstore.py, and the runnable example of docs/client.md."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from clientkit import free_port
from served import EXAMPLES, PEER_ENV, ServedPrograms

from conftest import ROOT

ENV = dict(PEER_ENV, PYTHONPATH=str(ROOT))


def python(*args: str, stdin: bytes | None = None, timeout: float = 60
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True,
                          timeout=timeout, env=ENV, cwd=ROOT, check=False)


@pytest.fixture
def bookstore(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs([EXAMPLES / "bookstore.py"])
    programs.kill()


def test_bookstore_client_fetches_every_book_multiplexed(bookstore):
    result = python(str(EXAMPLES / "bookstore_client.py"), bookstore.url)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rb"fetched 3000 books over one HTTP/2 connection in \d+\.\d\d s\n",
                        result.stdout), result.stdout


def test_bookstore_client_reports_a_refused_connection():
    result = python(str(EXAMPLES / "bookstore_client.py"), f"http://127.0.0.1:{free_port()}/")
    assert result.returncode == 1
    assert b"refused" in result.stderr and b"Traceback" not in result.stderr


def test_cli_fetches_urls_in_order_with_verbose_headers(bookstore):
    index = bookstore.url
    book = json.loads(python("-m", "nghttp2py.client", index).stdout)[0]
    result = python("-m", "nghttp2py.client", "-v", f"{index}book?id={book}", f"{index}nothing")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split(b"}", 1)
    assert json.loads(first + b"}")["id"] == book
    assert json.loads(second)["error"].startswith("no such resource")
    log = result.stderr.decode()
    assert f"[  1] GET {index}book?id={book}" in log
    assert "[  1] :status: 200" in log and "[  3] :status: 404" in log
    assert "[  1] content-type: application/json" in log
    assert log.count("END_STREAM") == 2


def test_cli_posts_a_file_and_reports_errors(bookstore, tmp_path):
    upload = tmp_path / "upload"
    upload.write_bytes(b"x" * 100000)
    result = python("-m", "nghttp2py.client", "-d", str(upload), "-H", "x-a: b", bookstore.url)
    assert result.returncode == 0, result.stderr
    assert b"only GET and HEAD" in result.stdout  # the bookstore's 405
    result = python("-m", "nghttp2py.client", f"http://127.0.0.1:{free_port()}/")
    assert result.returncode == 1
    assert result.stderr.startswith(b"error: could not connect") and b"refused" in result.stderr
    result = python("-m", "nghttp2py.client", "http://a.example/", "http://b.example/")
    assert result.returncode == 1
    assert result.stderr == b"error: every URL must be on one origin (one connection)\n"


def test_cli_over_tls_with_cafile(tmp_path, certificate):
    programs = ServedPrograms(tmp_path)
    try:
        server = programs([EXAMPLES / "bookstore.py"], tls=certificate)
        result = python("-m", "nghttp2py.client", "--cafile", str(certificate[0]),
                        server.url.replace("127.0.0.1", "localhost"))
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 3000
        result = python("-m", "nghttp2py.client", server.url)
        assert result.returncode == 1 and b"CERTIFICATE_VERIFY_FAILED" in result.stderr
    finally:
        programs.kill()


def test_the_runnable_example_of_docs_client_md(tmp_path):
    text = (ROOT / "docs" / "client.md").read_text()
    program, output = re.search(r"```python\n(.*?)```\n\nIt prints:\n\n```\n(.*?)```",
                                text, re.DOTALL).groups()
    script = tmp_path / "example.py"
    script.write_text(program)
    result = python(str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == output
