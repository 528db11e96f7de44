"""``python -m nghttp2py MODULE:Handler``, run as a real program and checked with curl and nghttp.

Bad input must be one line on stderr and exit status 1, never a traceback;
a served program must print its URL, answer real peers and stop gracefully
on SIGINT or SIGTERM (a second signal aborts).
"""
from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from served import PEER_ENV, ServedPrograms

from conftest import ROOT, TEST_LOOP, run_peer
from nghttp2py.cli import parse_bind

CHECKOUT_ENV = dict(PEER_ENV, PYTHONPATH=str(ROOT))


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def run_cli(*args: str, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
    """``python -m nghttp2py ARGS`` to completion (it must not start serving)."""
    return subprocess.run([sys.executable, "-m", "nghttp2py", *args], cwd=cwd,
                          env=env or CHECKOUT_ENV, capture_output=True, text=True, timeout=30,
                          check=False)


def assert_one_error_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == f"python -m nghttp2py: error: {expected}\n"


# -- --bind -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:8443", ("::1", 8443)),
    ("[::]:65535", ("::", 65535)),
    (":8080", ("", 8080)),
])
def test_bind_forms(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", [
    "8080", "localhost", "::1:8080", "[127.0.0.1]:80", "host:", "host:http", "host:65536",
    "host:-1", "",
])
def test_bind_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bind(text)


def test_a_malformed_option_is_a_usage_error():
    result = run_cli("examples.hello:Handler", "--bind", "8080")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m nghttp2py ")
    assert "error: argument --bind: '8080' is not HOST:PORT" in result.stderr


def test_help_lists_every_option():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for option in ("MODULE:ATTRIBUTE", "--bind HOST:PORT", "--certfile FILE", "--keyfile FILE",
                   "--access-log", "--no-early-hints", "--loop {asyncio,uvloop}",
                   "--log-level", "python -m nghttp2py examples.hello:Handler"):
        assert option in result.stdout, option


# -- bad input: one line, status 1 ----------------------------------------------------------


@pytest.mark.parametrize("app, expected", [
    ("nosuchmodule:Handler",
     "no module named 'nosuchmodule' (looked in the current directory and sys.path)"),
    ("examples.nosuch:Handler",
     "no module named 'examples.nosuch' (looked in the current directory and sys.path)"),
    ("examples.hello:Nope", "module 'examples.hello' has no attribute 'Nope'"),
    ("examples.hello:nghttp2",
     "examples.hello:nghttp2 is a module, not a subclass of nghttp2py.BaseRequestHandler"),
    ("json:JSONDecoder",
     "json:JSONDecoder is the class JSONDecoder, not a subclass of nghttp2py.BaseRequestHandler"),
    ("examples.bookstore:BOOK_COUNT",
     "examples.bookstore:BOOK_COUNT is a int, not a subclass of nghttp2py.BaseRequestHandler"),
    ("examples/hello.py",
     "'examples/hello.py' is not MODULE:ATTRIBUTE (e.g. examples.hello:Handler)"),
    ("examples.hello", "'examples.hello' is not MODULE:ATTRIBUTE (e.g. examples.hello:Handler)"),
])
def test_a_bad_handler_name_is_one_line(app, expected):
    assert_one_error_line(run_cli(app), expected)


