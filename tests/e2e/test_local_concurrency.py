"""`maip-events serve` runs requests concurrently (a pool of worker processes, no global lock) and each request
still sees only its own event: overlap is shown by timestamps a test receiver records, never by speed."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from served_stack import served
from support import serve_json

pytestmark = [pytest.mark.e2e]

ISSUER, AUDIENCE = "https://issuer.concurrency.test", "maip-events"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EVENTS = "/v1/observability/events"


class SlowJwks:
    """Serves a JWKS, holding each request until `parties` requests are in flight (or `patience` s passed), and
    records when each arrived and when it was answered."""

    def __init__(self, parties: int, patience: float):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
        self.document = json.dumps({"keys": [{**jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"}]}).encode()
        self.barrier = threading.Barrier(parties, timeout=patience)
        self.arrived: list[float] = []
        self.answered: list[float] = []

    def _hold(self) -> None:
        self.arrived.append(time.monotonic())
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the others never came while this one waited: answered anyway, the test fails on order
        self.answered.append(time.monotonic())

    def __enter__(self) -> "SlowJwks":
        self._served = serve_json(self.document, on_request=self._hold)
        self.url = self._served.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)


def bearer(tenant: str, scopes: str) -> str:
    claims = {"tenant_id": tenant, "scope": scopes, "sub": "concurrency-test", "iss": ISSUER, "aud": AUDIENCE,
              "exp": int(time.time()) + 600}
    return "Bearer " + jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "rsa-1"})


def test_two_slow_requests_are_served_at_the_same_time_and_each_sees_its_own_event():
    # Given a stack with two warm workers whose JWT check fetches a JWKS from a receiver that holds every
    # fetch until two are in flight (a stack that serves one request at a time can never get there)
    # (patience 4 s: below the JWT client's 5 s fetch timeout, so a serial stack answers the first fetch before the
    # second can arrive, and the order check below fails rather than the request timing out)
    with SlowJwks(parties=2, patience=4.0) as jwks, served(
            MAIP_LOCAL_WORKERS="2", MAIP_LOCAL_PREWARM="2", MAIP_JWT_JWKS_URL=jwks.url,
            MAIP_JWT_ISSUER=ISSUER, MAIP_JWT_AUDIENCE=AUDIENCE) as stack:
        headers = {"Authorization": bearer(stack.tenant_id, "events:write events:read"), "X-Tenant-ID": stack.tenant_id}

        def emit(agent: str) -> tuple[int, dict]:
            response = requests.post(f"{stack.url}{EVENTS}", json={"event_type": "agent.updated", "agent_id": agent},
                                     headers=headers, timeout=60)
            return response.status_code, response.json()

        # When two clients emit at once
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(emit, ["agent-a", "agent-b"])

        # Then both JWKS fetches were in flight together: the second arrived before the first was answered
        assert len(jwks.arrived) == 2, jwks.arrived
        assert max(jwks.arrived) < min(jwks.answered), (jwks.arrived, jwks.answered)
        # And each request got its own answer
        assert (first[0], first[1]["agent_id"]) == (201, "agent-a")
        assert (second[0], second[1]["agent_id"]) == (201, "agent-b")

        # When 16 clients emit at once, each with its own agent (API key this time: no JWKS round trip)
        agents = [f"agent-{n:02d}" for n in range(16)]
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda a: requests.post(
                f"{stack.url}{EVENTS}", json={"event_type": "agent.registered", "agent_id": a},
                headers=stack.headers, timeout=60), agents))
        # Then every response describes its own request, and every event is stored once with its own data
        assert [(r.status_code, r.json()["agent_id"]) for r in results] == [(201, a) for a in agents]
        ids = {r.json()["id"] for r in results}
        page = requests.get(f"{stack.url}{EVENTS}", params={"limit": 100, "event_type": "agent.registered"},
                            headers=stack.headers, timeout=60).json()
        stored = {item["event_id"]: item["agent_id"] for item in page["items"]}
        assert {i: stored.get(i) for i in ids} == {r.json()["id"]: r.json()["agent_id"] for r in results}
        assert "Traceback" not in stack.logs()
