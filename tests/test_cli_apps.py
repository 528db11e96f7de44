"""``python -m nghttp2py MODULE:APP`` with real apps, worker processes and config files.

Seed 000's Quart site with server push over TLS (nghttp, headless Chromium), a
Django project as ``django-admin startproject`` makes it, Flask over WSGI,
Unix sockets, ``--config``, and ``--workers``: shared port, a dead worker
replaced, SIGHUP replacing every worker without a failed request,
``--max-requests`` recycling.
"""
from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time

import h2.events
import httpx
import pytest
from browser import page_texts
from served import PEER_ENV, ServedPrograms

from conftest import ROOT, require, response_of, run_peer

TESTS = ROOT / "tests"
APPS_ENV = dict(PEER_ENV, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}")


@pytest.fixture
def program(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield programs
    programs.kill()


def h2c() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nghttp2py", *args], cwd=cwd, env=APPS_ENV,
                          capture_output=True, text=True, timeout=30, check=False)


# -- seed 000: the Quart site, with push -------------------------------------------------


def test_quart_site_pushes_its_assets(program, certificate):
    site = program(["-m", "nghttp2py", "examples.quart_site.app:app", "--access-log"],
                   tls=certificate, env=APPS_ENV)
    result = run_peer("nghttp", "-nv", site.url, env=PEER_ENV)
    assert result.returncode == 0, result.stderr
    # nghttp prints a promised request's fields, then the PUSH_PROMISE frame line.
    promised = re.findall(r"recv \(stream_id=\d+\) :path: (\S+)", result.stdout)
    assert sorted(promised) == ["/static/css/style.css", "/static/js/app.js"], result.stdout
    assert result.stdout.count("recv PUSH_PROMISE frame") == 2
    port = site.url.rsplit(":", 1)[1].strip("/")
    page = run_peer("curl", "-sS", "--http2", "--cacert", str(certificate[0]), "-w",
                    "%{http_version}", f"https://localhost:{port}/", env=PEER_ENV)
    assert "Served by Quart on nghttp2py" in page.stdout and page.stdout.endswith("2")
    site.stop()


def test_quart_pushed_bodies_are_the_files(program, certificate, h2_client):
    site = program(["-m", "nghttp2py", "examples.quart_site.app:app"], tls=certificate,
                   env=APPS_ENV)
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.set_alpn_protocols(["h2"])
    client = h2_client(int(site.url.rsplit(":", 1)[1].strip("/")), tls_context=context)
    stream_id = client.request("/")
    events = client.events_until(lambda e: isinstance(e, h2.events.PushedStreamReceived))
    pushed = {}
    while len(pushed) < 2:
        pushed.update({dict(e.headers)[b":path"].decode(): e.pushed_stream_id for e in events
                       if isinstance(e, h2.events.PushedStreamReceived)})
        if len(pushed) < 2:
            events += client.events_until(
                lambda e: isinstance(e, h2.events.PushedStreamReceived))
    client.read_streams(events, stream_id, *pushed.values())
    static = ROOT / "examples" / "site" / "static"
    for path, pushed_id in pushed.items():
        expected = (static / path.removeprefix("/static/")).read_bytes()
        assert bytes(response_of(events, pushed_id).body) == expected, path
    assert b"Served by Quart on nghttp2py" in bytes(response_of(events, stream_id).body)
    client.close()
    site.stop()


def test_quart_site_in_headless_chromium(program, certificate, tmp_path):
    """Chromium refuses push: it gets 103 Early Hints and loads the page with its assets;
    the page's WebSocket echo (the ASGI websocket scope) goes over the same HTTP/2
    connection with an extended CONNECT."""
    site = program(["-m", "nghttp2py", "examples.quart_site.app:app", "--access-log"],
                   tls=certificate, env=APPS_ENV)
    texts = page_texts(site.url, ("status", "echo"), profile=tmp_path / "profile",
                       flags=("--ignore-certificate-errors",),
                       until='!text("echo").startsWith("Opening")')
    assert texts["status"].startswith("Page loaded over h2 with 2 assets"), texts
    assert texts["echo"] == "Echo: hello over a WebSocket", texts
    site.stop()
    requests = re.findall(r'"GET (\S+) HTTP/2" (\d+)', site.stderr())
    assert ("/", "200") in requests
    assert ("/static/css/style.css", "200") in requests
    assert '"CONNECT /ws HTTP/2" 200' in site.stderr()


# -- Django, as django-admin startproject lays it out ------------------------------------

VIEWS = '''
import json
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def hello(request):
    return HttpResponse(f"django {request.method} {request.path} "
                        f"HTTP/{request.scope['http_version']}")


@csrf_exempt
def echo(request):
    return JsonResponse({"received": json.loads(request.body), "query": request.GET.get("q")})
'''


