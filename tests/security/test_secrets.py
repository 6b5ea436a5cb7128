"""Secrets never reach the logs, and secrets are compared in constant time."""
from __future__ import annotations

import ast
import inspect
import time
from pathlib import Path

import pytest
import requests

from attack_tokens import AUDIENCE, HS_SECRET, ISSUER, Keys

pytestmark = [pytest.mark.e2e]

EVENTS, WEBHOOKS = "/v1/observability/events", "/v1/observability/webhooks"
PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "maip_events"


def test_keys_tokens_and_signing_secrets_never_appear_in_the_stack_logs(secure_stack):
    import jwt

    now = int(time.time())
    good_claims = {"tenant_id": "demo", "scope": "*", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "sub": "svc"}
    rs_token = jwt.encode(good_claims, Keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    hs_token = jwt.encode(good_claims, HS_SECRET, algorithm="HS256")
    bad_token = jwt.encode({**good_claims, "exp": now - 600}, Keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    extra_key = secure_stack.key("demo", "*")["api_key"]
    unknown_key = "maip_sk_" + "Z" * 43
    url = secure_stack.url
    # Given a stack logging at DEBUG, when requests succeed and fail with every kind of credential
    sent = [
        requests.post(url + EVENTS, headers=secure_stack.headers, json={"event_type": "agent.registered"}, timeout=10),
        requests.get(url + EVENTS, headers={"X-API-Key": extra_key, "X-Tenant-ID": "demo"}, timeout=10),
        requests.post(url + EVENTS, headers={"X-API-Key": unknown_key, "X-Tenant-ID": "demo"}, json={"event_type": "agent.registered"}, timeout=10),
        requests.post(url + EVENTS, headers={"X-API-Key": extra_key, "X-Tenant-ID": "victim"}, json={"event_type": "agent.registered"}, timeout=10),
        requests.post(url + EVENTS, headers={"X-API-Key": extra_key, "X-Tenant-ID": "demo"}, data=b"{not json", timeout=10),
        requests.post(url + EVENTS, headers={"Authorization": f"Bearer {rs_token}", "X-Tenant-ID": "demo"}, json={"event_type": "agent.registered"}, timeout=10),
        requests.get(url + EVENTS, headers={"Authorization": f"Bearer {hs_token}", "X-Tenant-ID": "demo"}, timeout=10),
        requests.get(url + EVENTS, headers={"Authorization": f"Bearer {bad_token}", "X-Tenant-ID": "demo"}, timeout=10),
        requests.get(url + EVENTS, headers={"Authorization": f"Bearer {hs_token}", "X-Tenant-ID": "demo"}, params={"limit": "x"}, timeout=10),
    ]
    hook = requests.post(url + WEBHOOKS, headers=secure_stack.headers, json={"url": "http://127.0.0.1:9/hook"}, timeout=10)
    assert [r.status_code for r in sent] == [201, 200, 401, 403, 400, 201, 200, 401, 400]
    assert hook.status_code == 201, hook.text
    time.sleep(1.0)  # let the stream poller process (and log) the new events
    logs = secure_stack.logs()
    # Then the requests were logged...
    assert "POST /v1/observability/events 201" in logs and "401" in logs
    # ...but no secret, nor a recognisable part of one, is anywhere in them
    secrets = {
        "demo api key": secure_stack.api_key, "second api key": extra_key, "unknown api key": unknown_key,
        "RS256 token": rs_token, "HS256 token": hs_token, "expired token": bad_token,
        "RS256 token signature": rs_token.rsplit(".", 1)[1], "HS256 token signature": hs_token.rsplit(".", 1)[1],
        "JWT secret": HS_SECRET, "webhook secret": hook.json()["secret"],
    }
    secrets.update({f"{name} (key part)": value[len("maip_sk_"):] for name, value in list(secrets.items()) if value.startswith("maip_sk_")})
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == [], f"secrets found in logs: {leaked}"


def _calls(tree: ast.AST) -> set[str]:
    return {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}


def _equality_on(tree: ast.AST, words: tuple[str, ...]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        operands = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
        if any(isinstance(o, ast.Constant) for o in operands):
            continue  # a field name or literal, e.g. `k != "secret"`, is not a secret value
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            text = ast.unparse(node)
            if any(word in text for word in words):
                found.append(text)
    return found


def test_api_keys_are_compared_in_constant_time():
    from maip_events.auth import keys

    # The lookup compares the stored hash with hmac.compare_digest and never with ==
    tree = ast.parse(inspect.getsource(keys.lookup_api_key))
    assert "hmac.compare_digest" in _calls(tree)
    assert _equality_on(ast.parse((PACKAGE / "auth" / "keys.py").read_text()), ("key_hash", "api_key", "secret")) == []


def test_signatures_are_checked_in_constant_time_everywhere_they_are_verified():
    import jwt.algorithms

    # HS256 Bearer tokens: pyjwt's HMAC verification
    assert "compare_digest" in inspect.getsource(jwt.algorithms.HMACAlgorithm.verify)
    # And no module of ours compares a signature, digest, hash or secret with ==
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        found = _equality_on(ast.parse(path.read_text()), ("signature", "digest", "key_hash", "secret"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}
