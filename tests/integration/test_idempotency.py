"""Idempotency-Key on emit (CONTRACT §6): through the real handlers against moto, tables from template.yaml."""
from __future__ import annotations

import json
import time

import pytest

from support import invoke

EVENTS = "/v1/observability/events"
BODY = {"event_type": "agent.registered", "agent_id": "agent-1", "metadata": {"n": 1.5, "s": "ü"}}


@pytest.fixture
def emit():
    from functions.emit.app import lambda_handler

    return lambda handler_headers, body, key=None: invoke(
        lambda_handler, "POST", EVENTS, headers={**handler_headers, **({"Idempotency-Key": key} if key is not None else {})}, body=body)


def listed(headers) -> list[dict]:
    from functions.list.app import lambda_handler

    status, page, _ = invoke(lambda_handler, "GET", EVENTS, headers=headers, query={"limit": "500"})
    assert status == 200, page
    return page["items"]


def test_a_retry_with_the_same_key_returns_the_first_response_and_stores_nothing_new(aws, headers, emit):
    # Given an event emitted with an Idempotency-Key
    status, first, first_headers = emit(headers, BODY, "order-42/attempt")
    assert status == 201 and "Idempotent-Replayed" not in first_headers
    # When the client retries the same request twice
    retries = [emit(headers, BODY, "order-42/attempt") for _ in range(2)]
    # Then each retry gets the first response (same id and created_at), marked as replayed
    for status, body, response_headers in retries:
        assert status == 201 and body == first
        assert response_headers.get("Idempotent-Replayed") == "true"
    # And exactly one event is stored
    assert [item["event_id"] for item in listed(headers)] == [first["id"]]


def test_the_same_key_with_a_different_body_is_a_conflict(aws, headers, emit):
    # Given a key already used
    _, first, _ = emit(headers, BODY, "k-1")
    # When it is reused with another body
    status, body, _ = emit(headers, {**BODY, "severity": "error"}, "k-1")
    # Then 409 conflict in the contract's error shape, and nothing new stored
    assert status == 409 and body["error"]["code"] == "conflict" and body["request_id"]
    assert [item["event_id"] for item in listed(headers)] == [first["id"]]


def test_two_tenants_may_use_the_same_key(aws, headers, emit):
    from support import key_headers

    other = key_headers("t2", ["*"])
    # When two tenants send the same key (and body)
    _, mine, _ = emit(headers, BODY, "shared-key")
    status, theirs, _ = emit(other, BODY, "shared-key")
    # Then each gets its own event
    assert status == 201 and theirs["id"] != mine["id"]
    assert [i["event_id"] for i in listed(headers)] == [mine["id"]]
    assert [i["event_id"] for i in listed(other)] == [theirs["id"]]


def test_requests_without_a_key_are_never_deduplicated(aws, headers, emit):
    ids = {emit(headers, BODY)[1]["id"] for _ in range(3)}
    assert len(ids) == 3 and len(listed(headers)) == 3


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\there", "ünïcode"])
def test_a_malformed_key_is_a_400_and_stores_nothing(aws, headers, emit, key):
    status, body, _ = emit(headers, BODY, key)
    assert status == 400 and body["error"]["code"] == "invalid_request"
    assert listed(headers) == []


def test_a_key_of_255_visible_characters_is_accepted(aws, headers, emit):
    key = ("!~" * 128)[:255]
    assert emit(headers, BODY, key)[0] == 201
    assert emit(headers, BODY, key)[2].get("Idempotent-Replayed") == "true"


def test_a_failed_request_does_not_consume_its_key(aws, headers, emit):
    # Given a first attempt rejected after validation (metadata over 16 KiB: 413)
    status, _, _ = emit(headers, {"event_type": "agent.registered", "metadata": {"x": "y" * 17000}}, "k-fail")
    assert status == 413
    # When the client fixes the body and retries with the same key
    status, body, _ = emit(headers, BODY, "k-fail")
    # Then it is processed normally
    assert status == 201 and [i["event_id"] for i in listed(headers)] == [body["id"]]


def test_the_first_response_is_kept_for_24_hours(aws, headers, emit):
    from maip_events.settings import get_settings

    # When an event is emitted with a key
    before = time.time()
    _, first, _ = emit(headers, BODY, "k-ttl")
    # Then its idempotency record (keyed by operation and a hash, never the raw key) holds the response and
    # expires in 24 h via TTL
    (item,) = aws.query(TableName=get_settings().idempotency_table, KeyConditionExpression="id = :id",
                        ExpressionAttributeValues={":id": {"S": _record_id("t1", "k-ttl")}})["Items"]
    assert item["status"]["S"] == "complete" and json.loads(item["response"]["S"]) == first
    assert before + 86400 - 5 <= int(item["expiration"]["N"]) <= time.time() + 86400 + 5
    assert "k-ttl" not in str(item)


def _record_id(tenant: str, key: str) -> str:
    """The record id: `<operation>#sha256(json [tenant, key])` (recomputed here from its documented scheme)."""
    import hashlib

    return "emit#" + hashlib.sha256(json.dumps([tenant, key]).encode()).hexdigest()