@pytest.fixture
def django_project(tmp_path):
    django_admin = [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)]
    subprocess.run(django_admin, check=True, env=APPS_ENV, timeout=60)
    (tmp_path / "mysite" / "views.py").write_text(VIEWS)
    urls = tmp_path / "mysite" / "urls.py"
    urls.write_text(urls.read_text().replace(
        "from django.urls import path",
        "from django.urls import path\nfrom mysite import views").replace(
        "path('admin/', admin.site.urls),",
        "path('admin/', admin.site.urls),\n    path('hello/', views.hello),\n"
        "    path('echo/', views.echo),"))
    return tmp_path


def test_django_project(program, django_project):
    server = program(["-m", "nghttp2py", "mysite.asgi:application"], cwd=django_project,
                     env=APPS_ENV)
    with h2c() as client:
        hello = client.get(server.url.replace("http://127.0.0.1", "http://localhost") + "hello/")
        echo = client.post(server.url + "echo/?q=x", json={"items": [1, 2, 3]})
        missing = client.get(server.url + "nothing/")
    assert hello.text == "django GET /hello/ HTTP/2"
    assert echo.json() == {"received": {"items": [1, 2, 3]}, "query": "x"}
    assert missing.status_code == 404
    result = run_peer("curl", "-s", "--http2-prior-knowledge", server.url + "hello/",
                      env=PEER_ENV)
    assert result.stdout == "django GET /hello/ HTTP/2"
    server.stop(signal.SIGTERM)


# -- WSGI, Unix sockets, config files --------------------------------------------------


def test_flask_over_wsgi_is_detected(program):
    server = program(["-m", "nghttp2py", "apps.flask_app:app"], env=APPS_ENV)
    result = run_peer("curl", "-s", "--http2-prior-knowledge", server.url, env=PEER_ENV)
    assert result.stdout == "flask over HTTP/2"
    server.stop()


def test_unix_socket(program, tmp_path):
    path = tmp_path / "app.sock"
    server = program(["-m", "nghttp2py", "apps.starlette_app:app", "--bind", "127.0.0.1:0",
                      "--bind", f"unix:{path}"], env=APPS_ENV, bind=None)
    result = run_peer("curl", "-s", "--http2-prior-knowledge", "--unix-socket", str(path),
                      "http://localhost/", env=PEER_ENV)
    assert result.stdout == "hello from lifespan over HTTP/2"
    server.stop()
    assert not path.exists() or path.is_socket()


def test_config_file(program, tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('app = "apps.flask_app:app"\ninterface = "wsgi"\n'
                      'bind = ["127.0.0.1:0"]\nmax-concurrent-streams = 7\n'
                      'max-request-body-size = 10\n'
                      'timeout-idle = "none"\naccess-log = "-"\n')
    server = program(["-m", "nghttp2py", "--config", str(config)], env=APPS_ENV, bind=None)
    result = run_peer("nghttp", "-nv", server.url, env=PEER_ENV)
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):7" in result.stdout
    result = run_peer("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "x" * 11,
                      server.url, env=PEER_ENV)
    assert result.stdout == "413"
    server.stop()


@pytest.mark.parametrize("content, expected", [
    ('colour = "blue"\n', "--config {path}: unknown option 'colour'"),
    ('workers = "many"\n', "--config {path}: workers: 'many' is not a positive whole number"),
    ("bind = [", "--config {path} is not TOML: "),
])
def test_bad_config_file_is_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = run_cli("apps.flask_app:app", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"python -m nghttp2py: error: {expected.format(path=path)}")
    assert result.stderr.count("\n") == 1


