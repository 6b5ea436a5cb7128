"""Scopes of the webhook and log-stream APIs (issue 12 point 5): whatever points events at a URL is a read of
events, so it needs `events:read` besides the write scope; stream reads need `streams:read`."""
from __future__ import annotations

import pytest

from functions.streams.app import lambda_handler as streams
from functions.webhooks.app import lambda_handler as webhooks
from maip_events import settings
from support import invoke, key_headers

HOOKS = "/v1/observability/webhooks"
STREAMS = "/v1/observability/streams"
HOOK_BODY = {"url": "https://hooks.example.com/maip"}
STREAM_BODY = {"type": "https", "config": {"url": "https://siem.example.com/in"}}


@pytest.fixture
def admin(aws):
    return key_headers("t1", ["*"])


def _hook(headers):
    status, doc, _ = invoke(webhooks, "POST", HOOKS, headers=headers, body=HOOK_BODY)
    assert status == 201, doc
    return doc["id"]


def _stream(headers):
    return _stream_of(headers, STREAM_BODY)


def _stream_of(headers, body):
    status, doc, _ = invoke(streams, "POST", STREAMS, headers=headers, body=body)
    assert status == 201, doc
    return doc["id"]


def _an_hour_ago() -> str:
    from datetime import timedelta

    from maip_events.ids import format_time, utc_now

    return format_time(utc_now() - timedelta(hours=1))


def _forbidden(status, doc, scope):
    assert status == 403 and doc["error"]["code"] == "forbidden", doc
    assert {"required_scope": scope} in doc["error"]["details"]


def test_webhooks_write_alone_cannot_create_replay_or_redirect_a_webhook(admin):
    # Given a key with only webhooks:write (and an existing webhook)
    writer = key_headers("t1", ["webhooks:write"])
    hook = _hook(admin)
    # When it creates a webhook, replays one, or points one at another URL
    created = invoke(webhooks, "POST", HOOKS, headers=writer, body=HOOK_BODY)
    replayed = invoke(webhooks, "POST", f"{HOOKS}/{hook}/replay", headers=writer, body={"from": _an_hour_ago()},
                      route=f"{HOOKS}/{{webhook_id}}/replay")
    redirected = invoke(webhooks, "PATCH", f"{HOOKS}/{hook}", headers=writer, body={"url": "https://evil.example.com/x"},
                        route=f"{HOOKS}/{{webhook_id}}")
    # Then each is a 403 naming events:read, and nothing changed
    for status, doc, _ in (created, replayed, redirected):
        _forbidden(status, doc, "events:read")
    status, listing, _ = invoke(webhooks, "GET", HOOKS, headers=admin)
    assert [(w["id"], w["url"]) for w in listing["items"]] == [(hook, HOOK_BODY["url"])]
    # And a change that sends nothing new elsewhere (the description) still needs only webhooks:write
    status, doc, _ = invoke(webhooks, "PATCH", f"{HOOKS}/{hook}", headers=writer, body={"description": "ops"}, route=f"{HOOKS}/{{webhook_id}}")
    assert status == 200 and doc["description"] == "ops"


def test_webhooks_write_with_events_read_can_create_and_replay(admin):
    # Given a key with webhooks:write and events:read
    both = key_headers("t1", ["webhooks:write", "events:read"])
    # When it creates a webhook and replays it
    hook = _hook(both)
    status, doc, _ = invoke(webhooks, "POST", f"{HOOKS}/{hook}/replay", headers=both, body={"from": _an_hour_ago()},
                            route=f"{HOOKS}/{{webhook_id}}/replay")
    # Then both are accepted
    assert status == 202 and doc["id"] == hook


def test_streams_write_alone_cannot_create_or_redirect_a_stream(admin):
    writer = key_headers("t1", ["streams:write"])
    stream = _stream(admin)
    status, doc, _ = invoke(streams, "POST", STREAMS, headers=writer, body=STREAM_BODY)
    _forbidden(status, doc, "events:read")
    status, doc, _ = invoke(streams, "PATCH", f"{STREAMS}/{stream}", headers=writer, route=f"{STREAMS}/{{stream_id}}",
                            body={"config": {"url": "https://evil.example.com/x"}})
    _forbidden(status, doc, "events:read")
    # But rotating the destination's credential alone sends nothing new anywhere: streams:write suffices
    splunk = _stream_of(admin, {"type": "splunk_hec", "config": {"url": "https://splunk.example.com", "token": "old-token-1234"}})
    status, doc, _ = invoke(streams, "PATCH", f"{STREAMS}/{splunk}", headers=writer, route=f"{STREAMS}/{{stream_id}}",
                            body={"config": {"token": "new-token-5678"}})
    assert status == 200 and doc["config"]["token"] == "****5678"
    # With events:read as well, it can
    both = key_headers("t1", ["streams:write", "events:read"])
    assert invoke(streams, "POST", STREAMS, headers=both, body=STREAM_BODY)[0] == 201


@pytest.mark.parametrize("path, route", [
    (STREAMS, STREAMS), ("{s}", f"{STREAMS}/{{stream_id}}"), ("{s}/status", f"{STREAMS}/{{stream_id}}/status"),
])
def test_streams_read_gates_every_stream_read(admin, path, route):
    stream = _stream(admin)
    url = path if path == STREAMS else f"{STREAMS}/" + path.format(s=stream)
    # Given a key with streams:write (and events:read) but not streams:read: 403
    status, doc, _ = invoke(streams, "GET", url, headers=key_headers("t1", ["streams:write", "events:read"]), route=route)
    _forbidden(status, doc, "streams:read")
    # And a key with streams:read alone reads it
    status, doc, _ = invoke(streams, "GET", url, headers=key_headers("t1", ["streams:read"]), route=route)
    assert status == 200, doc


def test_streams_read_is_a_valid_scope_for_keys(aws):
    from maip_events.auth.keys import create_api_key

    assert create_api_key("t1", ["streams:read"])["scopes"] == ["streams:read"]
    settings.reset()
