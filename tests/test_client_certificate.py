"""client_certificate: the verified certificate of a TLS client, as getpeercert() gives it."""
from __future__ import annotations

import ssl
import subprocess

import pytest

from conftest import curl
from nghttp2py import BaseRequestHandler


class CertificateEcho(BaseRequestHandler):
    def on_headers(self):
        certificate = self.client_certificate
        subject = dict(item[0] for item in certificate["subject"]) if certificate else {}
        self.send_response(200, body=f"client CN={subject.get('commonName', '-')}\n")


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("client")
    cert, key = directory / "client.crt", directory / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=test-client", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def mutual_tls_context(certificate, client_certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cafile=str(client_certificate[0]))
    return context


def test_client_certificate_reaches_the_handler(serve, mutual_tls_context, client_certificate):
    server = serve(CertificateEcho, ssl=mutual_tls_context)
    cert, key = client_certificate
    got = curl("--http2", "-k", "--cert", str(cert), "--key", str(key), server.url("/"))
    assert (got.http_version, got.body) == ("2", b"client CN=test-client\n")


def test_without_a_client_certificate_it_is_none(serve, mutual_tls_context):
    server = serve(CertificateEcho, ssl=mutual_tls_context)
    assert curl("--http2", "-k", server.url("/")).body == b"client CN=-\n"
