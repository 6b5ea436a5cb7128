"""Per-tenant rate limiting of the local stack (MAIP_LOCAL_RATE_LIMIT="rps,burst"): a 429 `rate_limited` in the
contract's error shape with Retry-After, one bucket per tenant; and the stage throttling in template.yaml."""
from __future__ import annotations

import time

import pytest
import requests

from maip_events_local.ratelimit import TenantRateLimiter, parse
from served_stack import served

EVENTS = "/v1/observability/events"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    clock = Clock()
    limiter = TenantRateLimiter(rate=2, burst=3, clock=clock)
    # Given a full bucket of 3, when 4 requests arrive at once, then the 4th waits half a second (2 per second)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    # And another tenant is unaffected
    assert limiter.acquire("b") == 0.0
    # When half a second passes, one more is allowed
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    # And the refusal the gateway sends is the contract's 429 with Retry-After in whole seconds
    assert limiter({"x-tenant-id": "a"}) == (429, "rate_limited", "Too many requests for this tenant; retry after 1 s.", {"Retry-After": "1"})


@pytest.mark.parametrize("spec, rate, burst", [("50,100", 50.0, 100), ("5", 5.0, 5), ("0.5,1", 0.5, 1)])
def test_the_setting_reads_rps_and_burst(spec, rate, burst):
    limiter = parse(spec)
    assert (limiter.rate, limiter.burst) == (rate, burst)


@pytest.mark.parametrize("spec", ["", "x", "0,1", "1,0", "1,2,3"])
def test_a_bad_setting_is_refused(spec):
    with pytest.raises(ValueError):
        parse(spec)


@pytest.mark.e2e
def test_the_local_stack_answers_429_per_tenant_and_stores_nothing_for_refused_requests():
    with served(MAIP_LOCAL_RATE_LIMIT="1,3") as stack:  # burst 3, then one request per second
        other = stack.headers_for("other-tenant")
        # When a tenant sends 5 events at once
        responses = [requests.post(stack.url + EVENTS, headers=stack.headers, json={"event_type": "agent.registered"}, timeout=10)
                     for _ in range(5)]
        # Then the burst passes and the rest get the contract's 429 with Retry-After
        assert [r.status_code for r in responses] == [201, 201, 201, 429, 429]
        refused = responses[3]
        assert refused.json()["error"]["code"] == "rate_limited" and refused.json()["request_id"]
        assert int(refused.headers["Retry-After"]) >= 1
        # And another tenant still has its own budget
        assert requests.get(stack.url + EVENTS, headers=other, timeout=10).status_code == 200
        # And the refused requests stored nothing (read once the bucket has refilled)
        time.sleep(float(refused.headers["Retry-After"]))
        listed = requests.get(stack.url + EVENTS, headers=stack.headers, timeout=10)
        assert listed.status_code == 200 and listed.json()["total"] == 3


def test_the_template_throttles_the_http_api_stage(repo_root):
    from maip_events_local.template import load_template

    settings = load_template()["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] >= settings["ThrottlingRateLimit"]
