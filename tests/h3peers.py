"""HTTP/3 peers for the tests: headless Chromium forced onto QUIC, Hypercorn with
``--quic-bind``, and what they need (a free UDP port, the certificate's SPKI hash).

Chromium resolves ``localhost`` to ``::1`` first and, for an origin forced onto
QUIC, does not fall back to IPv4: the servers here listen on 127.0.0.1, so
``localhost`` is mapped to it (``--host-resolver-rules``). A self-signed
certificate is accepted over QUIC only for an origin in
``--origin-to-force-quic-on`` whose SPKI hash is in
``--ignore-certificate-errors-spki-list``; an alternative found through Alt-Svc
is held to a known root (net error -356, ``ERR_QUIC_CERT_ROOT_NOT_KNOWN``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import page_texts
from served import PEER_ENV

from conftest import ROOT

# Chromium resolves localhost to ::1 first (see above).
LOCALHOST_IPV4 = "--host-resolver-rules=MAP localhost 127.0.0.1"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spki_hash(certificate: Path) -> str:
    """Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's pin)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium(url: str, certificate: tuple[Path, Path], *, quic_port: int | None = None,
             netlog: Path | None = None, profile: Path) -> str | None:
    """Load ``url`` in headless Chromium and return the text of the page's #status.

    With ``quic_port``, ``localhost:quic_port`` is forced onto QUIC (HTTP/3)
    with the test certificate pinned; else the certificate is pinned for TLS.
    ``netlog`` keeps Chromium's net-log there.
    """
    flags = [LOCALHOST_IPV4, f"--ignore-certificate-errors-spki-list={spki_hash(certificate[0])}"]
    if quic_port is not None:
        flags += ["--enable-quic", f"--origin-to-force-quic-on=localhost:{quic_port}"]
    if netlog is not None:
        flags.append(f"--log-net-log={netlog}")
    return page_texts(url, ("status",), profile=profile, flags=tuple(flags))["status"]


def netlog_events(netlog: Path, event_type: str) -> list[dict]:
    """The params of every event of ``event_type`` in a Chromium net-log."""
    log = json.loads(netlog.read_text())
    wanted = log["constants"]["logEventTypes"][event_type]
    return [event.get("params", {}) for event in log["events"] if event["type"] == wanted]


class Hypercorn:
    """Hypercorn (the installed package, a peer) serving ``module:app`` (from the
    checkout or tests/) over TLS on ``tcp_port`` and over QUIC on ``quic_port``;
    its log goes to ``directory``."""

    def __init__(self, app: str, certificate: tuple[Path, Path], directory: Path) -> None:
        self.quic_port = free_udp_port()
        self.log = directory / "hypercorn.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:0",
                 "--quic-bind", f"127.0.0.1:{self.quic_port}",
                 "--certfile", str(certificate[0]), "--keyfile", str(certificate[1]), app],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env=dict(PEER_ENV, PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}"))
        deadline = time.monotonic() + 15
        while f":{self.quic_port} (QUIC)" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"hypercorn did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        tcp = re.search(r"Running on https://127\.0\.0\.1:(\d+) \(CTRL", self.log.read_text())
        assert tcp, self.log.read_text()
        self.tcp_port = int(tcp.group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

