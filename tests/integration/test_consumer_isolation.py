"""Blast radius of one tenant in the shared consumers (issue 12): a poisoned destination, a hostile endpoint or
a hostile value fails only itself; S3 streams stay inside the tenant's own partition of an allowed bucket; a
tenant over its fan-out rate is delayed, never another tenant. Driven like Lambda would: stream batches into
the dispatcher, queue messages into the delivery consumers, against moto and receivers on 127.0.0.1."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from drip_receiver import DripReceiver
from functions.dispatch.app import lambda_handler as dispatch
from functions.siem_stream.app import lambda_handler as siem
from functions.streams.app import lambda_handler as streams_api
from functions.webhooks.app import lambda_handler as webhooks_api
from maip_events import settings
from maip_events.dispatch.ratelimit import TenantRateLimiter
from maip_events.events import build_event
from maip_events.ids import format_time, utc_now
from maip_events.models.events import EmitEventRequest
from maip_events.store.events import EventStore
from maip_events.store.streams import LogStream, StreamStore
from maip_events.store.webhooks import SubscriptionStore
from siem_harness import create_queues, drain, messages, stream_batch
from siem_receivers import Receiver as SiemReceiver, event_id_of
from support import Ctx, invoke, key_headers
from webhook_harness import Pipeline
from webhook_receiver import Receiver

STREAMS, HOOKS = "/v1/observability/streams", "/v1/observability/webhooks"
HOSTILE_AGENTS = ["\U0001F525" * 256, "a#b/c=d", "x\u0007y\u001fz", "=#/" * 80, "tenant=t2/../x"]


@pytest.fixture
def local(aws, monkeypatch):
    monkeypatch.setenv("MAIP_LOCAL", "1")
    monkeypatch.setenv("MAIP_STREAM_RETRY_SCHEDULE", "0,0")
    monkeypatch.setenv("MAIP_WEBHOOK_RETRY_SCHEDULE", "0,0")
    monkeypatch.setenv("MAIP_STREAM_TIMEOUT", "2")
    monkeypatch.setenv("MAIP_WEBHOOK_TIMEOUT", "2")
    settings.reset()
    return create_queues()


def events_of(tenant: str, count: int, agents: list[str] | None = None) -> list:
    events = [build_event(tenant, EmitEventRequest(event_type="agent.registered", agent_id=(agents or [None])[i % len(agents or [None])],
                                                   metadata={"i": i}), now=utc_now()) for i in range(count)]
    EventStore().put_many(events)
    return events


def create_stream(headers, **body) -> dict:
    status, doc, _ = invoke(streams_api, "POST", STREAMS, headers=headers, body=body)
    assert status == 201, doc
    return doc


def stream_status(headers, stream_id) -> dict:
    status, doc, _ = invoke(streams_api, "GET", f"{STREAMS}/{stream_id}/status", headers=headers, route=f"{STREAMS}/{{stream_id}}/status")
    assert status == 200, doc
    return doc


def store_stream_bypassing_the_api(tenant: str, stream_id: str, stream_type: str, config: dict) -> None:
    """A destination stored before today's edge checks existed (or written by hand): the consumer must contain it."""
    now = format_time(utc_now())
    StreamStore().put(LogStream(tenant_id=tenant, stream_id=stream_id, type=stream_type, config=config, event_types=["*"],
                                format="jsonl", status="enabled", created_at=now, updated_at=now))


# -- poison SIEM configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    {"type": "splunk_hec", "config": {"url": "http://127.0.0.1:9", "token": "abc\ndef"}},
    {"type": "splunk_hec", "config": {"url": "http://127.0.0.1:9", "token": "abc\r\nX-Evil: 1"}},
    {"type": "splunk_hec", "config": {"url": "http://127.0.0.1:9", "token": "токен"}},
    {"type": "splunk_hec", "config": {"url": "http://127.0.0.1:9", "token": "with space"}},
    {"type": "datadog", "config": {"api_key": "key\u2028"}},
    {"type": "datadog", "config": {"api_key": "\U0001F511"}},
    {"type": "datadog", "config": {"api_key": "k\u0000"}},
])
def test_header_bound_secrets_must_be_visible_ascii(local, config):
    headers = key_headers("t1", ["streams:write", "streams:read", "events:read"])
    status, doc, _ = invoke(streams_api, "POST", STREAMS, headers=headers, body=config)
    assert status == 400 and doc["error"]["code"] == "invalid_request", doc


