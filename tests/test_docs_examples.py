"""The examples of docs/asgi.md and docs/wsgi.md, run as the pages show them."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from served import PEER_ENV, ServedPrograms

from conftest import ROOT, run_peer

CHECKOUT_ENV = dict(PEER_ENV, PYTHONPATH=str(ROOT))


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


@pytest.mark.parametrize("page, module", [("asgi.md", "hello_asgi"), ("wsgi.md", "hello_wsgi")])
def test_page_example(program, tmp_path, page, module):
    text = (ROOT / "docs" / page).read_text()
    source = re.search(rf"Save this as `{module}\.py`:\n\n```python\n(.*?)```", text, re.DOTALL)
    assert source, f"docs/{page} no longer shows {module}.py"
    (tmp_path / f"{module}.py").write_text(source.group(1))
    command = re.search(rf"^\$ nghttp2py ({module}:app)$", text, re.MULTILINE)
    assert command
    server = program(["-m", "nghttp2py", command.group(1)], cwd=tmp_path)
    shown = re.search(r"^\$ curl --http2-prior-knowledge http://127\.0\.0\.1:8080/(\S*)\n(.+)$",
                      text, re.MULTILINE)
    assert shown
    result = run_peer("curl", "-sS", "--http2-prior-knowledge", server.url + shown.group(1),
                      env=PEER_ENV)
    assert result.stdout == shown.group(2) + "\n"
    server.stop()


def test_asgi_page_lifespan_failure_line(tmp_path):
    text = (ROOT / "docs" / "asgi.md").read_text()
    shown = re.search(r"^\$ nghttp2py (failing:app)\n(nghttp2py: error: .+)$", text, re.MULTILINE)
    assert shown
    (tmp_path / "failing.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from nghttp2py.cli import main; sys.exit(main())",
         shown.group(1)], cwd=tmp_path, env=CHECKOUT_ENV, capture_output=True, text=True,
        timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.endswith(shown.group(2) + "\n"), result.stderr
