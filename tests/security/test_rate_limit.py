"""Per-tenant fairness (issue 12 point 6): each tenant's requests take tokens leased from its own bucket in
QuotaTable (maip_events.quota), 429 `rate_limited` with Retry-After above its quota, another tenant untouched;
leases cost well under 0.1 writes per request; replay is limited per webhook and per tenant; the template
deploys the quota, reserves ingest concurrency and keeps a stage-wide cap."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import boto3
import pytest
import requests
from moto import mock_aws

from maip_events import settings
from maip_events.ids import format_time, utc_now
from maip_events.quota import TenantQuota, parse_quota
from maip_events.store.quota import QuotaStore
from served_stack import served

EVENTS = "/v1/observability/events"
HOOKS = "/v1/observability/webhooks"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """The real boto3 client, counting the writes it sends (what DynamoDB would bill)."""

    def __init__(self, client):
        self._client, self.writes = client, 0
        self.exceptions = client.exceptions

    def update_item(self, **kwargs):
        self.writes += 1
        return self._client.update_item(**kwargs)


@pytest.fixture
def quota_table(monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MAIP_DYNAMODB_ENDPOINT", raising=False)
    from maip_events_local.template import table_definitions

    with mock_aws():
        settings.reset()
        client = boto3.client("dynamodb", region_name="us-east-1")
        for definition in table_definitions():
            if definition["TableName"] == settings.get_settings().quota_table:
                client.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})
        yield CountingClient(client)
    settings.reset()


def test_a_tenant_gets_its_burst_then_its_rate_and_another_tenant_is_unaffected(quota_table):
    clock = Clock()
    quota = TenantQuota(rate=2, burst=3, store=QuotaStore(quota_table, "maip-quotas"), clock=clock)
    # Given a full bucket of 3, when 4 requests arrive at once, then the 4th waits half a second (2 per second)
    assert [quota.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert quota.admit("a") == pytest.approx(0.5)
    # And another tenant is unaffected
    assert quota.admit("b") == 0.0
    # When half a second passes, one more is allowed, and only one
    clock.now += 0.5
    assert quota.admit("a") == 0.0
    assert quota.admit("a") > 0


def test_two_lambdas_share_a_tenants_quota_within_the_documented_bound(quota_table):
    # Given two warm Lambdas serving one tenant with a quota of 100/s (burst 200)
    clock = Clock()
    store = QuotaStore(quota_table, "maip-quotas")
    lambdas = [TenantQuota(rate=100, burst=200, store=store, clock=clock) for _ in range(2)]
    # When the tenant sends 1,000 requests/s (alternating between them) for 10 seconds
    admitted = 0
    for i in range(10_000):
        clock.now += 0.001
        admitted += lambdas[i % 2].admit("flood") == 0.0
    # Then it gets at most burst + rate x T + the tokens two Lambdas can hold (2 x burst/4), and most of its rate
    assert 100 * 10 * 0.8 <= admitted <= 200 + 100 * 10 + 2 * 50
    # And the refused requests did not each cost a write: a refusal is remembered (at least 0.1 s), so the
    # writes are bounded per Lambda and second (a few tens), not per request
    print(f"\nflood at 10x the quota: admitted {admitted} of 10000 in 10 s, {quota_table.writes} lease writes "
          f"({quota_table.writes / 10_000:.3f} per request)")
    assert quota_table.writes <= 2 * 10 * 40 and quota_table.writes / 10_000 < 0.1


def test_a_tenant_within_its_quota_is_never_refused_and_leases_cost_well_under_0_1_writes_per_request(quota_table):
    # Given two warm Lambdas and a tenant sending 50 requests/s, half its quota, for 20 seconds
    clock = Clock()
    store = QuotaStore(quota_table, "maip-quotas")
    lambdas = [TenantQuota(rate=100, burst=200, store=store, clock=clock) for _ in range(2)]
    results = []
    for i in range(1000):
        clock.now += 0.02
        results.append(lambdas[i % 2].admit("steady"))
    # Then every request is admitted
    assert results == [0.0] * 1000
    # And the leases cost well under 0.1 writes per request
    writes_per_request = quota_table.writes / 1000
    print(f"\nlease writes per request at 25 req/s per Lambda: {writes_per_request:.3f}")
    assert writes_per_request < 0.05


@pytest.mark.parametrize("spec, rate, burst", [("50,100", 50.0, 100.0), ("5", 5.0, 5.0), ("0.5,1", 0.5, 1.0)])
def test_the_setting_reads_rps_and_burst(spec, rate, burst):
    assert parse_quota(spec) == (rate, burst)


@pytest.mark.parametrize("spec", ["", "x", "0,1", "1,0", "1,2,3"])
def test_a_bad_setting_is_refused(spec):
    with pytest.raises(ValueError):
        parse_quota(spec)


def test_the_local_stack_turns_a_generous_quota_on_by_default(monkeypatch):
    from maip_events_local import ratelimit

    monkeypatch.delenv("MAIP_TENANT_QUOTA", raising=False)
    monkeypatch.delenv("MAIP_LOCAL_RATE_LIMIT", raising=False)
    assert ratelimit.configure() == ratelimit.LOCAL_DEFAULT and os.environ["MAIP_TENANT_QUOTA"] == "1000,2000"
    monkeypatch.setenv("MAIP_TENANT_QUOTA", "off")
    assert ratelimit.configure() is None and os.environ["MAIP_TENANT_QUOTA"] == ""


@pytest.mark.e2e
def test_the_local_stack_answers_429_per_tenant_and_stores_nothing_for_refused_requests():
    # Burst 3, then one request per 10 s: slow enough that a loaded machine cannot refill a token mid-test
    with served(MAIP_TENANT_QUOTA="0.1,3") as stack:
        other = stack.headers_for("other-tenant")
        # (another tenant warms the handlers up first; its requests spend only its own quota)
        assert requests.post(stack.url + EVENTS, headers=other, json={"event_type": "agent.registered"}, timeout=30).status_code == 201
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
        # And a flood of unauthenticated requests naming the tenant does not spend its quota (401, no token taken)
        intruder = {"X-API-Key": "maip_sk_not-a-key", "X-Tenant-ID": stack.tenant_id}
        assert {requests.get(stack.url + EVENTS, headers=intruder, timeout=10).status_code for _ in range(5)} == {401}
        # And the refused requests stored nothing (read once the bucket has refilled)
        time.sleep(float(refused.headers["Retry-After"]))
        listed = requests.get(stack.url + EVENTS, headers=stack.headers, timeout=10)
        assert listed.status_code == 200 and listed.json()["total"] == 3


def test_the_template_deploys_a_per_tenant_quota_and_reserves_ingest_concurrency(repo_root):
    from maip_events_local.template import load_template

    template = load_template()
    resources = template["Resources"]
    # A stage-wide cap stays (unauthenticated floods), above any one tenant's quota
    stage = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    rate, burst = parse_quota(template["Parameters"]["TenantRequestQuota"]["Default"])
    assert stage["ThrottlingRateLimit"] >= 10 * rate and stage["ThrottlingBurstLimit"] >= stage["ThrottlingRateLimit"]
    # Every function gets the quota and its table; every authenticated API function may lease from it
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MAIP_QUOTA_TABLE"] == {"Ref": "QuotaTable"} and env["MAIP_TENANT_QUOTA"] == {"Ref": "TenantRequestQuota"}
    assert resources["QuotaTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    for name, resource in resources.items():
        policies = resource.get("Properties", {}).get("Policies", []) if resource["Type"] == "AWS::Serverless::Function" else []
        if {"DynamoDBReadPolicy": {"TableName": {"Ref": "ApiKeysTable"}}} in policies:
            assert {"DynamoDBWritePolicy": {"TableName": {"Ref": "QuotaTable"}}} in policies, name
    # Ingest keeps reserved concurrency, so deliveries can never take all of it
    reserved = resources["EmitFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved["Fn::If"][1] == {"Ref": "EmitReservedConcurrency"} and template["Parameters"]["EmitReservedConcurrency"]["Default"] > 0


def test_the_template_requires_an_audience_with_a_jwks(repo_root):
    from maip_events_local.template import load_template

    rule = load_template()["Rules"]["JwksNeedsAudience"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtJwksUrl"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]}


def _recent(seconds_ago: float) -> str:
    return format_time(utc_now() - timedelta(seconds=seconds_ago))
