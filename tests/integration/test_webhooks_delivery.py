"""The webhook pipeline (stream -> fanout -> SQS -> delivery) invoked like Lambda would, against moto and
real receivers on 127.0.0.1. Signatures are checked with the independent `standardwebhooks` library."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from functions.emit.app import lambda_handler as emit
from functions.webhooks.app import lambda_handler as webhooks
from maip_events import settings
from support import invoke, key_headers
from webhook_harness import Pipeline, create_queues
from webhook_receiver import Receiver, Reply

EVENTS, BASE = "/v1/observability/events", "/v1/observability/webhooks"


@pytest.fixture
def pipeline(aws, monkeypatch):
    # Local mode: receivers live on loopback. Short schedule so retries come due within the test.
    monkeypatch.setenv("MAIP_LOCAL", "1")
    monkeypatch.setenv("MAIP_WEBHOOK_RETRY_SCHEDULE", "1,1")
    monkeypatch.setenv("MAIP_WEBHOOK_TIMEOUT", "1")
    settings.reset()
    create_queues()
    return Pipeline()


def subscribe(headers, url, event_types=("*",)) -> dict:
    status, doc, _ = invoke(webhooks, "POST", BASE, headers=headers, body={"url": url, "event_types": list(event_types)})
    assert status == 201, doc
    return doc


def emit_event(headers, event_type="agent.registered", **fields) -> dict:
    status, doc, _ = invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": event_type, **fields})
    assert status == 201, doc
    return doc


def deliveries(headers, webhook_id, **query) -> list[dict]:
    status, doc, _ = invoke(webhooks, "GET", f"{BASE}/{webhook_id}/deliveries", headers=headers, query=query or None)
    assert status == 200, doc
    return doc["items"]


def verify(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_matching_events_are_delivered_signed_and_recorded(pipeline, headers):
    with Receiver() as receiver:
        # Given a subscription to agent.* and one to session.created only
        hook = subscribe(headers, receiver.url, ["agent.*"])
        subscribe(headers, receiver.url + "?other=1", ["session.created"])
        # When an agent event and a trust event are emitted and the pipeline runs
        created = emit_event(headers, "agent.registered", agent_id="a-1", metadata={"n": 1.5, "u": "h\u00e9"})
        emit_event(headers, "trust.computed")
        assert pipeline.fan_out() == {"batchItemFailures": []}
        result = pipeline.deliver()
        # Then exactly one POST arrived: the agent event, to the agent.* subscription
        assert result == {"count": 1, "batchItemFailures": []}
        (request,) = receiver.wait_for(1)
        assert request.path == "/hook"
        # And it verifies with the subscription's secret (standardwebhooks), carrying the event id as webhook-id
        body = verify(hook["secret"], request)
        assert request.headers["webhook-id"] == created["id"]
        assert request.headers["content-type"] == "application/json"
        assert body == {"type": "agent.registered", "timestamp": created["created_at"], "data": {
            "event_id": created["id"], "event_type": "agent.registered", "agent_id": "a-1", "resource_id": None,
            "severity": "info", "payload": {"n": 1.5, "u": "h\u00e9"}, "timestamp": created["created_at"]}}
        # And another secret does not verify it
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    # And the attempt is visible in the deliveries log
    (attempt,) = deliveries(headers, hook["id"])
    assert (attempt["event_id"], attempt["attempt"], attempt["status"], attempt["status_code"]) == (created["id"], 1, "succeeded", 200)
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None and attempt["next_retry_at"] is None


def test_tenants_never_receive_each_others_events(pipeline, aws):
    t1, t2 = key_headers("t1", ["*"]), key_headers("t2", ["*"])
    with Receiver() as r1, Receiver() as r2:
        subscribe(t1, r1.url)
        subscribe(t2, r2.url)
        e1 = emit_event(t1, "agent.registered")
        e2 = emit_event(t2, "agent.registered")
        pipeline.fan_out()
        pipeline.deliver()
        assert [r.headers["webhook-id"] for r in r1.wait_for(1)] == [e1["id"]]
        assert [r.headers["webhook-id"] for r in r2.wait_for(1)] == [e2["id"]]
        assert len(r1.requests) == 1 and len(r2.requests) == 1


def test_disabled_and_deleted_subscriptions_receive_nothing(pipeline, headers):
    with Receiver() as receiver:
        disabled, deleted = subscribe(headers, receiver.url), subscribe(headers, receiver.url)
        invoke(webhooks, "PATCH", f"{BASE}/{disabled['id']}", headers=headers, body={"status": "disabled"})
        emit_event(headers)
        pipeline.fan_out()
        # Deleting after fanout (a message is already queued) still stops the delivery
        assert invoke(webhooks, "DELETE", f"{BASE}/{deleted['id']}", headers=headers)[0] == 204
        assert pipeline.deliver()["count"] == 1
        assert receiver.wait_for(1, timeout=0.5) == []


def test_failing_twice_then_succeeding_keeps_the_webhook_id_and_records_three_attempts(pipeline, headers):
    with Receiver(Reply(500, body=b"boom"), Reply(503, body=b"busy"), Reply(200)) as receiver:
        hook = subscribe(headers, receiver.url, ["agent.registered"])
        created = emit_event(headers)
        pipeline.fan_out()
        # When the receiver fails twice, the delivery is retried after the (shortened) backoff
        for _ in range(3):
            assert pipeline.deliver(wait=5)["batchItemFailures"] == []
        requests = receiver.wait_for(3)
        # Then three POSTs with the same webhook-id, each freshly signed and valid
        assert [r.headers["webhook-id"] for r in requests] == [created["id"]] * 3
        assert all(verify(hook["secret"], r)["data"]["event_id"] == created["id"] for r in requests)
        assert requests[1].at - requests[0].at >= 0.5
    # And three attempts are recorded, newest first, with status codes, errors and next retries
    attempts = deliveries(headers, hook["id"], event_id=created["id"])
    assert [(a["attempt"], a["status"], a["status_code"]) for a in attempts] == [(3, "succeeded", 200), (2, "retrying", 503), (1, "retrying", 500)]
    assert attempts[2]["error"] == "HTTP 500" and attempts[2]["response_body"] == "boom" and attempts[2]["next_retry_at"]
    assert len({a["delivery_id"] for a in attempts}) == 1
    assert pipeline.receive(dead_letters=True) == []


def test_always_failing_endpoint_ends_dead_lettered_and_nothing_is_lost(pipeline, headers):
    with Receiver(Reply(500)) as receiver:
        hook = subscribe(headers, receiver.url)
        created = emit_event(headers)
        pipeline.fan_out()
        for _ in range(3):  # schedule "1,1": three attempts in all
            pipeline.deliver(wait=5)
        assert len(receiver.wait_for(3)) == 3
        assert pipeline.deliver(wait=2.5)["count"] == 0  # no fourth attempt
    attempts = deliveries(headers, hook["id"])
    assert [a["status"] for a in attempts] == ["dead_lettered", "retrying", "retrying"]
    assert deliveries(headers, hook["id"], status="dead_lettered")[0]["event_id"] == created["id"]
    # And the message waits in the dead-letter queue with the full event
    (dead,) = pipeline.receive(dead_letters=True)
    doc = json.loads(dead["Body"])
    assert doc["event"]["event_id"] == created["id"] and doc["webhook_id"] == hook["id"] and doc["dead_letter_reason"] == "HTTP 500"


def test_retry_after_is_honoured(pipeline, headers):
    with Receiver(Reply(429, headers={"Retry-After": "120"})) as receiver:
        hook = subscribe(headers, receiver.url)
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        receiver.wait_for(1)
    (attempt,) = deliveries(headers, hook["id"])
    waited = datetime.fromisoformat(attempt["next_retry_at"].replace("Z", "+00:00")) - datetime.fromisoformat(attempt["attempted_at"].replace("Z", "+00:00"))
    assert attempt["status"] == "retrying" and waited.total_seconds() >= 119
    assert pipeline.receive(wait=1.5) == []  # still delayed in the queue, not due yet


def test_timeouts_redirects_and_huge_responses_are_failures(pipeline, headers):
    with Receiver(Reply(200, delay=3)) as slow, Receiver(Reply(302, headers={"Location": "http://127.0.0.1:1/x"})) as moved, \
            Receiver(Reply(500, body=b"x" * 3_000_000)) as huge:
        hooks = [subscribe(headers, r.url) for r in (slow, moved, huge)]
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        assert len(moved.requests) == 1  # the redirect was not followed
    (slow_attempt,), (moved_attempt,), (huge_attempt,) = (deliveries(headers, h["id"]) for h in hooks)
    assert slow_attempt["status"] == "retrying" and slow_attempt["error"].startswith("timeout") and slow_attempt["status_code"] is None
    assert moved_attempt["status_code"] == 302 and moved_attempt["status"] == "retrying"
    assert huge_attempt["status_code"] == 500 and len(huge_attempt["response_body"]) <= 1024


def test_rotation_sends_both_signatures_for_a_day(pipeline, headers):
    with Receiver() as receiver:
        hook = subscribe(headers, receiver.url)
        _, rotated, _ = invoke(webhooks, "POST", f"{BASE}/{hook['id']}/rotate-secret", headers=headers)
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        (request,) = receiver.wait_for(1)
    # Both the new and the old secret verify the same delivery
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(rotated["secret"], request) == verify(hook["secret"], request)


def test_endpoint_failing_too_long_is_disabled_and_can_be_re_enabled(pipeline, headers, monkeypatch):
    monkeypatch.setenv("MAIP_WEBHOOK_DISABLE_AFTER", "0")
    settings.reset()
    with Receiver(Reply(500), Reply(200)) as receiver:
        hook = subscribe(headers, receiver.url)
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        receiver.wait_for(1)
        # Then the webhook is disabled, the delivery dead-lettered, and new events are not sent
        status, got, _ = invoke(webhooks, "GET", f"{BASE}/{hook['id']}", headers=headers)
        assert got["status"] == "disabled" and got["disabled_reason"]
        assert [a["status"] for a in deliveries(headers, hook["id"])] == ["dead_lettered"]
        assert len(pipeline.receive(dead_letters=True)) == 1
        emit_event(headers)
        pipeline.fan_out()
        assert pipeline.deliver()["count"] == 0
        # When it is re-enabled, deliveries resume
        status, got, _ = invoke(webhooks, "PATCH", f"{BASE}/{hook['id']}", headers=headers, body={"status": "enabled"})
        assert (status, got["status"], got["disabled_reason"]) == (200, "enabled", None)
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        assert len(receiver.wait_for(2)) == 2


def test_replay_resends_the_window_to_that_endpoint_only(pipeline, headers):
    with Receiver() as receiver, Receiver() as bystander:
        # Given three stored events, one of a type the webhook does not match
        first = emit_event(headers, "agent.registered")
        emit_event(headers, "trust.computed")
        last = emit_event(headers, "agent.updated")
        pipeline.stream_records()  # those were emitted before the subscriptions existed
        hook = subscribe(headers, receiver.url, ["agent.*"])
        subscribe(headers, bystander.url)
        # When the window is replayed
        status, doc, _ = invoke(webhooks, "POST", f"{BASE}/{hook['id']}/replay", headers=headers,
                                body={"from": first["created_at"], "to": last["created_at"]})
        assert status == 202 and doc["count"] == 2 and doc["truncated"] is False and doc["id"] == hook["id"]
        pipeline.deliver()
        # Then the two matching events arrive at that endpoint, oldest first, and nothing at the other
        ids = [r.headers["webhook-id"] for r in receiver.wait_for(2)]
        assert sorted(ids) == sorted([first["id"], last["id"]])
        assert bystander.requests == []


def test_send_time_guard_refuses_private_addresses_when_deployed(pipeline, headers, monkeypatch):
    with Receiver() as receiver:
        # Given a loopback subscription registered in the local stack
        hook = subscribe(headers, receiver.url)
        emit_event(headers)
        pipeline.fan_out()
        # When delivery runs deployed (the address is checked again at send time)
        monkeypatch.setenv("MAIP_LOCAL", "0")
        settings.reset()
        pipeline.deliver()
        # Then nothing was sent and the attempt explains why
        assert receiver.wait_for(1, timeout=0.3) == []
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    (attempt,) = deliveries(headers, hook["id"])
    assert attempt["status"] == "retrying" and attempt["error"].startswith("refused")


def test_signing_timestamp_is_current(pipeline, headers):
    with Receiver() as receiver:
        subscribe(headers, receiver.url)
        emit_event(headers)
        pipeline.fan_out()
        pipeline.deliver()
        (request,) = receiver.wait_for(1)
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(timezone.utc).timestamp()) < 30


def test_poison_records_are_parked_alone_and_never_hold_their_batch(pipeline, headers):
    from functions.dispatch.app import lambda_handler as dispatch
    from functions.webhook_delivery.app import lambda_handler as delivery
    from maip_events import aws
    from maip_events.webhooks.queue import queue_url
    from support import Ctx

    with Receiver() as receiver:
        subscribe(headers, receiver.url)
        emit_event(headers)
        good = pipeline.stream_records()
        # Given a stream batch with one undecodable record next to a good one
        bad = {**good[0], "dynamodb": {**good[0]["dynamodb"], "NewImage": {"tenant_id": {"S": "t1"}}, "SequenceNumber": "bad-seq"}}
        # Then the batch succeeds: the bad record is parked (with its keys) and the good one is fanned out
        assert dispatch({"Records": [bad, *good]}, Ctx()) == {"batchItemFailures": []}
        messages = pipeline.receive()
        assert len(messages) == 1
        parked = aws.client("sqs").receive_message(QueueUrl=queue_url(settings.get_settings().dispatch_failure_queue))["Messages"]
        assert len(parked) == 1 and json.loads(parked[0]["Body"])["sequence_number"] == "bad-seq"
        # Given a delivery batch with a malformed message next to the good one
        records = [{"messageId": m, "receiptHandle": "r", "body": body, "attributes": {}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
                   for m, body in (("junk", "{not json"), ("good", messages[0]["Body"]))]
        # Then nothing comes back: the malformed one is parked in the dead-letter queue at once, the good one delivered
        assert delivery({"Records": records}, Ctx()) == {"batchItemFailures": []}
        assert len(receiver.wait_for(1)) == 1
        assert [m["Body"] for m in pipeline.receive(dead_letters=True)] == ["{not json"]
