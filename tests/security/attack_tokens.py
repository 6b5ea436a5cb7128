"""JWT material shared by the security suite's conftest (JWKS served to the stack) and its tests."""
from __future__ import annotations

import json

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

ISSUER, AUDIENCE = "https://issuer.test", "maip-events"
HS_SECRET = "hs256-secret-for-security-tests-0123456789"


class Keys:
    rsa = _rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_rsa = _rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not in the JWKS


def jwks_document() -> bytes:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(Keys.rsa.public_key()))
    return json.dumps({"keys": [{**jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"}]}).encode()
