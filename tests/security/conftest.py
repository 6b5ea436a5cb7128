"""One `maip-events serve` for the security suite, with JWT verification configured (HS256 secret, a JWKS
served from 127.0.0.1 by the test process, issuer and audience) and the most verbose logging."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from attack_tokens import AUDIENCE, HS_SECRET, ISSUER, jwks_document
from served_stack import served


@pytest.fixture(scope="session")
def jwks_url():
    document = jwks_document()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


@pytest.fixture(scope="session")
def secure_stack(jwks_url):
    with served(MAIP_JWT_SECRET=HS_SECRET, MAIP_JWT_JWKS_URL=jwks_url, MAIP_JWT_ISSUER=ISSUER,
                MAIP_JWT_AUDIENCE=AUDIENCE, POWERTOOLS_LOG_LEVEL="DEBUG",
                POWERTOOLS_DEBUG="true",  # our DEBUG logs and Powertools' own
                POWERTOOLS_LOGGER_LOG_EVENT="true") as stack:  # an operator asking for whole events in the logs
        yield stack
