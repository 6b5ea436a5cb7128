"""The order in which a request is judged (CONTRACT §4-§5): credential, then scope, then the body; and a JSON-body
route takes exactly one JSON object. Rejected requests store nothing."""
from __future__ import annotations

import pytest

from functions.emit.app import lambda_handler as emit
from functions.streams.app import lambda_handler as streams
from functions.webhooks.app import lambda_handler as webhooks
from maip_events.settings import get_settings
from support import invoke, key_headers

EVENTS = "/v1/observability/events"
BATCH = "/v1/observability/events:batch"
WEBHOOK_ID = "maip-whk:01JD8X0Q6W1T3F4N5P6R7S8T9V"
STREAM_ID = "maip-str:01JD8X0Q6W1T3F4N5P6R7S8T9V"
# (handler, method, path, scope): every route that takes a JSON body
JSON_BODY_ROUTES = [
    (emit, "POST", EVENTS, "events:write"),
    (emit, "POST", BATCH, "events:write"),
    (webhooks, "POST", "/v1/observability/webhooks", "webhooks:write"),
    (webhooks, "PATCH", f"/v1/observability/webhooks/{WEBHOOK_ID}", "webhooks:write"),
    (webhooks, "POST", f"/v1/observability/webhooks/{WEBHOOK_ID}/replay", "webhooks:write"),
    (streams, "POST", "/v1/observability/streams", "streams:write"),
    (streams, "PATCH", f"/v1/observability/streams/{STREAM_ID}", "streams:write"),
]
NON_OBJECT_BODIES = {
    "array": '[{"event_type":"agent.updated"},{"event_type":"nonsense"}]',
    "empty array": "[]",
    "string": '"agent.updated"',
    "number": "42",
    "null": "null",
    "true": "true",
    "empty": "",
    "whitespace": "  \n",
}
BAD_BODIES = {**NON_OBJECT_BODIES, "not JSON": "{event_type:", "schema violation": '{"nope": 1}'}


def stored_rows(aws) -> int:
    """Every row of every table that a request could write (events, webhooks, streams, idempotency)."""
    total = 0
    for table in aws.list_tables()["TableNames"]:
        if "key" in table.lower():  # API keys are created by the test itself
            continue
        total += aws.scan(TableName=table, Select="COUNT")["Count"]
    return total


def route_id(route) -> str:
    return f"{route[1]} {route[2].replace(WEBHOOK_ID, '{id}').replace(STREAM_ID, '{id}')}"


@pytest.mark.parametrize("route", JSON_BODY_ROUTES, ids=route_id)
def test_a_json_body_route_answers_400_to_anything_but_one_object_and_stores_nothing(aws, headers, route):
    handler, method, path, _ = route
    before = stored_rows(aws)
    for kind, raw in NON_OBJECT_BODIES.items():
        # When the body is not one JSON object (an array is no batch on the single emit route)
        status, body, _ = invoke(handler, method, path, headers=headers, body=raw)
        # Then a 400 in the contract's error shape
        assert status == 400, (kind, body)
        assert body["error"]["code"] == "invalid_request" and body["error"]["message"], (kind, body)
        assert isinstance(body["error"]["details"], list) and set(body) == {"error", "request_id"}
    # And nothing was stored
    assert stored_rows(aws) == before


@pytest.mark.parametrize("route", JSON_BODY_ROUTES, ids=route_id)
def test_a_bad_credential_is_401_whatever_the_body(aws, route):
    handler, method, path, _ = route
    # Given an unknown API key, an unknown Bearer token, or no credential at all
    for headers in ({"X-API-Key": "maip_sk_not-a-real-key", "X-Tenant-ID": "t1"},
                    {"Authorization": "Bearer not.a.jwt", "X-Tenant-ID": "t1"}, {"X-Tenant-ID": "t1"}):
        for kind, raw in BAD_BODIES.items():
            # When it sends a body that would be a 400 for a valid caller
            status, body, _ = invoke(handler, method, path, headers=headers, body=raw)
            # Then 401, and the answer says nothing about the body or the schema
            assert status == 401, (kind, body)
            assert body["error"]["code"] == "unauthorized" and body["error"]["details"] == []


@pytest.mark.parametrize("route", JSON_BODY_ROUTES, ids=route_id)
def test_a_valid_credential_without_the_scope_is_403_whatever_the_body(aws, route):
    handler, method, path, scope = route
    # Given a valid key of the tenant holding every scope but the one this route needs
    others = [s for s in ("events:write", "events:read", "webhooks:write", "webhooks:read", "metrics:read", "streams:write") if s != scope]
    headers = key_headers("t1", others)
    for kind, raw in BAD_BODIES.items():
        # When it sends a bad body
        status, body, _ = invoke(handler, method, path, headers=headers, body=raw)
        # Then 403 naming the missing scope, not a 400
        assert status == 403, (kind, body)
        assert body["error"]["code"] == "forbidden" and body["error"]["details"] == [{"required_scope": scope}]


def test_an_oversized_or_mistyped_body_from_a_bad_credential_is_401(aws):
    bad = {"X-API-Key": "maip_sk_not-a-real-key", "X-Tenant-ID": "t1"}
    # When an unauthenticated caller sends a body over the cap, or a non-JSON media type
    too_big = invoke(emit, "POST", EVENTS, headers=bad, body="x" * (1024 * 1024 + 1))[0]
    wrong_type = invoke(emit, "POST", EVENTS, headers={**bad, "Content-Type": "text/plain"}, body="{}")[0]
    # Then both are 401: the body is only looked at for authenticated callers
    assert (too_big, wrong_type) == (401, 401)


def test_a_valid_object_body_still_goes_through(aws, headers):
    # Given a body that is one valid object
    status, created, _ = invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "agent.updated"})
    # Then it is stored
    assert status == 201 and created["event_type"] == "agent.updated"
    table = get_settings().events_table
    assert aws.scan(TableName=table, Select="COUNT")["Count"] == 1