def test_patch_cannot_bring_a_poison_token_in(local):
    headers = key_headers("t1", ["streams:write", "streams:read", "events:read"])
    stream = create_stream(headers, type="splunk_hec", config={"url": "http://127.0.0.1:9", "token": "good-token"})
    status, doc, _ = invoke(streams_api, "PATCH", f"{STREAMS}/{stream['id']}", headers=headers, route=f"{STREAMS}/{{stream_id}}",
                            body={"config": {"token": "bad\ntoken"}})
    assert status == 400, doc


def test_a_poisoned_destination_fails_alone_and_is_parked_with_a_visible_status(local):
    a, b = key_headers("tA", ["streams:write", "streams:read", "events:read"]), key_headers("tB", ["streams:write", "streams:read", "events:read"])
    with SiemReceiver("splunk_hec", "tok") as hec, SiemReceiver("https") as web:
        # Given tenant A's stored Splunk stream with a token that cannot be a header (stored before the edge check),
        store_stream_bypassing_the_api("tA", "maip-str:01POISON0000000000000000AA", "splunk_hec", {"url": hec.url, "token": "tok\nX-Evil: 1"})
        store_stream_bypassing_the_api("tA", "maip-str:01POISON0000000000000000AB", "datadog", {"url": hec.url, "api_key": "ключ"})
        # and tenant B's healthy https stream
        hook = create_stream(b, type="https", config={"url": web.url + "/in"}, format="jsonl")
        mine, theirs = events_of("tA", 5), events_of("tB", 7)
        # When one stream batch holds both tenants' events
        assert dispatch(stream_batch(mine + theirs), Ctx()) == {"batchItemFailures": []}
        drain(local["maip-stream-deliveries"], siem)
        # Then B got each of its events exactly once, signed, and never A's
        (got,) = web.received
        assert sorted(map(event_id_of, got.records)) == sorted(e.event_id for e in theirs)
        Webhook(hook["secret"]).verify(got.body, got.headers, json_parse=False)
        # And A's poisoned destinations sent nothing, were retried on their own and are parked, visibly
        assert hec.received == []
        for stream_id in ("maip-str:01POISON0000000000000000AA", "maip-str:01POISON0000000000000000AB"):
            status = stream_status(a, stream_id)
            assert (status["failed_attempts"], status["dead_lettered_events"], status["delivered_events"]) == (3, 5, 0), status
            assert "must be visible ASCII" in status["last_error"]
        assert len(messages(local["maip-stream-dead-letters"])) == 2
        assert stream_status(b, hook["id"])["delivered_events"] == 7


# -- hostile endpoints and values through webhooks -----------------------------------------------------------
def test_a_drip_endpoint_and_a_broken_secret_never_hold_back_the_rest_of_the_batch(local):
    pipeline = Pipeline()
    a, b = key_headers("tA", ["webhooks:write", "webhooks:read", "events:read"]), key_headers("tB", ["webhooks:write", "webhooks:read", "events:read"])
    with DripReceiver() as drip, Receiver() as healthy:
        # Given tenant A's webhook on a receiver that drips its response, one with an unusable stored secret,
        slow = invoke(webhooks_api, "POST", HOOKS, headers=a, body={"url": drip.url})[1]
        broken = invoke(webhooks_api, "POST", HOOKS, headers=a, body={"url": healthy.url + "?broken"})[1]
        SubscriptionStore().modify("tA", broken["id"], lambda _: {"secret": "whsec_!!not base64!!"})
        # and tenant B's healthy webhook
        good = invoke(webhooks_api, "POST", HOOKS, headers=b, body={"url": healthy.url})[1]
        events_of("tA", 2)
        theirs = events_of("tB", 3, HOSTILE_AGENTS)
        # When the events go through the dispatcher and ONE delivery batch
        assert pipeline.fan_out() == {"batchItemFailures": []}
        result = pipeline.deliver()
        # Then the batch reports no failure, and B's events arrived once each, signed, hostile agent ids intact
        assert result["count"] == 7 and result["batchItemFailures"] == []
        got = [r for r in healthy.wait_for(3) if "broken" not in r.path]
        assert sorted(Webhook(good["secret"]).verify(r.body, r.headers)["data"]["event_id"] for r in got) == sorted(e.event_id for e in theirs)
        assert {Webhook(good["secret"]).verify(r.body, r.headers)["data"]["agent_id"] for r in got} == set(HOSTILE_AGENTS[:3])
    # And A's attempts are recorded as that endpoint's failures: timed out at the deadline, and "not sent"
    def attempts(headers, webhook_id):
        status, doc, _ = invoke(webhooks_api, "GET", f"{HOOKS}/{webhook_id}/deliveries", headers=headers, route=f"{HOOKS}/{{webhook_id}}/deliveries")
        assert status == 200, doc
        return doc["items"]
    assert [(x["status"], x["error"]) for x in attempts(a, slow["id"])] == [("retrying", "timeout after 2 s")] * 2
    assert [(x["status"], x["error"][:9]) for x in attempts(a, broken["id"])] == [("retrying", "not sent:")] * 2
    assert drip.requests <= 2  # one try per event in the batch, never more
    assert [x["status"] for x in attempts(b, good["id"])] == ["succeeded"] * 3


