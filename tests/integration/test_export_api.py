"""GET /v1/observability/events/export against moto: the whole window as NDJSON, continuation, OCSF, isolation."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from ocsf.v1_7_0 import events as ocsf_events

from functions.export.app import lambda_handler as export_handler
from functions.list.app import lambda_handler as list_handler
from maip_events import settings
from siem_harness import T0, make_events
from aggregation import settle
from support import Ctx, http_event, key_headers

PATH = "/v1/observability/events/export"
OCSF = {3001: ocsf_events.AccountChange, 3002: ocsf_events.Authentication, 3004: ocsf_events.EntityManagement,
        2004: ocsf_events.DetectionFinding, 6002: ocsf_events.ApplicationLifecycle}


def export(headers, **query):
    response = export_handler(http_event("GET", PATH, headers=headers, query=query), Ctx())
    return response


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response["body"].splitlines()]


def test_export_returns_the_whole_window_beyond_the_page_limit_and_only_the_callers_tenant(aws):
    # Given 520 events of tenant t1 and a few of another tenant
    mine = make_events("t1", [("agent.registered", "info", f"a{i % 7}") for i in range(520)], step=timedelta(milliseconds=10))
    make_events("t2", [("agent.registered", "info", "a1")] * 3)
    headers = key_headers("t1", ["events:read"])
    # When the tenant exports in the list-item format
    response = export(headers, format="jsonl")
    # Then one NDJSON response holds all 520 events, newest first, equal to the list items, and nothing of t2
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "application/x-ndjson"
    items = lines(response)
    assert items == [e.list_item() for e in reversed(mine)]
    assert "X-Next-Token" not in response["headers"] and response["headers"]["X-Export-Count"] == "520"


def test_a_large_window_is_split_into_responses_chained_by_a_continuation(aws, monkeypatch):
    # Given 23 events and responses capped at 5 events
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "5")
    settings.get_settings.cache_clear()
    mine = make_events("t1", [("session.created", "warn", "a1")] * 23)
    headers = key_headers("t1", ["events:read"])
    # When the client follows X-Next-Token until it is absent
    seen, token, calls = [], None, 0
    while True:
        query = {"format": "jsonl", "from": "2026-11-23T00:00:00Z", **({"next_token": token} if token else {})}
        response = export(headers, **query)
        assert response["statusCode"] == 200
        seen += lines(response)
        calls += 1
        token = response["headers"].get("X-Next-Token")
        if not token:
            break
        assert response["headers"]["Link"].endswith('rel="next"') and "next_token=" in response["headers"]["Link"]
    # Then every event arrived exactly once, in order, across 5 responses
    assert [i["event_id"] for i in seen] == [e.event_id for e in reversed(mine)] and calls == 5


def test_ocsf_export_validates_and_matches_the_filtered_list_count(aws):
    # Given a mix of types, severities and agents over two hours
    mix = [("guardrail.violation", "error", "a1"), ("agent.registered", "info", "a2"), ("session.expired", "warn", None),
           ("orchestration.failed", "error", "a1"), ("model.attested", "info", None), ("anomaly.resolved", "warn", "a2")] * 4
    make_events("t1", mix, step=timedelta(minutes=5))
    headers = key_headers("t1", ["events:read"])
    window = {"from": (T0 + timedelta(minutes=20)).isoformat(), "to": (T0 + timedelta(minutes=90)).isoformat()}
    # When exporting OCSF for one agent in a window
    records = lines(export(headers, format="ocsf", agent_id="a1", **window))
    # Then each line validates as its OCSF class, and the count equals the list endpoint's total
    for record in records:
        OCSF[record["class_uid"]].model_validate(record)
        assert record["unmapped"]["agent_id"] == "a1"
    settle()
    listed = json.loads(list_handler(http_event("GET", "/v1/observability/events", headers=headers,
                                                                       query={"agent_id": "a1", **window}), Ctx())["body"])
    assert len(records) == listed["total"] > 0


@pytest.mark.parametrize("query,status", [({"format": "csv"}, 400), ({"from": "yesterday"}, 400), ({"nope": "1"}, 400),
                                          ({"next_token": "forged"}, 400)])
def test_bad_queries_are_rejected(aws, query, status):
    response = export(key_headers("t1", ["events:read"]), **query)
    assert response["statusCode"] == status and json.loads(response["body"])["error"]["code"] == "invalid_request"


def test_export_needs_events_read(aws):
    response = export(key_headers("t1", ["events:write"]))
    assert response["statusCode"] == 403
