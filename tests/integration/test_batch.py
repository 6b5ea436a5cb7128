"""POST /v1/observability/events:batch through the real emit handler against moto."""
from __future__ import annotations

import json

import pytest

from support import invoke, key_headers

BATCH, EVENTS = "/v1/observability/events:batch", "/v1/observability/events"


@pytest.fixture
def batch():
    from functions.emit.app import lambda_handler

    def send(headers, body, key=None):
        extra = {"Idempotency-Key": key} if key else {}
        return invoke(lambda_handler, "POST", BATCH, headers={**headers, **extra}, body=body)

    return send


def listed(headers) -> list[dict]:
    from functions.list.app import lambda_handler

    items, token = [], None
    while True:
        status, page, _ = invoke(lambda_handler, "GET", EVENTS, headers=headers,
                                 query={"limit": "500", **({"next_token": token} if token else {})})
        assert status == 200, page
        items += page["items"]
        token = page["next_token"]
        if not token:
            return items


def test_each_event_is_validated_on_its_own_and_answered_in_request_order(aws, headers, batch):
    # Given a batch mixing valid events, an unknown type, an unknown field and oversized metadata
    events = [
        {"event_type": "agent.registered", "agent_id": "a-1", "metadata": {"big": 12345678901234567890, "f": 0.1}},
        {"event_type": "agent.unknown"},
        {"event_type": "session.created", "colour": "red"},
        {"event_type": "trust.computed", "metadata": {"x": "y" * 17000}},
        {"event_type": "session.created", "resource_id": "r-1", "severity": "warn"},
    ]
    # When it is sent
    status, body, _ = batch(headers, {"events": events})
    # Then 207 with one result per event, in order
    assert status == 207 and (body["succeeded"], body["failed"]) == (2, 3)
    assert [r["status"] for r in body["results"]] == [201, 400, 400, 413, 201]
    assert [r["error"]["code"] for r in body["results"] if r["status"] != 201] == ["invalid_request", "invalid_request", "payload_too_large"]
    assert body["results"][1]["error"]["details"][0]["field"] == "event_type"
    assert body["results"][2]["error"]["details"][0]["field"] == "colour"
    first, last = body["results"][0]["event"], body["results"][4]["event"]
    assert first["id"].startswith("maip-evt:") and first["agent_id"] == "a-1" and first["severity"] == "info"
    assert last["resource_id"] == "r-1" and last["severity"] == "warn" and last["agent_id"] is None
    # And exactly the valid events are stored, with their exact bodies
    stored = {item["event_id"]: item for item in listed(headers)}
    assert set(stored) == {first["id"], last["id"]}
    assert stored[first["id"]]["payload"] == events[0]["metadata"]
    assert stored[first["id"]]["timestamp"] == first["created_at"]


def test_a_full_batch_of_100_is_stored_and_answered_with_200(aws, headers, batch):
    events = [{"event_type": "model.attested", "agent_id": f"agent-{i % 7}", "metadata": {"i": i}} for i in range(100)]
    status, body, _ = batch(headers, {"events": events})
    assert status == 200 and body["succeeded"] == 100 and body["failed"] == 0
    ids = [r["event"]["id"] for r in body["results"]]
    stored = {item["event_id"]: item["payload"]["i"] for item in listed(headers)}
    assert len(set(ids)) == 100 and stored == {event_id: i for i, event_id in enumerate(ids)}


@pytest.mark.parametrize("body", [
    {"events": []},
    {"events": [{"event_type": "agent.registered"}] * 101},
    {"events": [{"event_type": "agent.registered"}, "not an object"]},
    {"events": [{"event_type": "agent.registered"}], "extra": 1},
    [{"event_type": "agent.registered"}],
    {},
])
def test_a_malformed_envelope_is_a_400_and_stores_nothing(aws, headers, batch, body):
    status, doc, _ = batch(headers, body)
    assert status == 400 and doc["error"]["code"] == "invalid_request"
    assert listed(headers) == []


def test_a_batch_over_1_mib_but_within_6_mb_is_accepted(aws, headers, batch):
    # Given 100 events with ~15 KiB of metadata each (about 1.5 MB, over the single-resource cap of 1 MiB)
    events = [{"event_type": "dataset.attested", "metadata": {"blob": "z" * 15000, "i": i}} for i in range(100)]
    assert len(json.dumps({"events": events})) > 1024 * 1024
    status, body, _ = batch(headers, {"events": events})
    assert status == 200 and body["succeeded"] == 100
    assert len(listed(headers)) == 100


def test_a_batch_over_6_mb_is_a_413_and_stores_nothing(aws, headers, batch):
    # Given a body just over Lambda's 6 MB payload limit (here: escaped backslashes, 2 bytes each on the wire)
    events = [{"event_type": "dataset.attested", "metadata": {"blob": "\\" * 32000}} for _ in range(100)]
    body = json.dumps({"events": events})
    assert len(body) > 6 * 1024 * 1024
    status, doc, _ = batch(headers, body)
    assert status == 413 and doc["error"]["code"] == "payload_too_large"
    assert listed(headers) == []


def test_batch_needs_the_events_write_scope(aws, batch):
    reader = key_headers("t1", ["events:read"])
    status, doc, _ = batch(reader, {"events": [{"event_type": "agent.registered"}]})
    assert status == 403 and doc["error"]["code"] == "forbidden"
    assert listed(reader) == []


def test_a_retried_batch_with_the_same_key_returns_the_first_response(aws, headers, batch):
    events = [{"event_type": "agent.registered"}, {"event_type": "bogus"}]
    status, first, _ = batch(headers, {"events": events}, key="batch-1")
    assert status == 207
    status, again, response_headers = batch(headers, {"events": events}, key="batch-1")
    assert status == 207 and again == first and response_headers.get("Idempotent-Replayed") == "true"
    assert [i["event_id"] for i in listed(headers)] == [first["results"][0]["event"]["id"]]
    status, doc, _ = batch(headers, {"events": events[:1]}, key="batch-1")
    assert status == 409 and doc["error"]["code"] == "conflict"
