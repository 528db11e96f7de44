"""``alt_svc``: the Alt-Svc field on every HTTP/1.1 and HTTP/2 response, and the HTTP/2
ALTSVC frame (RFC 7838), checked with curl, nghttp and the h2 package.

The frame goes on stream 0 right after the server's SETTINGS, to TLS clients that
sent SNI (the origin it names is ``https://`` + that host + the port); h2c and
clients without SNI get none (see docs/alt-svc.md).
"""
from __future__ import annotations

import re
import ssl
import subprocess
import sys

import h2.events
import pytest
from served import EXAMPLES, PEER_ENV, ServedPrograms

from conftest import ROOT, ServerThread, curl, run_peer
from nghttp2py import AppServer, BaseRequestHandler, HTTP2Server

ALT_SVC = 'h3=":4433"; ma=3600'


class Hello(BaseRequestHandler):
    def on_headers(self) -> None:
        if self.path == b"/own":
            self.send_response(200, headers=[("alt-svc", "clear")], body=b"own")
        elif self.path == b"/fail":
            raise RuntimeError("the engine's 500 carries it too")
        else:
            self.send_response(200, headers=[("content-type", "text/plain")], body=b"hello")


async def asgi_app(scope, receive, send):
    assert scope["type"] == "http"
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/own":
        headers.append((b"Alt-Svc", b"clear"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"asgi"})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


def tls_client_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.set_alpn_protocols(["h2"])
    return context


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
def test_header_over_tls(serve, server_ssl_context, certificate, version):
    server = serve(Hello, ssl=server_ssl_context, alt_svc=ALT_SVC)
    result = curl(version, "--cacert", str(certificate[0]),
                  f"https://localhost:{server.port}/")
    assert result.http_version == version.removeprefix("--http")
    assert result.values("alt-svc") == [ALT_SVC]
    assert result.body == b"hello"


@pytest.mark.parametrize("version", ["--http1.1", "--http2-prior-knowledge"])
def test_header_over_cleartext(serve, version):
    server = serve(Hello, alt_svc=ALT_SVC)
    assert curl(version, server.url()).values("alt-svc") == [ALT_SVC]
    # The application's own alt-svc wins; the engine's 500 carries the server's.
    assert curl(version, server.url("/own")).values("alt-svc") == ["clear"]
    failed = curl(version, server.url("/fail"))
    assert failed.status == 500 and failed.values("alt-svc") == [ALT_SVC]


def test_no_header_unless_asked(serve):
    server = serve(Hello)
    assert curl("--http2-prior-knowledge", server.url()).header("alt-svc") is None
    assert curl("--http1.1", server.url()).header("alt-svc") is None


@pytest.mark.parametrize("version", ["--http1.1", "--http2-prior-knowledge"])
def test_asgi_and_wsgi_apps(serve_app, version):
    asgi = serve_app(asgi_app, interface="asgi", alt_svc=ALT_SVC, lifespan="off")
    assert curl(version, asgi.url()).values("alt-svc") == [ALT_SVC]
    # Header names from the app are lower-cased before the engine looks for its own.
    assert curl(version, asgi.url("/own")).values("alt-svc") == ["clear"]
    wsgi = serve_app(wsgi_app, interface="wsgi", alt_svc=ALT_SVC)
    assert curl(version, wsgi.url()).values("alt-svc") == [ALT_SVC]


def test_altsvc_frame_follows_settings(serve, server_ssl_context, certificate, h2_client):
    server = serve(Hello, ssl=server_ssl_context, alt_svc=ALT_SVC)
    client = h2_client(server.port, tls_context=tls_client_context(certificate))
    events = client.events_until(
        lambda event: isinstance(event, h2.events.AlternativeServiceAvailable))
    announced = events[-1]
    assert announced.origin == f"https://localhost:{server.port}".encode()
    assert announced.field_value == ALT_SVC.encode()
    # Sent with the connection preface, before any request.
    assert isinstance(events[0], h2.events.RemoteSettingsChanged)
    assert client.get("/").status == 200


