"""Bearer JWT verification against an HS256 secret and a JWKS served from 127.0.0.1."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from maip_events import settings
from maip_events.auth import jwt as jwt_auth
from support import serve_json

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(private_key, kid: str, alg: str) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def jwks_url():
    document = json.dumps({"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}).encode()
    with serve_json(document) as url:
        yield url


@pytest.fixture
def configured(monkeypatch, jwks_url):
    monkeypatch.setenv("MAIP_JWT_SECRET", "s3cret-for-hs256-tests-0123456789abcdef")
    monkeypatch.setenv("MAIP_JWT_JWKS_URL", jwks_url)
    monkeypatch.setenv("MAIP_JWT_ISSUER", "https://issuer.test")
    monkeypatch.setenv("MAIP_JWT_AUDIENCE", "maip-events")
    settings.reset()
    jwt_auth._jwks_client.cache_clear()
    yield
    settings.reset()


def claims(**extra):
    return {"tenant_id": "t1", "scope": "events:read events:write", "iss": "https://issuer.test",
            "aud": "maip-events", "exp": int(time.time()) + 300, "sub": "svc-a", **extra}


def test_hs256_rs256_and_es256_tokens_verify(configured):
    hs = jwt.encode(claims(), "s3cret-for-hs256-tests-0123456789abcdef", algorithm="HS256")
    rs = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(scp=["metrics:read"]), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert jwt_auth.verify(hs)["tenant_id"] == "t1"
    assert jwt_auth.verify(rs)["sub"] == "svc-a"
    assert jwt_auth.scopes_of(jwt_auth.verify(es)) == {"events:read", "events:write", "metrics:read"}


def _unsigned(payload: dict) -> str:
    import base64

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _hs256_with_rsa_public_key() -> str:
    import base64
    import hashlib
    import hmac

    public_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(claims())}"
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{signing_input}.{signature}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: jwt.encode(claims(exp=int(time.time()) - 60), RSA_KEY, "RS256", headers={"kid": "rsa-1"}), id="expired"),
        pytest.param(lambda: jwt.encode({k: v for k, v in claims().items() if k != "exp"}, RSA_KEY, "RS256", headers={"kid": "rsa-1"}), id="no-exp"),
        pytest.param(lambda: jwt.encode(claims(nbf=int(time.time()) + 600), RSA_KEY, "RS256", headers={"kid": "rsa-1"}), id="not-yet-valid"),
        pytest.param(lambda: jwt.encode(claims(iss="https://evil.test"), RSA_KEY, "RS256", headers={"kid": "rsa-1"}), id="wrong-issuer"),
        pytest.param(lambda: jwt.encode(claims(aud="someone-else"), RSA_KEY, "RS256", headers={"kid": "rsa-1"}), id="wrong-audience"),
        pytest.param(lambda: jwt.encode(claims(), "wrong-secret-0123456789abcdef0123456789", "HS256"), id="bad-hmac"),
        pytest.param(lambda: _unsigned(claims()), id="alg-none"),
        pytest.param(_hs256_with_rsa_public_key, id="hs256-signed-with-rsa-public-key"),
        pytest.param(lambda: jwt.encode(claims(), rsa.generate_private_key(65537, 2048), "RS256", headers={"kid": "rsa-1"}), id="unknown-signer"),
        pytest.param(lambda: jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "rsa-1"})[:-6] + "AAAAAA", id="tampered-signature"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_invalid_tokens_are_refused(configured, make_token):
    with pytest.raises(jwt_auth.InvalidToken):
        jwt_auth.verify(make_token())


def test_tampered_payload_is_refused(configured):
    import base64

    token = jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "rsa-1"})
    header, payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(tenant_id="t2")).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt_auth.InvalidToken):
        jwt_auth.verify(f"{header}.{forged}.{signature}")


def test_hs256_is_refused_when_only_jwks_is_configured(configured, monkeypatch):
    monkeypatch.delenv("MAIP_JWT_SECRET")
    settings.reset()
    with pytest.raises(jwt_auth.InvalidToken):
        jwt_auth.verify(jwt.encode(claims(), "s3cret-for-hs256-tests-0123456789abcdef", algorithm="HS256"))