def test_hostile_values_reach_log_streams_intact(local):
    b = key_headers("tB", ["streams:write", "streams:read", "events:read"])
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="maip-siem-b")
    with SiemReceiver("splunk_hec", "tok") as hec, SiemReceiver("datadog", "k") as dd:
        create_stream(b, type="splunk_hec", config={"url": hec.url, "token": "tok", "host": "h#/=\U0001F525", "index": "i=#/"})
        create_stream(b, type="datadog", config={"url": dd.url, "api_key": "k", "tags": ["t:#/=\U0001F525"]}, format="jsonl")
        create_stream(b, type="s3", config={"bucket": "maip-siem-b"}, format="jsonl")
        events = events_of("tB", 5, HOSTILE_AGENTS)
        dispatch(stream_batch(events), Ctx())
        drain(local["maip-stream-deliveries"], siem)
        assert sorted(r["metadata"]["uid"] for r in hec.records()) == sorted(e.event_id for e in events)
        assert sorted(r["agent_id"] for r in dd.records()) == sorted(HOSTILE_AGENTS)
    s3 = boto3.client("s3", region_name="us-east-1")
    (obj,) = s3.list_objects_v2(Bucket="maip-siem-b")["Contents"]
    assert obj["Key"].startswith("tenant=tB/dt=")
    lines = gzip.decompress(s3.get_object(Bucket="maip-siem-b", Key=obj["Key"])["Body"].read()).decode().splitlines()
    assert sorted(json.loads(line)["agent_id"] for line in lines) == sorted(HOSTILE_AGENTS)


# -- S3: own partition, allowed buckets only -------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["../", "tenant=t2/", "x/tenant=t2/", "/abs/", "a%2Fb/", "a//b/", "./", "a/../", "..", "a\\b/", "x=y/"])
def test_s3_prefixes_that_could_leave_the_own_partition_are_refused(local, prefix):
    status, doc, _ = invoke(streams_api, "POST", STREAMS, headers=key_headers("t1", ["streams:write", "streams:read", "events:read"]),
                            body={"type": "s3", "config": {"bucket": "maip-siem-shared", "prefix": prefix}})
    assert status == 400, (prefix, doc)


def test_s3_buckets_are_those_the_operator_allowed_for_the_tenant(local, monkeypatch):
    monkeypatch.setenv("MAIP_STREAM_BUCKETS", json.dumps({"t1": ["maip-siem-t1"], "*": ["maip-siem-shared"]}))
    settings.reset()
    one, two = key_headers("t1", ["streams:write", "streams:read", "events:read"]), key_headers("t2", ["streams:write", "streams:read", "events:read"])
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("maip-siem-t1", "maip-siem-shared"):
        s3.create_bucket(Bucket=bucket)
    # Then t1 may use its own bucket and the shared one; t2 only the shared one
    create_stream(one, type="s3", config={"bucket": "maip-siem-t1", "prefix": "audit/"})
    create_stream(two, type="s3", config={"bucket": "maip-siem-shared", "prefix": "audit/"})
    status, doc, _ = invoke(streams_api, "POST", STREAMS, headers=two, body={"type": "s3", "config": {"bucket": "maip-siem-t1"}})
    assert status == 400 and "allowed for this tenant" in json.dumps(doc)
    # And a stream stored with another tenant's bucket and an escaping prefix (bypassing the API) writes nothing
    store_stream_bypassing_the_api("t2", "maip-str:01ESCAPE00000000000000000A", "s3", {"bucket": "maip-siem-t1", "prefix": ""})
    store_stream_bypassing_the_api("t2", "maip-str:01ESCAPE00000000000000000B", "s3", {"bucket": "maip-siem-shared", "prefix": "tenant=t1/"})
    events = events_of("t1", 2) + events_of("t2", 2)
    dispatch(stream_batch(events), Ctx())
    drain(local["maip-stream-deliveries"], siem)
    keys = {b: [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])] for b in ("maip-siem-t1", "maip-siem-shared")}
    assert [k.split("/")[:2] for k in keys["maip-siem-t1"]] == [["audit", "tenant=t1"]]
    assert [k.split("/")[:2] for k in keys["maip-siem-shared"]] == [["audit", "tenant=t2"]]
    for stream_id in ("maip-str:01ESCAPE00000000000000000A", "maip-str:01ESCAPE00000000000000000B"):
        assert stream_status(two, stream_id)["last_error"].startswith("dead-lettered after 3 attempts: not sent")