def test_no_altsvc_frame_without_sni(serve, server_ssl_context, certificate):
    """An IP-address client sends no SNI: the origin it would trust is not known."""
    server = serve(Hello, ssl=server_ssl_context, alt_svc=ALT_SVC)
    result = run_peer("nghttp", "-v", f"https://127.0.0.1:{server.port}/", env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    assert "recv ALTSVC" not in result.stdout
    assert f"alt-svc: {ALT_SVC}" in result.stdout


def test_no_altsvc_frame_over_h2c(serve, h2_client):
    server = serve(Hello, alt_svc=ALT_SVC)
    client = h2_client(server.port)
    stream_id = client.request("/")
    events = client.events_until(
        lambda event: isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id)
    assert not any(isinstance(event, h2.events.AlternativeServiceAvailable) for event in events)


def test_nghttp_shows_the_frame(serve, server_ssl_context):
    server = serve(Hello, ssl=server_ssl_context, alt_svc=ALT_SVC)
    result = run_peer("nghttp", "-v", f"https://localhost:{server.port}/", env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    frames = re.findall(r"recv (\w+) frame", result.stdout)
    # SETTINGS and the connection WINDOW_UPDATE make the preface; ALTSVC comes with it.
    assert frames[:3] == ["SETTINGS", "WINDOW_UPDATE", "ALTSVC"], frames
    assert (f"(origin=[https://localhost:{server.port}], altsvc_field_value=[{ALT_SVC}])"
            in result.stdout)


def test_application_sni_callback_still_runs(serve, server_ssl_context, certificate, h2_client):
    seen = []
    server_ssl_context.sni_callback = lambda ssl_object, name, context: seen.append(name)
    server = serve(Hello, ssl=server_ssl_context, alt_svc=ALT_SVC)
    client = h2_client(server.port, tls_context=tls_client_context(certificate))
    client.events_until(lambda event: isinstance(event, h2.events.AlternativeServiceAvailable))
    assert seen == ["localhost"]


@pytest.mark.parametrize("value", ["", "   ", "h3=\":443\"\r\nx: y", "h3=\":443\"; é", "a" * 9000])
def test_bad_values_are_refused(value):
    with pytest.raises(ValueError, match="alt_svc must be"):
        HTTP2Server(("127.0.0.1", 0), Hello, alt_svc=value)
    with pytest.raises(ValueError, match="alt_svc must be"):
        AppServer(asgi_app, interface="asgi", alt_svc=value)


def test_quic_bind_announces_its_port_by_default(serve, server_ssl_context, certificate):
    quic = {"quic_bind": [("127.0.0.1", 0)], "quic_certfile": str(certificate[0]),
            "quic_keyfile": str(certificate[1])}
    server = serve(Hello, ssl=server_ssl_context, **quic)
    quic_port = server.server.quic_ports[0]
    url = f"https://localhost:{server.port}/"
    for version in ("--http1.1", "--http2"):
        result = curl(version, "--cacert", str(certificate[0]), url)
        assert result.values("alt-svc") == [f'h3=":{quic_port}"; ma=86400']
    given = serve(Hello, ssl=server_ssl_context, alt_svc="clear", **quic)
    assert curl("--http2", "--cacert", str(certificate[0]),
                f"https://localhost:{given.port}/").values("alt-svc") == ["clear"]


def test_every_bind_of_an_app_server_announces_the_quic_port(server_ssl_context, certificate):
    """HTTP/3 is served from the first bind's server; the second one names its port too."""
    app_server = AppServer(asgi_app, ["127.0.0.1:0", "127.0.0.1:0"], interface="asgi",
                           ssl=server_ssl_context, lifespan="off", shutdown_timeout=2.0,
                           quic_bind=[("127.0.0.1", 0)], quic_certfile=str(certificate[0]),
                           quic_keyfile=str(certificate[1]))
    thread = ServerThread(app_server).start()
    try:
        quic_port = app_server.servers[0].quic_ports[0]
        for server in app_server.servers:
            result = curl("--http2", "--cacert", str(certificate[0]),
                          f"https://localhost:{server.port}/")
            assert result.values("alt-svc") == [f'h3=":{quic_port}"; ma=86400']
    finally:
        thread.stop()


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def test_cli_option_and_config_key(program, tmp_path):
    served = program([EXAMPLES / "hello.py", "--alt-svc", ALT_SVC])
    assert curl("--http1.1", served.url).values("alt-svc") == [ALT_SVC]
    served.stop()
    config = tmp_path / "server.toml"
    config.write_text("alt-svc = 'h3=\":8443\"'\n")
    served = program(["-m", "nghttp2py", "examples.hello:Handler", "--config", str(config)])
    assert curl("--http2-prior-knowledge", served.url).values("alt-svc") == ['h3=":8443"']
    served.stop()


def test_cli_refuses_a_bad_value():
    result = subprocess.run(
        [sys.executable, "-m", "nghttp2py", "examples.hello:Handler", "--alt-svc", "a\tb\n"],
        cwd=ROOT, env=dict(PEER_ENV, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=30, check=False)
    assert result.returncode == 2
    assert "--alt-svc: alt_svc must be" in result.stderr
