"""Emit and list handlers against moto tables built from template.yaml (CONTRACT §4-§7)."""
from __future__ import annotations

import json
import re

import pytest

from functions.emit.app import lambda_handler as emit
from functions.list.app import lambda_handler as list_events
from aggregation import settle
from support import invoke, key_headers
from maip_events.catalog import EVENT_TYPES

EVENTS = "/v1/observability/events"
ID = re.compile(r"^maip-evt:[0-9A-HJKMNP-TV-Z]{26}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def stored_count(aws) -> int:
    from maip_events.settings import get_settings

    return sum(aws.query(TableName=get_settings().events_table, KeyConditionExpression="pk = :t",
                         ExpressionAttributeValues={":t": {"S": f"{t}#0"}}, Select="COUNT")["Count"] for t in ("t1", "t2"))


def test_emit_returns_the_contract_shape_and_list_round_trips_exact_metadata(headers):
    # Given metadata with tricky numbers, unicode, nesting and nulls
    raw = '{"event_type":"agent.registered","agent_id":"agent-1","metadata":{"a":0.1,"b":1e-7,"c":9007199254740993,"u":"h\\u00e9llo \\ud83d\\ude80","n":null,"nested":{"l":[1,2.5,{"x":null}]}}}'
    # When it is emitted
    status, created, _ = invoke(emit, "POST", EVENTS, headers=headers, body=raw)
    # Then 201 with the response shape
    assert status == 201
    assert set(created) == {"id", "event_type", "agent_id", "resource_id", "severity", "created_at"}
    assert ID.match(created["id"]) and TIME.match(created["created_at"])
    assert (created["agent_id"], created["resource_id"], created["severity"]) == ("agent-1", None, "info")
    # And listing returns the same metadata, value for value (total: once the stream is aggregated)
    settle()
    status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers)
    assert status == 200
    assert page["total"] == 1 and page["next_token"] is None and (page["limit"], page["offset"]) == (50, 0)
    item = page["items"][0]
    assert item == {"event_id": created["id"], "event_type": "agent.registered", "agent_id": "agent-1",
                    "resource_id": None, "severity": "info", "payload": json.loads(raw)["metadata"],
                    "timestamp": created["created_at"]}
    assert item["payload"]["c"] == 2**53 + 1 and item["payload"]["b"] == 1e-7


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_catalog_type_is_accepted(headers, event_type):
    status, created, _ = invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": event_type, "severity": "warn"})
    assert status == 201 and created["event_type"] == event_type and created["severity"] == "warn"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"event_type":"agent.unknown"}', "application/json", 400, "invalid_request"),
        ('{"event_type":"Agent.Registered"}', "application/json", 400, "invalid_request"),
        ('{"agent_id":"a"}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","surprise":1}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","severity":"fatal"}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","agent_id":""}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","agent_id":"' + "x" * 257 + '"}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","agent_id":7}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","metadata":[1]}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","metadata":{"x":NaN}}', "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered","metadata":{"x":"' + "y" * 17000 + '"}}', "application/json", 413, "payload_too_large"),
        ("[1,2]", "application/json", 400, "invalid_request"),
        ('"just a string"', "application/json", 400, "invalid_request"),
        ("{not json", "application/json", 400, "invalid_request"),
        ("", "application/json", 400, "invalid_request"),
        ('{"event_type":"agent.registered"}', "text/plain", 415, "unsupported_media_type"),
        ("event_type=agent.registered", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("x" * (1024 * 1024 + 1), "application/json", 413, "payload_too_large"),
    ],
)
def test_bad_input_gets_a_4xx_error_document_and_stores_nothing(aws, headers, body, content_type, status, code):
    # Given a malformed request
    got, doc, _ = invoke(emit, "POST", EVENTS, headers={**headers, "Content-Type": content_type}, body=body)
    # Then it is refused with the contract's error document, and nothing is stored
    assert (got, doc["error"]["code"]) == (status, code)
    assert isinstance(doc["error"]["message"], str) and isinstance(doc["error"]["details"], list) and doc["request_id"]
    assert stored_count(aws) == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "1.5"}, "limit"),
        ({"offset": "-1"}, "offset"), ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"), ({"event_type": "nope"}, "event_type"),
        ({"colour": "blue"}, "colour"), ({"next_token": "garbage"}, "next_token"),
    ],
)
def test_bad_queries_are_400(headers, query, field):
    status, doc, _ = invoke(list_events, "GET", EVENTS, headers=headers, query=query)
    assert status == 400 and doc["error"]["code"] == "invalid_request"
    assert any(d.get("field") == field for d in doc["error"]["details"]), doc