def test_an_unreadable_certificate_or_key_is_one_line(certificate, tmp_path):
    cert = str(certificate[0])
    missing = str(tmp_path / "missing.crt")
    assert_one_error_line(run_cli("examples.hello:Handler", "--certfile", missing),
                          f"cannot read --certfile {missing}: No such file or directory")
    assert_one_error_line(run_cli("examples.hello:Handler", "--certfile", cert, "--keyfile",
                                  str(tmp_path)),
                          f"cannot read --keyfile {tmp_path}: Is a directory")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert_one_error_line(run_cli("examples.hello:Handler", "--certfile", str(garbage)),
                          f"--certfile {garbage} holds no PEM certificate")
    assert_one_error_line(run_cli("examples.hello:Handler", "--certfile", cert),
                          f"no PEM private key matching the certificate in {cert} "
                          "(give it with --keyfile)")
    assert_one_error_line(run_cli("examples.hello:Handler", "--certfile", cert, "--keyfile",
                                  str(garbage)),
                          f"no PEM private key matching the certificate in {garbage}")


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("examples.hello:Handler", "--bind", f"127.0.0.1:{port}")
    assert_one_error_line(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")


def test_an_unknown_loop_in_the_environment_is_one_line():
    result = run_cli("examples.hello:Handler", env=dict(CHECKOUT_ENV, NGHTTP2PY_LOOP="trio"))
    assert_one_error_line(result, "NGHTTP2PY_LOOP must be one of asyncio, uvloop, not 'trio'")


def test_an_error_in_the_modules_own_code_shows_its_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("import nghttp2py\n1 / 0\n")
    result = run_cli("broken:Handler", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


# -- serving ---------------------------------------------------------------------------------


def test_serves_over_tls_on_ipv6_with_access_log(program, certificate):
    server = program(["-m", "nghttp2py", "examples.hello:Handler", "--access-log"],
                     bind="[::1]:0", tls=certificate)
    port = re.fullmatch(r"https://\[::1\]:(\d+)/", server.url)
    assert port, server.url
    # The certificate names localhost: curl checks it, connecting to ::1.
    result = run_peer("curl", "-sS", "--http2", "--cacert", str(certificate[0]),
                      "--resolve", f"localhost:{port.group(1)}:[::1]",
                      f"https://localhost:{port.group(1)}/curl", env=PEER_ENV)
    assert (result.returncode, result.stdout) == (0, "nghttp2 FTW\n"), result.stderr
    result = run_peer("nghttp", "-v", server.url + "nghttp", env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", result.stdout)
    assert "nghttp2 FTW" in result.stdout
    server.stop(signal.SIGTERM)
    log = server.stderr()
    assert re.search(rf"serving HTTP/2 \(TLS\) on \[::1\]:\d+, on the {TEST_LOOP} event loop",
                     log), log
    assert re.search(r'^::1 - - \[.+\] "GET /curl HTTP/2" 200 12$', log, re.MULTILINE), log
    assert re.search(r'^::1 - - \[.+\] "GET /nghttp HTTP/2" 200 12$', log, re.MULTILINE), log


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_interface_and_the_loop_named(program, loop):
    server = program(["-m", "nghttp2py", "examples.hello:Handler"], bind=":0", loop=loop)
    assert re.fullmatch(r"http://localhost:\d+/", server.url), server.url
    for host in ("127.0.0.1", "[::1]"):
        url = server.url.replace("localhost", host)
        result = run_peer("curl", "-sS", "--http2-prior-knowledge", url, env=PEER_ENV)
        assert (result.returncode, result.stdout) == (0, "nghttp2 FTW\n"), result.stderr
    server.stop()
    assert f"on the {loop} event loop" in server.stderr()


HANGING_APP = textwrap.dedent("""\
    import logging
    from nghttp2py import BaseRequestHandler

    class Handler(BaseRequestHandler):
        def on_headers(self):
            logging.getLogger("hanging_app").info("hanging on %s", self.path.decode())
    """)


def test_first_signal_is_graceful_second_aborts(program, tmp_path):
    # The module is found in the current directory.
    (tmp_path / "hanging_app.py").write_text(HANGING_APP)
    server = program(["-m", "nghttp2py", "hanging_app:Handler"], cwd=tmp_path)
    hang = subprocess.Popen(["curl", "-sS", "--http2-prior-knowledge", server.url + "hang"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=PEER_ENV)
    try:
        deadline = time.monotonic() + 5
        while "hanging on /hang" not in server.stderr():
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        server.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert server.process.poll() is None, "exited with a request in flight"
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(5) == 0, server.stderr()
        log = server.stderr()
        assert "SIGINT: shutting down gracefully" in log
        assert "second SIGINT: closing every connection now" in log
        assert "Traceback" not in log
        assert hang.wait(5) != 0  # its stream was cut off
    finally:
        hang.kill()
        hang.communicate()


def test_the_example_of_docs_cli_md(program, tmp_path):
    page = (ROOT / "docs" / "cli.md").read_text()
    source = re.search(r"Save this as `greeting\.py`:\n\n```python\n(.*?)```", page, re.DOTALL)
    assert source, "docs/cli.md no longer shows greeting.py"
    (tmp_path / "greeting.py").write_text(source.group(1))
    command = re.search(r"^\$ (python -m nghttp2py greeting:Handler)$", page, re.MULTILINE)
    assert command
    server = program(command.group(1).split()[1:], cwd=tmp_path)
    shown = re.search(r"^\$ curl --http2-prior-knowledge http://127\.0\.0\.1:8080/(\S+)\n(.+)$",
                      page, re.MULTILINE)
    assert shown
    result = run_peer("curl", "-sS", "--http2-prior-knowledge", server.url + shown.group(1),
                      env=PEER_ENV)
    assert result.stdout == shown.group(2) + "\n"
    server.stop()
    # The page's error example, as it is shown.
    error = re.search(r"^\$ python -m nghttp2py (greeting:\w+)\n(python -m nghttp2py: error: .+)$",
                      page, re.MULTILINE)
    assert error
    assert_one_error_line(run_cli(error.group(1), cwd=tmp_path),
                          error.group(2).removeprefix("python -m nghttp2py: error: "))