# -- fan-out rate ------------------------------------------------------------------------------------------------
def test_a_tenant_over_its_fanout_rate_is_delayed_and_no_one_else(local, monkeypatch):
    monkeypatch.setenv("MAIP_FANOUT_RATE", "1")
    monkeypatch.setenv("MAIP_FANOUT_BURST", "3")
    settings.reset()
    pipeline = Pipeline()
    with Receiver() as receiver:
        for tenant in ("tA", "tB"):
            invoke(webhooks_api, "POST", HOOKS, headers=key_headers(tenant, ["webhooks:write", "events:read"]), body={"url": receiver.url + f"?{tenant}"})
        # Given tenant A emitting 10 events (burst 3, 1/s) and B 3, in one stream batch
        mine, theirs = events_of("tA", 10), events_of("tB", 3)
        assert pipeline.fan_out() == {"batchItemFailures": []}
        # Then right away only A's burst and all of B's messages are deliverable; A's others wait their turn
        ready = [json.loads(m["Body"]) for m in pipeline.receive()]
        assert sorted(m["event"]["event_id"] for m in ready if m["tenant_id"] == "tB") == sorted(e.event_id for e in theirs)
        assert len([m for m in ready if m["tenant_id"] == "tA"]) == 3


def test_the_token_bucket_spreads_a_tenant_at_its_rate():
    limiter = TenantRateLimiter(rate=10, burst=5)
    at = [limiter.not_before("a", 1, now=100.0) for _ in range(8)]
    assert at[:5] == [None] * 5 and at[5:] == pytest.approx([100.1, 100.2, 100.3])
    assert limiter.not_before("b", 1, now=100.0) is None  # another tenant's bucket is untouched
    assert limiter.not_before("a", 1, now=101.0) is None  # refilled at the rate


# -- hostile values at the edge of the webhooks and streams APIs -----------------------------------------------
HOSTILE_TEXT = ["\U0001F525" * 128, "a#b/c=d", "x\u0007\u001f\u007fy", "tenant=t2/../", "%2F%00"]


def test_hostile_descriptions_and_ids_never_reach_a_key_or_a_500(local):
    headers = key_headers("t1", ["webhooks:write", "webhooks:read", "streams:write", "streams:read", "events:read"])
    for text in HOSTILE_TEXT:
        # Given descriptions full of emoji, separators and control characters: stored as attributes, returned intact
        status, hook, _ = invoke(webhooks_api, "POST", HOOKS, headers=headers, body={"url": "http://127.0.0.1:9/h", "description": text})
        assert status == 201 and hook["description"] == text, hook
        stream = create_stream(headers, type="https", config={"url": "http://127.0.0.1:9/s"}, description=text)
        assert stream["description"] == text
        # And ids made of them are not found (or refused), never a server error
        for base, route in ((HOOKS, f"{HOOKS}/{{webhook_id}}"), (STREAMS, f"{STREAMS}/{{stream_id}}")):
            status, doc, _ = invoke(webhooks_api if base == HOOKS else streams_api, "GET", f"{base}/{text}", headers=headers, route=route)
            assert status in (400, 404), (text, status, doc)
    # And a URL with a header-injection attempt is refused
    status, doc, _ = invoke(webhooks_api, "POST", HOOKS, headers=headers, body={"url": "http://127.0.0.1:9/h\r\nX-Evil: 1"})
    assert status == 400, doc


def test_when_a_queue_fails_the_dispatcher_retries_from_the_first_record_it_could_not_queue(local):
    pipeline = Pipeline()
    with Receiver() as receiver:
        invoke(webhooks_api, "POST", HOOKS, headers=key_headers("t1", ["webhooks:write", "events:read"]), body={"url": receiver.url})
        create_stream(key_headers("t2", ["streams:write", "streams:read", "events:read"]), type="https", config={"url": receiver.url + "/s"})
        batch = stream_batch(events_of("t1", 2) + events_of("t2", 1) + events_of("t1", 1))
        # Given the log-stream queue is unreachable (deleted)
        sqs = boto3.client("sqs", region_name="us-east-1")
        sqs.delete_queue(QueueUrl=local["maip-stream-deliveries"])
        from maip_events.webhooks.queue import _resolve
        _resolve.cache_clear()
        # When the batch is dispatched
        response = dispatch(batch, Ctx())
        # Then Lambda is asked to retry from t2's record (the first with work that could not be queued), not earlier
        assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][2]["dynamodb"]["SequenceNumber"]}]}
        # And the webhook work of every record was queued (the records before it are done)
        assert len(pipeline.receive()) == 3
