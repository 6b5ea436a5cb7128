"""Webhook and log-stream changes racing each other and the delivery path (issue 12 point 7): every change is a
versioned conditional update of the attributes it changes, so no write is lost and an auto-disable is never
undone. Racing writers are real threads against moto; moto's DynamoDB backend is made atomic per request
(as DynamoDB is) so the races are between our requests, not inside the fake."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

from functions.webhooks.app import lambda_handler as webhooks_handler
from maip_events.siem import streams
from maip_events.siem.models import CreateSplunkHecStream, UpdateStreamRequest
from maip_events.store.streams import StreamStore
from maip_events.store.webhooks import SubscriptionStore
from maip_events.webhooks import subscriptions
from maip_events.webhooks.models import CreateWebhookRequest, UpdateWebhookRequest
from support import invoke

TENANT = "t1"


@pytest.fixture
def atomic_moto(aws, monkeypatch):
    """One lock around moto's item operations: DynamoDB applies each request atomically; moto alone does not."""
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def locked(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoHandler, "call_action", locked)
    return aws


@pytest.fixture
def hook(atomic_moto):
    return subscriptions.create(TENANT, CreateWebhookRequest(url="https://hooks.example.com/a"))


def _race(*calls):
    """Runs every call at once (a barrier releases them together); returns their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_an_auto_disable_between_a_patch_read_and_its_write_is_not_undone(hook, monkeypatch):
    # Given a PATCH that reads the webhook, and the delivery path disabling it right after that read
    store = SubscriptionStore()
    original_get_item = DynamoDBBackend.get_item
    disabled = threading.Event()

    def get_then_disable(self, *args, **kwargs):
        item = original_get_item(self, *args, **kwargs)
        if not disabled.is_set():
            disabled.set()
            store.disable(TENANT, hook.webhook_id, "failing for 3 days", "2025-01-01T00:00:00.000Z")
        return item

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_then_disable)
    # When the PATCH (a new description) completes
    subscriptions.update(TENANT, hook.webhook_id, UpdateWebhookRequest(description="ops"))
    monkeypatch.setattr(DynamoDBBackend, "get_item", original_get_item)
    # Then the stored webhook is both described and still disabled, with its reason
    assert disabled.is_set()
    stored = store.get(TENANT, hook.webhook_id)
    assert (stored.description, stored.status, stored.disabled_reason) == ("ops", "disabled", "failing for 3 days")
    status, doc, _ = invoke(webhooks_handler, "GET", f"/v1/observability/webhooks/{hook.webhook_id}",
                            headers=_headers(), route="/v1/observability/webhooks/{webhook_id}")
    assert status == 200 and (doc["status"], doc["description"]) == ("disabled", "ops")


def _headers():
    from support import key_headers

    return key_headers(TENANT, ["webhooks:read"])


def test_racing_patches_and_an_auto_disable_keep_every_write(hook):
    # Given 8 PATCHes of different fields and an auto-disable by the delivery path, all at once
    store = SubscriptionStore()
    patches = [lambda i=i: subscriptions.update(TENANT, hook.webhook_id, UpdateWebhookRequest(description=f"d{i}")) for i in range(4)]
    patches += [lambda: subscriptions.update(TENANT, hook.webhook_id, UpdateWebhookRequest(url="https://hooks.example.com/b"))]
    patches += [lambda: subscriptions.update(TENANT, hook.webhook_id, UpdateWebhookRequest(event_types=["agent.*"]))]
    disable = [lambda: store.disable(TENANT, hook.webhook_id, "failing", "2025-01-01T00:00:00.000Z")]
    results = _race(*patches, *disable)
    # Then the auto-disable stands, and the url and event types changed by their own PATCHes are both kept
    stored = store.get(TENANT, hook.webhook_id)
    assert (stored.status, stored.disabled_reason) == ("disabled", "failing")
    assert (stored.url, stored.event_types) == ("https://hooks.example.com/b", ["agent.*"])
    # And the description is the one of the PATCH applied last (the highest version)
    last = max(results[:6], key=lambda s: s.version)
    assert stored.description == last.description and stored.version == last.version
    # And each PATCH was applied exactly once: versions 2..7, no two alike
    assert sorted(s.version for s in results[:6]) == list(range(2, 8))


def test_concurrent_rotations_leave_one_consistent_secret_chain(hook):
    # Given 6 rotations of one webhook at once
    rotated = _race(*[lambda: subscriptions.rotate_secret(TENANT, hook.webhook_id) for _ in range(6)])
    stored = SubscriptionStore().get(TENANT, hook.webhook_id)
    # Then every rotation was applied once, in some order (versions 2..7)
    by_version = {s.version: s for s in rotated}
    assert sorted(by_version) == list(range(2, 8))
    # And the secret that signs now is the one the last rotation returned; the one before it is the previous secret
    assert stored.secret == by_version[7].secret and stored.previous_secret == by_version[6].secret
    # And each rotation replaced exactly the secret returned by the one before it (no secret lost)
    assert by_version[2].previous_secret == hook.secret
    assert all(by_version[v].previous_secret == by_version[v - 1].secret for v in range(3, 8))


def test_racing_stream_patches_and_delivery_counters_lose_nothing(atomic_moto, monkeypatch):
    monkeypatch.setenv("MAIP_LOCAL", "1")
    from maip_events import settings

    settings.reset()
    # Given a Splunk stream
    stream = streams.create(TENANT, CreateSplunkHecStream(type="splunk_hec", config={"url": "https://splunk.example.com", "token": "t0"}))
    store = StreamStore()
    # When four PATCHes of different settings race each other and 10 delivery status updates
    calls = [
        lambda: streams.update(TENANT, stream.stream_id, UpdateStreamRequest(config={"token": "t-new"})),
        lambda: streams.update(TENANT, stream.stream_id, UpdateStreamRequest(config={"index": "audit"})),
        lambda: streams.update(TENANT, stream.stream_id, UpdateStreamRequest(format="jsonl")),
        lambda: streams.update(TENANT, stream.stream_id, UpdateStreamRequest(description="to splunk")),
    ]
    calls += [lambda: store.record(TENANT, stream.stream_id, now="2025-01-01T00:00:00.000Z", delivered_events=5, delivered_batches=1)
              for _ in range(10)]
    _race(*calls)
    # Then every PATCH is in the stored stream (both config fields merged) and every counter increment too
    stored = store.get(TENANT, stream.stream_id)
    assert (stored.config["token"], stored.config["index"], stored.format, stored.description) == ("t-new", "audit", "jsonl", "to splunk")
    assert stored.counters["delivered_events"] == 50 and stored.counters["delivered_batches"] == 10
    assert stored.version == 5
