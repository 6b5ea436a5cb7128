"""Every credential failure, over HTTP against `maip-events serve`: each gets exactly the contract's 401/403
(or 400 for a malformed tenant header) in the error shape, and nothing is stored for any tenant."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Callable

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from attack_tokens import AUDIENCE, HS_SECRET, ISSUER, Keys

pytestmark = [pytest.mark.e2e]

EVENTS = "/v1/observability/events"
BODY = {"event_type": "agent.registered", "agent_id": "attacker", "metadata": {"attempt": True}}


# ---- tokens ------------------------------------------------------------------------------------------

def claims(tenant: str = "demo", scope: str | None = "events:read events:write", **override) -> dict:
    now = int(time.time())
    base = {"tenant_id": tenant, "scope": scope, "iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "iat": now, "exp": now + 300}
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def rs256(payload: dict, key=None, kid: str = "rsa-1") -> str:
    return jwt.encode(payload, key or Keys.rsa, algorithm="RS256", headers={"kid": kid})


def hs256(payload: dict, secret: str = HS_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict, payload: dict) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def alg_none(payload: dict) -> str:
    return _segments({"alg": "none", "typ": "JWT"}, payload) + "."


def hs256_signed_with_rsa_public_key(payload: dict) -> str:
    """The classic key-confusion attack: HMAC keyed with the (public) PEM of the RS256 key, kid of the JWKS key."""
    pem = Keys.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, payload)
    return signing_input + "." + _b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def tampered(payload: dict) -> str:
    """A validly signed token whose payload is then rewritten (another tenant's data, every scope)."""
    header, _, signature = rs256(payload).split(".")
    forged = {**payload, "scope": "*", "tenant_id": "victim"}
    return header + "." + _b64(json.dumps(forged).encode()) + "." + signature


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the table ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    name: str
    headers: Callable[["Creds"], dict[str, str]]  # credential headers (X-Tenant-ID included)
    status: int
    code: str
    method: str = "POST"


@dataclass
class Creds:
    demo_key: str
    victim_key: str
    revoked_key: str
    reader_key: str
    writer_key: str


def with_tenant(tenant: str, extra: dict[str, str]) -> dict[str, str]:
    return {"X-Tenant-ID": tenant, **extra}


ATTACKS = [
    Attack("no credential", lambda c: with_tenant("demo", {}), 401, "unauthorized"),
    Attack("empty api key", lambda c: with_tenant("demo", {"X-API-Key": ""}), 401, "unauthorized"),
    Attack("unknown api key", lambda c: with_tenant("demo", {"X-API-Key": "maip_sk_" + "A" * 43}), 401, "unauthorized"),
    Attack("api key with one character changed", lambda c: with_tenant("demo", {"X-API-Key": c.demo_key[:-1] + ("A" if c.demo_key[-1] != "A" else "B")}), 401, "unauthorized"),
    Attack("revoked api key", lambda c: with_tenant("demo", {"X-API-Key": c.revoked_key}), 401, "unauthorized"),
    Attack("key of tenant A sent for tenant B", lambda c: with_tenant("victim", {"X-API-Key": c.demo_key}), 403, "forbidden"),
    Attack("key of tenant A sent for an unknown tenant", lambda c: with_tenant("nobody", {"X-API-Key": c.demo_key}), 403, "forbidden"),
    Attack("read-only key writing", lambda c: with_tenant("demo", {"X-API-Key": c.reader_key}), 403, "forbidden"),
    Attack("write-only key reading", lambda c: with_tenant("demo", {"X-API-Key": c.writer_key}), 403, "forbidden", "GET"),
    Attack("missing X-Tenant-ID", lambda c: {"X-API-Key": c.demo_key}, 400, "invalid_request"),
    Attack("malformed X-Tenant-ID", lambda c: with_tenant("demo/../victim", {"X-API-Key": c.demo_key}), 400, "invalid_request"),
    Attack("basic auth instead of bearer", lambda c: with_tenant("demo", {"Authorization": "Basic ZGVtbzpkZW1v"}), 401, "unauthorized"),
    Attack("bearer without a token", lambda c: with_tenant("demo", {"Authorization": "Bearer "}), 401, "unauthorized"),
    Attack("bearer garbage", lambda c: with_tenant("demo", bearer("not.a.jwt")), 401, "unauthorized"),
    Attack("jwt expired", lambda c: with_tenant("demo", bearer(rs256(claims(exp=int(time.time()) - 120)))), 401, "unauthorized"),
    Attack("jwt not yet valid", lambda c: with_tenant("demo", bearer(rs256(claims(nbf=int(time.time()) + 600)))), 401, "unauthorized"),
    Attack("jwt without exp", lambda c: with_tenant("demo", bearer(rs256({k: v for k, v in claims().items() if k != "exp"}))), 401, "unauthorized"),
    Attack("jwt alg none", lambda c: with_tenant("demo", bearer(alg_none(claims()))), 401, "unauthorized"),
    Attack("jwt alg none with a signature", lambda c: with_tenant("demo", bearer(alg_none(claims()) + "c2ln")), 401, "unauthorized"),
    Attack("jwt HS256 signed with the RS256 public key", lambda c: with_tenant("demo", bearer(hs256_signed_with_rsa_public_key(claims()))), 401, "unauthorized"),
    Attack("jwt HS256 with a wrong secret", lambda c: with_tenant("demo", bearer(hs256(claims(), "guessed-secret-0123456789abcdef-0123"))), 401, "unauthorized"),
    Attack("jwt RS256 signed by a key not in the JWKS", lambda c: with_tenant("demo", bearer(rs256(claims(), Keys.other_rsa))), 401, "unauthorized"),
    Attack("jwt RS256 with an unknown kid", lambda c: with_tenant("demo", bearer(rs256(claims(), Keys.other_rsa, kid="rsa-9"))), 401, "unauthorized"),
    Attack("jwt wrong issuer", lambda c: with_tenant("demo", bearer(rs256(claims(iss="https://evil.test")))), 401, "unauthorized"),
    Attack("jwt wrong audience", lambda c: with_tenant("demo", bearer(rs256(claims(aud="another-api")))), 401, "unauthorized"),
    Attack("jwt tampered payload", lambda c: with_tenant("victim", bearer(tampered(claims()))), 401, "unauthorized"),
    Attack("jwt missing tenant_id", lambda c: with_tenant("demo", bearer(rs256(claims(tenant=None)))), 401, "unauthorized"),
    Attack("jwt of tenant A sent for tenant B", lambda c: with_tenant("victim", bearer(rs256(claims()))), 403, "forbidden"),
    Attack("jwt without the write scope", lambda c: with_tenant("demo", bearer(hs256(claims(scope="events:read")))), 403, "forbidden"),
    Attack("jwt without any scope", lambda c: with_tenant("demo", bearer(rs256(claims(scope=None)))), 403, "forbidden"),
]


@pytest.fixture(scope="module")
def creds(secure_stack) -> Creds:
    revoked = secure_stack.key("demo", "*")
    secure_stack.cli("keys", "revoke", revoked["key_id"])
    return Creds(
        demo_key=secure_stack.api_key,
        victim_key=secure_stack.key("victim", "*")["api_key"],
        revoked_key=revoked["api_key"],
        reader_key=secure_stack.key("demo", "events:read")["api_key"],
        writer_key=secure_stack.key("demo", "events:write")["api_key"],
    )


def totals(stack, creds: Creds) -> dict[str, int]:
    """What each tenant has stored, read with its own admin key (a page of up to 500 counts exactly what it holds)."""
    found = {}
    for tenant, key in (("demo", creds.demo_key), ("victim", creds.victim_key)):
        response = requests.get(stack.url + EVENTS, headers={"X-API-Key": key, "X-Tenant-ID": tenant}, params={"limit": 500}, timeout=10)
        assert response.status_code == 200, response.text
        found[tenant] = response.json()["total"]
    return found


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_each_credential_failure_gets_the_contract_error_and_stores_nothing(secure_stack, creds, attack):
    # Given what every tenant has stored so far
    before = totals(secure_stack, creds)
    # When the attacker sends the request
    headers = attack.headers(creds)
    if attack.method == "POST":
        response = requests.post(secure_stack.url + EVENTS, headers=headers, json=BODY, timeout=10)
    else:
        response = requests.get(secure_stack.url + EVENTS, headers=headers, timeout=10)
    # Then exactly the contract's status and error document
    assert response.status_code == attack.status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert set(document) == {"error", "request_id"} and document["request_id"]
    assert document["error"]["code"] == attack.code
    assert isinstance(document["error"]["message"], str) and document["error"]["message"]
    assert isinstance(document["error"]["details"], list)
    # And nothing was stored anywhere
    assert totals(secure_stack, creds) == before


def test_valid_tokens_are_accepted_so_the_attacks_above_fail_for_their_flaw_alone(secure_stack, creds):
    # Given well-formed RS256 (JWKS) and HS256 (secret) tokens for tenant demo
    before = totals(secure_stack, creds)
    for token in (rs256(claims()), hs256(claims()), rs256(claims(scope=None, scp=["events:write"]))):
        # When each is used to emit
        response = requests.post(secure_stack.url + EVENTS, headers=with_tenant("demo", bearer(token)), json=BODY, timeout=10)
        # Then it is accepted
        assert response.status_code == 201, response.text
    assert totals(secure_stack, creds) == {**before, "demo": before["demo"] + 3}


def test_a_key_revoked_while_in_use_stops_working_at_once(secure_stack, creds):
    key = secure_stack.key("demo", "events:write")
    headers = with_tenant("demo", {"X-API-Key": key["api_key"]})
    assert requests.post(secure_stack.url + EVENTS, headers=headers, json=BODY, timeout=10).status_code == 201
    secure_stack.cli("keys", "revoke", key["key_id"])
    response = requests.post(secure_stack.url + EVENTS, headers=headers, json=BODY, timeout=10)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
