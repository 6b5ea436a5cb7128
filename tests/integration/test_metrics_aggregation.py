"""Metrics pipeline against moto: the stream consumer's hourly counters, its idempotency on retried or
replayed batches, and GET /v1/observability/metrics totals equal to the list endpoint's."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

from functions.list.app import lambda_handler as list_handler
from functions.metrics.app import lambda_handler as metrics_handler
from functions.metrics_aggregate.app import lambda_handler as aggregate
from siem_harness import T0, make_events, stream_batch
from support import Ctx, invoke, key_headers

MIX = [("agent.registered", "info", "a1"), ("guardrail.violation", "error", "a2"), ("session.created", "warn", None),
       ("agent.registered", "info", "a2"), ("anomaly.reported", "warn", "a1")]


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
    assert aggregate(stream_batch(events), Ctx()) == {"batchItemFailures": []}
    extra = make_events("t1", [("agent.revoked", "error", "a9")] * 2, start=T0 + timedelta(minutes=30))
    aggregate(stream_batch(events[10:] + extra), Ctx())
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
