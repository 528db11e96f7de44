"""docs/deploy.md, run: behind nghttpx, the PROXY protocol, proxy headers, systemd
socket activation."""
from __future__ import annotations

import json
import re
import shlex
import socket
import ssl
import struct
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import pytest
from served import PEER_ENV, ServedPrograms
from test_cli_apps import APPS_ENV

from conftest import ROOT, require, run_peer
from nghttp2py.proxy_headers import TrustedProxies, forwarded_client
from nghttp2py.proxy_protocol import ProxyProtocolError, parse_v1, parse_v2

PAGE = (ROOT / "docs" / "deploy.md").read_text()


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def documented(command: str) -> list[str]:
    """The words of the documented command line that starts with ``command``."""
    match = re.search(rf"^({re.escape(command)}(?:[^\n]*\\\n)*[^\n]*)$", PAGE, re.MULTILINE)
    assert match, f"docs/deploy.md no longer shows {command}"
    return shlex.split(match.group(1).replace("\\\n", " "))


# -- proxy headers -------------------------------------------------------------------


@pytest.mark.parametrize("headers, expected", [
    ([(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
     ("203.0.113.7", "https")),
    # A chain: the last address that is not a trusted proxy is the client.
    ([(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7, 127.0.0.1")], ("203.0.113.7", None)),
    ([(b"forwarded", b'for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"')],
     ("2001:db8::1", "https")),
    ([(b"forwarded", b"for=192.0.2.60:80"), (b"x-forwarded-for", b"203.0.113.7")],
     ("192.0.2.60", None)),
    ([(b"x-forwarded-proto", b"gopher")], (None, None)),
])
def test_forwarded_client(headers, expected):
    assert forwarded_client(headers, TrustedProxies("127.0.0.1,10.0.0.0/8")) == expected


def test_trusted_proxies():
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8, ::1")
    assert "10.1.2.3" in trusted and "::1" in trusted and None in trusted
    assert "192.0.2.1" not in trusted and "not an address" not in trusted
    assert "192.0.2.1" in TrustedProxies("*")
    with pytest.raises(ValueError, match="'nonsense' is not an IP address"):
        TrustedProxies("nonsense")


def test_proxy_headers_only_from_trusted_peers(serve_app):
    import httpx
    from apps import whoami
    forged = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    for app, options in ((whoami.app, {}), (whoami.wsgi_app, {"interface": "wsgi"})):
        trusting = serve_app(app, proxy_headers=True, **options)
        distrusting = serve_app(app, proxy_headers=True, forwarded_allow_ips="10.0.0.1",
                                **options)
        with httpx.Client(http1=False, http2=True) as client:
            believed = client.get(trusting.url(), headers=forged).json()
            ignored = client.get(distrusting.url(), headers=forged).json()
        assert (believed["client"], believed["scheme"]) == ("203.0.113.7", "https")
        assert (ignored["client"], ignored["scheme"]) == ("127.0.0.1", "http")


# -- the PROXY protocol ----------------------------------------------------------------


def test_parse_headers():
    assert parse_v1(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\n") == ("203.0.113.9", 5555)
    assert parse_v1(b"PROXY TCP6 2001:db8::9 ::1 5555 443\r\n") == ("2001:db8::9", 5555)
    assert parse_v1(b"PROXY UNKNOWN\r\n") is None
    for bad in (b"PROXY TCP4 2001:db8::9 ::1 1 2\r\n", b"PROXY TCP4 x y 1 2\r\n",
                b"GET / HTTP/1.1\r\n"):
        with pytest.raises(ProxyProtocolError):
            parse_v1(bad)
    assert parse_v2(proxy_v2("203.0.113.9", 5555)) == ("203.0.113.9", 5555)
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    assert parse_v2(local) is None


def proxy_v2(host: str, port: int) -> bytes:
    body = socket.inet_aton(host) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 443)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def whoami_over(sock: socket.socket) -> dict:
    """GET / on an open socket (the PROXY header already sent): the app's JSON."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                          (":path", "/")], end_stream=True)
    sock.sendall(conn.data_to_send())
    body = b""
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
            if isinstance(event, h2.events.StreamEnded):
                return json.loads(body)
        sock.sendall(conn.data_to_send())


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\n", proxy_v2("203.0.113.9", 5555),
], ids=["v1", "v2"])
def test_proxy_protocol_over_tls(program, certificate, header):
    server = program(["-m", "nghttp2py", "apps.whoami:app", "--proxy-protocol"],
                     tls=certificate, env=APPS_ENV)
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(header)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            assert whoami_over(tls)["client"] == "203.0.113.9"
    server.stop()


def test_proxy_protocol_with_curl_and_garbage(program):
    server = program(["-m", "nghttp2py", "apps.whoami:app", "--proxy-protocol"], env=APPS_ENV)
    result = run_peer("curl", "-s", "--haproxy-protocol", "--interface", "127.0.0.9",
                      "--http2-prior-knowledge", server.url, env=PEER_ENV)
    assert json.loads(result.stdout)["client"] == "127.0.0.9"
    plain = run_peer("curl", "-s", "--http2-prior-knowledge", server.url, env=PEER_ENV)
    assert plain.returncode != 0  # no header: closed
    server.stop()
    assert "did not start with a PROXY header" in server.stderr()


# -- behind nghttpx, as the page shows it --------------------------------------------


def test_behind_nghttpx_with_the_proxy_protocol(program, certificate, tmp_path):
    backend_port, frontend_port = free_port(), free_port()
    ours = documented("nghttp2py myapp:app --bind 127.0.0.1:8000 --proxy-headers")
    ours = ["-m", "nghttp2py", "apps.whoami:app"] + [
        arg.replace("8000", str(backend_port)) for arg in ours[2:]]
    server = program(ours, env=APPS_ENV, bind=None)
    nghttpx = [require("nghttpx")] + [
        arg.replace("0.0.0.0,8443", f"127.0.0.1,{frontend_port}")
           .replace("127.0.0.1,8000", f"127.0.0.1,{backend_port}")
        for arg in documented("nghttpx --frontend")[1:-2]]
    nghttpx += ["--workers=1", f"--pid-file={tmp_path / 'nghttpx.pid'}",
                f"--errorlog-file={tmp_path / 'nghttpx.log'}", str(certificate[1]),
                str(certificate[0])]
    proxy = subprocess.Popen(nghttpx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            result = run_peer("curl", "-s", "--haproxy-protocol", "--interface", "127.0.0.5",
                              "--http2", "--cacert", str(certificate[0]),
                              f"https://localhost:{frontend_port}/", env=PEER_ENV)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, (result.stderr, (tmp_path / "nghttpx.log").read_text())
        seen = json.loads(result.stdout)
        assert (seen["client"], seen["scheme"]) == ("127.0.0.5", "https")
    finally:
        proxy.terminate()
        proxy.wait(10)
    server.stop()


# -- systemd socket activation, with the unit's command line ------------------------------


def test_systemd_socket_activation_with_workers(certificate):
    unit = re.search(r"^ExecStart=(.*)$", PAGE, re.MULTILINE)
    assert unit, "docs/deploy.md no longer shows the unit's ExecStart"
    words = shlex.split(unit.group(1))
    assert words[1] == "myapp:app" and "fd://3" in words
    options = [word.replace("/etc/myapp/server.crt", str(certificate[0]))
               .replace("/etc/myapp/server.key", str(certificate[1])) for word in words[2:]]
    options[options.index("--workers") + 1] = "2"
    port = free_port()
    activate = subprocess.Popen(
        [require("systemd-socket-activate"), "-l", f"127.0.0.1:{port}",
         *(f"-E{name}" for name in ("PYTHONPATH", "NGHTTP2PY_LOOP", "PATH")), sys.executable,
         "-m", "nghttp2py", "apps.whoami:app", *options],
        env=APPS_ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            result = run_peer("curl", "-s", "--http2", "--cacert", str(certificate[0]),
                              f"https://localhost:{port}/", env=PEER_ENV)
            if result.returncode == 0:
                pids.add(json.loads(result.stdout)["pid"])
        assert len(pids) == 2, "both workers answer on the socket systemd passed"
    finally:
        activate.terminate()
        _, err = activate.communicate(timeout=20)
    assert activate.returncode == 0, err

