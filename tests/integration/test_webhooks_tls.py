"""https delivery: the sender connects to the address the guard approved yet verifies the certificate
against the URL's host name (SNI), so pinning the IP never weakens TLS."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maip_events import settings
from maip_events.http import client as sender


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def https_receiver(tmp_path, monkeypatch):
    cert_file, key_file = _certificate(tmp_path)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):  # noqa: N802
            seen.append((self.headers["host"], self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    # Trust the test certificate the standard way (OpenSSL's SSL_CERT_FILE); local mode allows loopback.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    sender._tls_context.cache_clear()
    yield server.server_address[1], seen
    server.shutdown()
    sender._tls_context.cache_clear()
    settings.reset()


def test_https_delivery_verifies_the_certificate_for_the_url_host(https_receiver):
    port, seen = https_receiver
    # When posting to https://localhost (resolved and pinned to 127.0.0.1)
    result = sender.post(f"https://localhost:{port}/hook", {"content-type": "application/json"}, b"{}", 5)
    # Then the certificate for "localhost" is accepted and the Host header names the URL's host
    assert result.ok and result.status_code == 204
    assert seen == [(f"localhost:{port}", b"{}")]


def test_certificate_for_another_name_is_refused(https_receiver):
    port, seen = https_receiver
    # The same server reached as https://127.0.0.1 presents a certificate for "localhost" only
    result = sender.post(f"https://127.0.0.1:{port}/hook", {}, b"{}", 5)
    assert not result.ok and result.error.startswith("TLS error") and seen == []
    assert ipaddress.ip_address("127.0.0.1").is_loopback