def test_lifespan_startup_failure_is_one_line(tmp_path):
    (tmp_path / "failing.py").write_text(
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'lifespan'\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n")
    result = run_cli("failing:app", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.endswith(
        "python -m nghttp2py: error: the app's lifespan startup failed: no database\n")


def test_ambiguous_app_asks_for_interface(tmp_path):
    (tmp_path / "odd.py").write_text("def app(*args):\n    pass\n")
    result = run_cli("odd:app", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot tell whether it is an ASGI or a WSGI app: give --interface" in result.stderr


# -- worker processes -------------------------------------------------------------------


def pids(url: str, count: int) -> list[int]:
    """The worker pid of ``count`` requests, each on a new connection."""
    seen = []
    for _ in range(count):
        with h2c() as client:
            seen.append(int(client.get(url + "pid").text))
    return seen


def worker_pids(supervisor: int) -> set[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(supervisor)],
                              capture_output=True, text=True, check=False).stdout.split()
    return {int(pid) for pid in children}


@pytest.mark.parametrize("sharing", [[], ["--reuse-port"]], ids=["one-socket", "reuse-port"])
def test_workers_share_the_port_and_a_dead_one_is_replaced(program, sharing):
    server = program(["-m", "nghttp2py", "apps.starlette_app:app", "--workers", "2", *sharing],
                     env=APPS_ENV)
    workers = worker_pids(server.process.pid)
    assert len(workers) == 2
    assert set(pids(server.url, 40)) == workers  # both accept connections
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        now = worker_pids(server.process.pid)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.1)
    assert set(pids(server.url, 40)) <= now
    server.stop(signal.SIGTERM)
    assert "died (killed by SIGKILL); starting another" in server.stderr()


def test_sighup_replaces_every_worker_without_refusing_a_connection(program):
    server = program(["-m", "nghttp2py", "apps.starlette_app:app", "--workers", "2"],
                     env=APPS_ENV)
    before = worker_pids(server.process.pid)
    # A request in flight on an old worker when it is told to drain (curl: httpx
    # gives up a request on the GOAWAY notice that announces the drain).
    in_flight = subprocess.Popen(
        [require("curl"), "-sS", "--http2-prior-knowledge", server.url + "slow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=PEER_ENV)
    time.sleep(0.3)
    server.process.send_signal(signal.SIGHUP)
    answered = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        # A new connection each time: never refused.
        result = run_peer("curl", "-sS", "--http2-prior-knowledge", server.url + "pid",
                          env=PEER_ENV)
        assert result.returncode == 0, result.stderr
        answered.append(int(result.stdout))
    out, err = in_flight.communicate(timeout=10)
    assert out.startswith("slow from "), err
    assert int(out.split()[-1]) in before
    deadline = time.monotonic() + 10
    while (after := worker_pids(server.process.pid)) & before or len(after) != 2:
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.1)
    assert set(answered) & after, "the new workers answered during the reload"
    server.stop(signal.SIGTERM)
    assert "SIGHUP: replacing the workers one by one" in server.stderr()


def test_max_requests_recycles_workers(program):
    server = program(["-m", "nghttp2py", "apps.starlette_app:app", "--workers", "2",
                      "--max-requests", "5", "--max-requests-jitter", "2"], env=APPS_ENV)
    seen = set()
    deadline = time.monotonic() + 20
    while len(seen) < 4:
        assert time.monotonic() < deadline, seen
        try:
            seen.update(pids(server.url, 5))
        except httpx.HTTPError:
            time.sleep(0.05)  # a connection that met a worker going away
    server.stop(signal.SIGTERM)
    assert "(--max-requests): shutting down to be replaced" in server.stderr()


# -- client certificates, --reload, the Python API ----------------------------------------


def test_client_certificate_reaches_the_tls_extension(program, certificate, tmp_path):
    client_cert, client_key = tmp_path / "client.crt", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=test-client", "-keyout", str(client_key), "-out", str(client_cert)],
                   check=True, capture_output=True)
    server = program(["-m", "nghttp2py", "apps.whoami:tls_app", "--ca-certs", str(client_cert)],
                     tls=certificate, env=APPS_ENV)
    with_cert = run_peer("curl", "-sS", "--http2", "--cacert", str(certificate[0]), "--cert",
                         str(client_cert), "--key", str(client_key),
                         server.url.replace("127.0.0.1", "localhost"), env=PEER_ENV)
    without = run_peer("curl", "-sS", "--http2", "--cacert", str(certificate[0]),
                       server.url.replace("127.0.0.1", "localhost"), env=PEER_ENV)
    server.stop()
    seen = json.loads(with_cert.stdout)
    assert seen["client_cert_name"] == "CN=test-client"
    assert seen["client_cert_chain"] == 1
    assert seen["tls_version"] in (0x0303, 0x0304)
    assert json.loads(without.stdout)["client_cert_name"] is None


def test_reload_restarts_on_a_source_change(program, tmp_path):
    source = tmp_path / "reloading.py"
    source.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'first version'})\n")
    server = program(["-m", "nghttp2py", "reloading:app", "--reload"], cwd=tmp_path,
                     env=APPS_ENV)
    result = run_peer("curl", "-sS", "--http2-prior-knowledge", server.url, env=PEER_ENV)
    assert result.stdout == "first version"
    time.sleep(0.05)
    source.write_text(source.read_text().replace("first version", "second version"))
    deadline = time.monotonic() + 15
    while True:
        result = run_peer("curl", "-sS", "--http2-prior-knowledge", server.url, env=PEER_ENV)
        if result.stdout == "second version":
            break
        assert time.monotonic() < deadline, (result.stdout, server.stderr())
        time.sleep(0.2)
    server.stop()
    assert "a source file changed: reloading" in server.stderr()


def test_the_python_api(tmp_path):
    path = tmp_path / "api.sock"
    (tmp_path / "api_program.py").write_text(
        "import nghttp2py\n"
        "from apps.whoami import app\n"
        f"nghttp2py.serve(app, bind=['unix:{path}'], loop='asyncio')\n")
    process = subprocess.Popen([sys.executable, "api_program.py"], cwd=tmp_path, env=APPS_ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            result = run_peer("curl", "-sS", "--http2-prior-knowledge", "--unix-socket",
                              str(path), "http://localhost/", env=PEER_ENV)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline and process.poll() is None, result.stderr
            time.sleep(0.1)
        assert json.loads(result.stdout)["client"] is None  # a Unix socket has no address
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.communicate()
