"""The one counting pipeline against moto: AggregateFunction's buckets from the events stream, exact under
retried, replayed, bisected and overlapping deliveries and concurrent emitters, with hostile agent ids; GET
/v1/observability/metrics totals equal to the list endpoint's."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

from functions.list.app import lambda_handler as list_handler
from functions.metrics.app import lambda_handler as metrics_handler
from functions.aggregate.app import lambda_handler as aggregate
from functions.emit.app import lambda_handler as emit_handler
from siem_harness import T0, make_events, stream_batch
from aggregation import settle
from support import Ctx, invoke, key_headers

MIX = [("agent.registered", "info", "a1"), ("guardrail.violation", "error", "a2"), ("session.created", "warn", None),
       ("agent.registered", "info", "a2"), ("anomaly.reported", "warn", "a1")]


@pytest.fixture(autouse=True)
def fast_transactions():
    from maip_events_local import moto_patches

    moto_patches.install()  # moto's own TransactWriteItems copies whole tables per item


def metrics(headers, **query):
    status, body, _ = invoke(metrics_handler, "GET", "/v1/observability/metrics", headers=headers, query=query)
    assert status == 200, body
    return body


def listed_total(headers, **query) -> int:
    status, body, _ = invoke(list_handler, "GET", "/v1/observability/events", headers=headers, query={"limit": "1", **query})
    assert status == 200, body
    return body["total"]


def by_key(doc) -> dict:
    return {s["key"]: s["total"] for s in doc["series"]}


def test_counters_by_type_severity_and_agent_match_the_list_endpoint(aws):
    # Given 30 events over three hours, counted by the stream consumer in two batches
    events = make_events("t1", MIX * 6, step=timedelta(minutes=6))
    assert aggregate(stream_batch(events[:17]), Ctx()) == {"batchItemFailures": []}
    assert aggregate(stream_batch(events[17:], 2000), Ctx()) == {"batchItemFailures": []}
    headers = key_headers("t1", ["metrics:read", "events:read"])
    window = {"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T09:59:59.999Z"}
    # When metrics are read per hour, without grouping and grouped by each field
    plain = metrics(headers, **window)
    types, severities, agents = (metrics(headers, group_by=g, **window) for g in ("event_type", "severity", "agent_id"))
    # Then every total equals the list endpoint's count for the same window and filters
    assert plain["total"] == listed_total(headers, **window) == 30
    assert by_key(types) == dict(Counter(t for t, _, _ in MIX * 6))
    for event_type, count in by_key(types).items():
        assert count == listed_total(headers, event_type=event_type, **window)
    assert by_key(severities) == {"info": 12, "error": 6, "warn": 12}
    assert by_key(agents) == {"a1": 12, "a2": 12, None: 6} and by_key(agents)["a1"] == listed_total(headers, agent_id="a1", **window)
    # And hourly points cover the three hours (10 events each)
    assert [(p["timestamp"], p["count"]) for p in plain["series"][0]["points"]] == [
        ("2026-11-23T07:00:00.000Z", 10), ("2026-11-23T08:00:00.000Z", 10), ("2026-11-23T09:00:00.000Z", 10)]
    # And per day it is one point; windows are widened to whole intervals and echoed
    daily = metrics(headers, interval="day", **{"from": "2026-11-23T08:30:00Z", "to": "2026-11-23T08:31:00Z"})
    assert (daily["from"], daily["to"], daily["total"]) == ("2026-11-23T00:00:00.000Z", "2026-11-23T23:59:59.999Z", 30)
    hourly = metrics(headers, **{"from": "2026-11-23T08:30:00Z", "to": "2026-11-23T08:31:00Z"})
    assert (hourly["from"], hourly["to"]) == ("2026-11-23T08:00:00.000Z", "2026-11-23T08:59:59.999Z")
    assert hourly["total"] == listed_total(headers, **{"from": hourly["from"], "to": hourly["to"]}) == 10


def test_a_retried_or_replayed_batch_leaves_the_counters_unchanged(aws):
    # Given a batch that was counted once
    events = make_events("t1", MIX * 4)
    aggregate(stream_batch(events), Ctx())
    headers = key_headers("t1", ["metrics:read"])
    before = [metrics(headers, group_by=g, **{"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T07:59:59Z"})
              for g in ("event_type", "severity", "agent_id")]
    # When the same batch is delivered again, and a bisected overlapping batch with two new events arrives
    # (a record keeps its sequence number whenever it is delivered)
    assert aggregate(stream_batch(events), Ctx()) == {"batchItemFailures": []}
    extra = make_events("t1", [("agent.revoked", "error", "a9")] * 2, start=T0 + timedelta(minutes=30))
    aggregate(stream_batch(events[10:] + extra, 1010), Ctx())
    after = [metrics(headers, group_by=g, **{"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T07:59:59Z"})
             for g in ("event_type", "severity", "agent_id")]
    # Then the counters changed only by the two new events
    assert by_key(after[0]) == {**by_key(before[0]), "agent.revoked": 2}
    assert sum(by_key(after[1]).values()) == sum(by_key(before[1]).values()) + 2 == 22
    assert by_key(after[2])["a9"] == 2 and by_key(after[2])["a1"] == by_key(before[2])["a1"]


def test_a_batch_with_more_counters_than_one_transaction_holds_is_counted_exactly(aws):
    # Given 130 events from distinct agents in two tenants (beyond the 100 items of one transaction)
    events = make_events("t1", [("trust.computed", "info", f"agent-{i}") for i in range(110)])
    events += make_events("t2", [("trust.computed", "info", f"agent-{i}") for i in range(20)])
    # When one stream batch carries them all, twice
    aggregate(stream_batch(events), Ctx())
    aggregate(stream_batch(events), Ctx())
    # Then each tenant sees exactly its own events, each agent once
    for tenant, count in (("t1", 110), ("t2", 20)):
        doc = metrics(key_headers(tenant, ["metrics:read"]), group_by="agent_id", **{"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T07:59:59Z"})
        assert doc["total"] == count and set(by_key(doc).values()) == {1} and len(doc["series"]) == count


@pytest.mark.parametrize("query", [{"group_by": "tenant_id"}, {"interval": "minute"}, {"from": "2026-11-24T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
                                   {"from": "2026-01-01T00:00:00Z", "to": "2026-11-23T00:00:00Z"}, {"limit": "5"}])
def test_bad_metrics_queries_are_rejected(aws, query):
    status, body, _ = invoke(metrics_handler, "GET", "/v1/observability/metrics", headers=key_headers("t1", ["metrics:read"]), query=query)
    assert status == 400 and body["error"]["code"] == "invalid_request"


def test_metrics_need_metrics_read(aws):
    status, _, _ = invoke(metrics_handler, "GET", "/v1/observability/metrics", headers=key_headers("t1", ["events:read"]))
    assert status == 403


def _records(events, first=5000):
    return stream_batch(events, first)["Records"]


def test_retries_replays_and_overlapping_deliveries_in_any_order_count_each_record_once(aws):
    # Given 60 events of two agents (records 5000..5059 of one stream shard)
    events = make_events("t1", MIX * 12, step=timedelta(seconds=7))
    records = _records(events)
    headers = key_headers("t1", ["metrics:read", "events:read"])
    window = {"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T08:59:59.999Z"}
    # When the stream delivers them as Lambda may: a first half, its retry, a bisected overlap, the whole
    # shard replayed, and stale pieces again
    for piece in (records[:30], records[:30], records[20:45], records[15:25], records, records[40:], records[:5], records[59:]):
        assert aggregate({"Records": piece}, Ctx()) == {"batchItemFailures": []}
    # Then every total is exact: list and metrics, unfiltered and per type/agent
    assert listed_total(headers, **window) == metrics(headers, **window)["total"] == 60
    assert by_key(metrics(headers, group_by="agent_id", **window)) == {"a1": 24, "a2": 24, None: 12}
    assert listed_total(headers, agent_id="a2", event_type="agent.registered", **window) == 12


def test_a_failed_tenant_is_retried_from_its_first_record_without_double_counting(aws):
    from maip_events import aws as clients

    # Given a batch of two tenants' events where writing t2's counts fails once (DynamoDB throttles it)
    events = make_events("t1", MIX * 4) + make_events("t2", MIX * 4)
    batch = stream_batch(events, 7000)
    failed = []

    def throttle(params, **kwargs):
        if params.get("Item", {}).get("pk", {}).get("S", "").startswith("t2#") and not failed:
            failed.append(params["Item"]["pk"]["S"])
            raise clients.dynamodb().exceptions.ProvisionedThroughputExceededException(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}, "PutItem")

    clients.dynamodb().meta.events.register("provide-client-params.dynamodb.PutItem", throttle)
    try:
        # When Lambda gets the failure and retries from the reported record (the whole batch from there)
        failures = aggregate(batch, Ctx())["batchItemFailures"]
        assert failed and failures == [{"itemIdentifier": "7020"}]
        retry = {"Records": [r for r in batch["Records"] if int(r["dynamodb"]["SequenceNumber"]) >= 7020]}
        assert aggregate(retry, Ctx()) == {"batchItemFailures": []}
        assert aggregate(batch, Ctx()) == {"batchItemFailures": []}  # and a full replay on top
    finally:
        clients.dynamodb().meta.events.unregister("provide-client-params.dynamodb.PutItem", throttle)
    # Then each tenant counts exactly its 20 events, in the list and in the metrics
    for tenant in ("t1", "t2"):
        headers = key_headers(tenant, ["events:read", "metrics:read"])
        window = {"from": "2026-11-23T07:00:00Z", "to": "2026-11-23T08:59:59.999Z"}
        assert listed_total(headers, **window) == metrics(headers, **window)["total"] == 20


def test_totals_are_exact_under_concurrent_emitters(aws):
    from concurrent.futures import ThreadPoolExecutor

    from maip_events.events import emit_event
    from maip_events.models.events import EmitEventRequest

    # Given 8 emitters (as 8 Lambda containers: each runs the emit logic, one resolver per process) writing
    # 25 events each at the same time, over three agents
    headers = key_headers("t1", ["events:write", "events:read", "metrics:read"])

    def client(n):
        return [emit_event("t1", EmitEventRequest(event_type="agent.updated", agent_id=f"a{(n + i) % 3}"))[0]["id"]
                for i in range(25)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(client, range(8)) for i in batch]
    assert len(set(ids)) == 200
    # When the stream has been aggregated
    settle()
    # Then the totals are exact, overall and per agent, in the list and in the metrics
    assert listed_total(headers) == metrics(headers)["total"] == 200
    per_agent = by_key(metrics(headers, group_by="agent_id"))
    assert sum(per_agent.values()) == 200 and all(per_agent[f"a{i}"] == listed_total(headers, agent_id=f"a{i}") for i in range(3))


HOSTILE_AGENTS = ["\U0001F600" * 256, "#", "a#b/c=d", "\x01\x02\n\t\x7f", "=" * 256, "t1#0", "ta=agent.updated=x"]


def test_maximal_and_hostile_agent_ids_are_counted_and_grouped_by_their_raw_value(aws):
    # Given events whose agent ids are 1,024 bytes of emoji, '#', '/', '=', control characters, key look-alikes
    headers = key_headers("t1", ["events:write", "events:read", "metrics:read"])
    for n, agent in enumerate(HOSTILE_AGENTS, start=1):
        for _ in range(n):
            assert invoke(emit_handler, "POST", "/v1/observability/events", headers=headers,
                          body={"event_type": "agent.updated", "agent_id": agent})[0] == 201
    # When the stream is aggregated (one batch: a poison key would fail every event in it)
    settle()
    # Then each agent's list total and metrics series is exact, keyed by the raw agent id
    expected = {agent: n for n, agent in enumerate(HOSTILE_AGENTS, start=1)}
    assert by_key(metrics(headers, group_by="agent_id")) == expected
    for agent, n in expected.items():
        assert listed_total(headers, agent_id=agent) == n
        assert listed_total(headers, agent_id=agent, event_type="agent.updated") == n
    assert listed_total(headers) == sum(expected.values())


def test_ttl_deletions_change_no_count_and_expired_days_are_not_counted(aws):
    from maip_events.settings import get_settings
    from maip_events.store.events import event_key

    # Given events from 400 days ago (past the default 365-day retention) and from the window, aggregated
    old = make_events("t1", MIX, start=T0 - timedelta(days=400))
    recent = make_events("t1", MIX * 2)
    settle()
    headers = key_headers("t1", ["events:read", "metrics:read"])
    day = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-23T23:59:59.999Z"}
    assert listed_total(headers) == listed_total(headers, **day) == 10
    # When DynamoDB's TTL deletes the old events (REMOVE records reach the stream) and the stream is aggregated
    for e in old:
        aws.delete_item(TableName=get_settings().events_table, Key=event_key(e.tenant_id, e.shard, e.event_id))
    settle()
    # Then nothing changes: the expired days were never counted, the visible ones keep their exact counts
    assert listed_total(headers) == listed_total(headers, **day) == metrics(headers, interval="day", **day)["total"] == len(recent)
