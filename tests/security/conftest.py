"""One `maip-events serve` for the security suite, with JWT verification configured (HS256 secret, a JWKS
served from 127.0.0.1 by the test process, issuer and audience) and the most verbose logging."""
from __future__ import annotations

import pytest

from attack_tokens import AUDIENCE, HS_SECRET, ISSUER, jwks_document
from served_stack import served
from support import serve_json


@pytest.fixture(scope="session")
def jwks_url():
    with serve_json(jwks_document()) as url:
        yield url


@pytest.fixture(scope="session")
def secure_stack(jwks_url):
    with served(MAIP_JWT_SECRET=HS_SECRET, MAIP_JWT_JWKS_URL=jwks_url, MAIP_JWT_ISSUER=ISSUER,
                MAIP_JWT_AUDIENCE=AUDIENCE, POWERTOOLS_LOG_LEVEL="DEBUG",
                POWERTOOLS_DEBUG="true",  # our DEBUG logs and Powertools' own
                POWERTOOLS_LOGGER_LOG_EVENT="true") as stack:  # an operator asking for whole events in the logs
        yield stack
