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
    jwt_auth._jwks_cache.cache_clear()
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


class RotatingJwks:
    """A JWKS served from 127.0.0.1 whose keys the test changes, counting the fetches it answers."""

    def __init__(self, *keys: dict):
        self.keys, self.fetches = list(keys), 0

    def _count(self) -> None:
        self.fetches += 1

    def __enter__(self) -> str:
        self._served = serve_json(lambda: json.dumps({"keys": self.keys}).encode(), path="/jwks.json", on_request=self._count)
        return self._served.__enter__()

    def __exit__(self, *exc):
        return self._served.__exit__(*exc)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_removed_from_the_jwks_stops_verifying_after_the_refresh_period():
    new_key = rsa.generate_private_key(65537, 2048)
    jwks = RotatingJwks(_jwk(RSA_KEY, "old", "RS256"))
    with jwks as url:
        clock = Clock()
        cache = jwt_auth.JwksCache(url, refresh=300, cooldown=30, clock=clock)
        # Given the old key is cached
        assert cache.key("old").key_id == "old"
        # When the identity provider rotates: the new key is added and the old one removed
        jwks.keys = [_jwk(new_key, "new", "RS256")]
        # Then a token with the new kid verifies at once (an unknown kid refreshes, the cooldown has passed)
        clock.now += 31
        assert cache.key("new").key_id == "new"
        # And the old kid is refused from that refresh on
        with pytest.raises(jwt_auth.InvalidToken):
            cache.key("old")
        assert jwks.fetches == 2


def test_a_removed_key_dies_within_the_refresh_period_even_without_unknown_kids():
    jwks = RotatingJwks(_jwk(RSA_KEY, "old", "RS256"))
    with jwks as url:
        clock = Clock()
        cache = jwt_auth.JwksCache(url, refresh=300, cooldown=30, clock=clock)
        assert cache.key("old")
        jwks.keys = []  # every key withdrawn
        clock.now += 299
        assert cache.key("old")  # still inside the refresh period: the cache is not refetched
        clock.now += 1
        with pytest.raises(jwt_auth.InvalidToken):
            cache.key("old")  # the scheduled refresh sees the empty set
        assert jwks.fetches == 2


def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_cooldown():
    jwks = RotatingJwks(_jwk(RSA_KEY, "rsa-1", "RS256"))
    with jwks as url:
        clock = Clock()
        cache = jwt_auth.JwksCache(url, refresh=300, cooldown=30, clock=clock)
        cache.key("rsa-1")
        # When 1,000 tokens with random kids arrive over 61 seconds
        for i in range(1000):
            clock.now += 0.061
            with pytest.raises(jwt_auth.InvalidToken):
                cache.key(f"random-{i}")
        # Then the JWKS was fetched once per 30 s cooldown (2) besides the first fetch, and the real key still works
        assert jwks.fetches == 3
        assert cache.key("rsa-1").key_id == "rsa-1"


def test_verify_accepts_a_rotated_key_and_refuses_the_removed_one(monkeypatch):
    new_key = rsa.generate_private_key(65537, 2048)
    jwks = RotatingJwks(_jwk(RSA_KEY, "k1", "RS256"))
    with jwks as url:
        monkeypatch.setenv("MAIP_JWT_JWKS_URL", url)
        monkeypatch.setenv("MAIP_JWT_AUDIENCE", "maip-events")
        monkeypatch.setenv("MAIP_JWT_ISSUER", "https://issuer.test")
        monkeypatch.setenv("MAIP_JWT_JWKS_COOLDOWN", "0")
        settings.reset()
        jwt_auth._jwks_cache.cache_clear()
        try:
            old_token = jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "k1"})
            assert jwt_auth.verify(old_token)["sub"] == "svc-a"
            jwks.keys = [_jwk(new_key, "k2", "RS256")]
            # The new key verifies at once (unknown kid), and that refresh withdrew the old one
            assert jwt_auth.verify(jwt.encode(claims(), new_key, "RS256", headers={"kid": "k2"}))["sub"] == "svc-a"
            with pytest.raises(jwt_auth.InvalidToken):
                jwt_auth.verify(old_token)
        finally:
            settings.reset()
            jwt_auth._jwks_cache.cache_clear()


def test_a_jwks_without_an_audience_refuses_jwks_tokens_and_says_why(configured, monkeypatch, caplog):
    # Given a JWKS URL but no MAIP_JWT_AUDIENCE
    monkeypatch.delenv("MAIP_JWT_AUDIENCE")
    settings.reset()
    # When a validly signed RS256 token arrives (its aud would match any audience)
    token = jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "rsa-1"})
    # Then it is refused, and the log names the missing setting
    with caplog.at_level("ERROR"), pytest.raises(jwt_auth.InvalidToken):
        jwt_auth.verify(token)
    assert "MAIP_JWT_AUDIENCE" in caplog.text
    # And HS256 tokens, verified with our own secret, are unaffected
    assert jwt_auth.verify(jwt.encode(claims(), "s3cret-for-hs256-tests-0123456789abcdef", algorithm="HS256"))["tenant_id"] == "t1"


def test_with_an_audience_configured_a_token_without_aud_is_refused(configured):
    token = jwt.encode({k: v for k, v in claims().items() if k != "aud"}, RSA_KEY, "RS256", headers={"kid": "rsa-1"})
    with pytest.raises(jwt_auth.InvalidToken):
        jwt_auth.verify(token)
