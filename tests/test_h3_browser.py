"""Headless Chromium and HTTP/3: forced onto QUIC against Hypercorn (which checks the
flags), against the demo site (examples/site) with ``--quic-bind``, and finding the
site's ``Alt-Svc`` over HTTP/2. See tests/h3peers.py for why each flag is there.
"""
from __future__ import annotations

import re

import pytest
from h3peers import Hypercorn, chromium, free_udp_port, netlog_events
from served import ServedPrograms


@pytest.fixture
def example(tmp_path):
    programs = ServedPrograms(tmp_path)
    yield lambda script, *args, **kwargs: programs(["examples/" + script, *args], **kwargs)
    programs.kill()


def tcp_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


def test_chromium_over_quic_to_hypercorn(tmp_path, certificate):
    """The flags are right: Chromium loads a Hypercorn page over h3."""
    hypercorn = Hypercorn("apps.protocol_page:app", certificate, tmp_path)
    try:
        status = chromium(f"https://localhost:{hypercorn.quic_port}/", certificate,
                          quic_port=hypercorn.quic_port, profile=tmp_path / "profile")
    finally:
        hypercorn.stop()
    assert status == "Page loaded over h3"


def test_chromium_finds_the_sites_alt_svc(example, certificate, tmp_path):
    """Over HTTP/2, Chromium takes the site's alternative (the ALTSVC frame and the
    alt-svc field) and tries QUIC on its port: its net-log says so."""
    quic_port = free_udp_port()
    site = example("site/server.py", "--alt-svc", f'h3=":{quic_port}"; ma=60', tls=certificate)
    netlog = tmp_path / "netlog.json"
    status = chromium(f"https://localhost:{tcp_port(site.url)}/", certificate, netlog=netlog,
                      profile=tmp_path / "profile")
    site.stop()
    assert status.startswith("Page loaded over h2 with 2 assets"), status
    found = [event["alt_svc"] for event in
             netlog_events(netlog, "HTTP_STREAM_JOB_CONTROLLER_ALT_SVC_FOUND")]
    assert any(f"localhost:{quic_port}" in alternative for alternative in found), found


def test_site_over_h3_in_chromium(example, certificate, tmp_path):
    """The demo site, forced onto QUIC: the page and both assets come over h3."""
    quic_port = free_udp_port()
    site = example("site/server.py", "--access-log", "--quic-bind", f"127.0.0.1:{quic_port}",
                   tls=certificate)
    status = chromium(f"https://localhost:{quic_port}/", certificate, quic_port=quic_port,
                      profile=tmp_path / "profile")
    site.stop()
    assert status.startswith("Page loaded over h3 with 2 assets"), status
    requests = re.findall(r'"GET (\S+) HTTP/3" (\d+)', site.stderr())
    assert ("/", "200") in requests
    assert ("/static/css/style.css", "200") in requests
    assert ("/static/js/app.js", "200") in requests