def test_list_filters_orders_newest_first_and_paginates(headers):
    # Given six events of two agents and two types
    ids = []
    for i in range(6):
        body = {"event_type": "session.created" if i % 2 else "session.revoked", "agent_id": f"a{i % 3}"}
        ids.append(invoke(emit, "POST", EVENTS, headers=headers, body=body)[1]["id"])
    newest_first = list(reversed(ids))
    settle()
    # Then each filter returns exactly its matches, newest first, with the exact total
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"agent_id": "a1"})
    assert [i["event_id"] for i in page["items"]] == [ids[4], ids[1]] and page["total"] == 2
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"event_type": "session.created", "agent_id": "a1"})
    assert [i["event_id"] for i in page["items"]] == [ids[1]] and page["total"] == 1
    # And limit/offset and next_token walk the whole list without gaps or duplicates
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "2", "offset": "1"})
    assert [i["event_id"] for i in page["items"]] == newest_first[1:3] and page["total"] == 6
    seen, token = [], None
    while True:
        query = {"limit": "4", **({"next_token": token} if token else {})}
        status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query=query)
        assert status == 200
        seen += [i["event_id"] for i in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert seen == newest_first


def test_time_window_is_inclusive_and_naive_times_are_utc(headers):
    _, created, _ = invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "trust.computed"})
    at = created["created_at"]
    settle()
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"from": at, "to": at})
    assert [i["event_id"] for i in page["items"]] == [created["id"]]
    naive = at.rstrip("Z")
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"from": naive, "to": naive})
    assert page["total"] == 1
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"to": "2000-01-01T00:00:00+02:00"})
    assert page["total"] == 0 and page["items"] == []


def test_a_cursor_cannot_be_replayed_against_another_tenant_or_filter(aws, headers):
    for _ in range(3):
        invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "agent.updated"})
    _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "1"})
    token = page["next_token"]
    other = key_headers("t2", ["events:read"])
    status, doc, _ = invoke(list_events, "GET", EVENTS, headers=other, query={"limit": "1", "next_token": token})
    assert status == 400 and doc["error"]["code"] == "invalid_request"
    status, _, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "1", "event_type": "agent.updated", "next_token": token})
    assert status == 400


@pytest.mark.parametrize(
    ("headers_fn", "status", "code"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "X-Tenant-ID"}, 400, "invalid_request"),
        (lambda h: {**h, "X-Tenant-ID": "bad tenant!"}, 400, "invalid_request"),
        (lambda h: {**h, "X-Tenant-ID": "x" * 129}, 400, "invalid_request"),
        (lambda h: {k: v for k, v in h.items() if k != "X-API-Key"}, 401, "unauthorized"),
        (lambda h: {**h, "X-API-Key": "maip_sk_not-a-real-key"}, 401, "unauthorized"),
        (lambda h: {**h, "X-Tenant-ID": "t2"}, 403, "forbidden"),
    ],
)
def test_tenant_header_and_credential_rules(aws, headers, headers_fn, status, code):
    got, doc, _ = invoke(emit, "POST", EVENTS, headers=headers_fn(headers), body={"event_type": "agent.registered"})
    assert (got, doc["error"]["code"]) == (status, code)
    assert stored_count(aws) == 0


def test_scopes_and_revocation(aws):
    from maip_events.auth.keys import revoke_api_key

    writer = key_headers("t1", ["events:write"])
    reader = key_headers("t1", ["events:read"])
    assert invoke(emit, "POST", EVENTS, headers=writer, body={"event_type": "agent.registered"})[0] == 201
    assert invoke(list_events, "GET", EVENTS, headers=writer)[0] == 403
    assert invoke(emit, "POST", EVENTS, headers=reader, body={"event_type": "agent.registered"})[0] == 403
    settle()
    assert invoke(list_events, "GET", EVENTS, headers=reader)[1]["total"] == 1
    # When the writer's key is revoked, it stops working at once
    from maip_events.auth.keys import lookup_api_key

    record = lookup_api_key(writer["X-API-Key"])
    revoke_api_key(record["key_id"])
    assert invoke(emit, "POST", EVENTS, headers=writer, body={"event_type": "agent.registered"})[0] == 401
    assert stored_count(aws) == 1


def test_tenants_never_see_each_other(aws, headers):
    other = key_headers("t2", ["*"])
    invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "agent.registered", "agent_id": "shared"})
    invoke(emit, "POST", EVENTS, headers=other, body={"event_type": "agent.registered", "agent_id": "shared"})
    settle()
    for h in (headers, other):
        _, page, _ = invoke(list_events, "GET", EVENTS, headers=h, query={"agent_id": "shared", "event_type": "agent.registered"})
        assert page["total"] == 1 and len(page["items"]) == 1
