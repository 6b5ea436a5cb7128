"""Log streams against moto and receivers on 127.0.0.1: the /v1/observability/streams API, the wire format
of each destination, the dispatcher and the delivery queue with retries, dead-lettering and the delivery status."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from functions.siem_stream.app import lambda_handler as siem
from functions.streams.app import lambda_handler as streams_handler
from maip_events import settings
from siem_harness import create_queues, dispatch_and_deliver, drain, make_events, messages, stream_batch
from siem_receivers import Receiver, event_id_of
from support import Ctx, invoke, key_headers

BASE = "/v1/observability/streams"
# Managing streams: write and read them, and point events at destinations (events:read).
STREAM_SCOPES = ["streams:write", "streams:read", "events:read"]
MIX = [("agent.registered", "info", "a1"), ("guardrail.violation", "error", "a2"), ("session.created", "warn", None)]


@pytest.fixture
def local(aws, monkeypatch):
    """The local-stack rules (http and loopback receivers allowed), immediate retries, queues and a bucket."""
    monkeypatch.setenv("MAIP_LOCAL", "1")
    monkeypatch.setenv("MAIP_STREAM_RETRY_SCHEDULE", "0,0")
    monkeypatch.setenv("MAIP_STREAM_TIMEOUT", "2")
    settings.reset()
    queues = create_queues()
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="maip-siem-audit")
    return queues


def create(headers, **body):
    status, doc, _ = invoke(streams_handler, "POST", BASE, headers=headers, body=body)
    assert status == 201, doc
    return doc


def status_of(headers, stream_id):
    status, doc, _ = invoke(streams_handler, "GET", f"{BASE}/{stream_id}/status", headers=headers, route=f"{BASE}/{{stream_id}}/status")
    assert status == 200, doc
    return doc


def test_streams_crud_masks_credentials_and_is_tenant_scoped(local):
    headers, other = key_headers("t1", STREAM_SCOPES), key_headers("t2", STREAM_SCOPES)
    # Given a Splunk stream and an https stream
    splunk = create(headers, type="splunk_hec", config={"url": "http://127.0.0.1:9/", "token": "abcd-efgh-1234-5678"}, event_types=["agent.*"])
    hook = create(headers, type="https", config={"url": "http://127.0.0.1:9/in"}, format="jsonl")
    # Then ids are maip-str:, the token is masked, the https secret is shown on creation only
    assert splunk["id"].startswith("maip-str:") and splunk["config"]["token"] == "****5678" and "secret" not in splunk
    assert hook["secret"].startswith("whsec_") and "secret" not in hook["config"]
    status, listed, _ = invoke(streams_handler, "GET", BASE, headers=headers)
    assert status == 200 and {s["id"] for s in listed["items"]} == {splunk["id"], hook["id"]}
    assert all("whsec_" not in json.dumps(s) and "abcd-efgh" not in json.dumps(s) for s in listed["items"])
    # When the token is rotated by PATCH (other settings kept) and the stream disabled
    status, patched, _ = invoke(streams_handler, "PATCH", f"{BASE}/{splunk['id']}", headers=headers, route=f"{BASE}/{{stream_id}}",
                                body={"config": {"token": "new-token-9999"}, "status": "disabled"})
    assert status == 200 and patched["config"] == {**splunk["config"], "token": "****9999"} and patched["status"] == "disabled"
    # Then another tenant cannot see, change or delete it
    for method in ("GET", "DELETE"):
        assert invoke(streams_handler, method, f"{BASE}/{splunk['id']}", headers=other, route=f"{BASE}/{{stream_id}}")[0] == 404
    # And DELETE removes it
    assert invoke(streams_handler, "DELETE", f"{BASE}/{splunk['id']}", headers=headers, route=f"{BASE}/{{stream_id}}")[0] == 204
    assert invoke(streams_handler, "GET", f"{BASE}/{splunk['id']}", headers=headers, route=f"{BASE}/{{stream_id}}")[0] == 404


@pytest.mark.parametrize("body", [
    {"type": "kafka", "config": {}},
    {"type": "splunk_hec", "config": {"url": "http://127.0.0.1:9"}},  # token missing
    {"type": "datadog", "config": {"api_key": "k", "site": "evil.example"}},
    {"type": "s3", "config": {"bucket": "Not_A_Bucket"}},
    {"type": "https", "config": {"url": "http://127.0.0.1:9", "extra": 1}},
    {"type": "https", "config": {"url": "http://127.0.0.1:9"}, "event_types": ["nope.*"]},
])
def test_invalid_streams_are_rejected(local, body):
    status, doc, _ = invoke(streams_handler, "POST", BASE, headers=key_headers("t1", STREAM_SCOPES), body=body)
    assert status == 400 and doc["error"]["code"] == "invalid_request"


def test_deployed_rules_refuse_loopback_and_plain_http_and_foreign_buckets(aws, monkeypatch):
    monkeypatch.setenv("MAIP_STREAM_BUCKET_PREFIX", "maip-siem-")
    settings.reset()
    headers = key_headers("t1", STREAM_SCOPES)
    for body in ({"type": "https", "config": {"url": "https://127.0.0.1/in"}}, {"type": "https", "config": {"url": "http://example.com/in"}},
                 {"type": "splunk_hec", "config": {"url": "https://169.254.169.254", "token": "t"}},
                 {"type": "s3", "config": {"bucket": "someone-elses-bucket"}}):
        status, doc, _ = invoke(streams_handler, "POST", BASE, headers=headers, body=body)
        assert status == 400, (body, doc)
    assert invoke(streams_handler, "GET", BASE, headers=key_headers("t1", ["events:read"]))[0] == 403


def test_each_destination_gets_one_request_per_batch_in_its_wire_format(local):
    headers = key_headers("t1", STREAM_SCOPES)
    with Receiver("splunk_hec", "hec-token") as hec, Receiver("datadog", "dd-key") as dd, Receiver("https") as web:
        # Given one stream of each type for t1 (Splunk only for agent.*) and events of t1 and t2 in one stream batch
        create(headers, type="splunk_hec", config={"url": hec.url, "token": "hec-token", "index": "maip"}, event_types=["agent.*"])
        create(headers, type="datadog", config={"api_key": "dd-key", "url": dd.url, "tags": ["env:test"]})
        hook = create(headers, type="https", config={"url": web.url + "/ingest"}, format="jsonl")
        bucket = create(headers, type="s3", config={"bucket": "maip-siem-audit", "prefix": "maip/"})
        mine = make_events("t1", MIX * 3)
        theirs = make_events("t2", MIX)
        # When the SIEM consumer gets the batch
        assert dispatch_and_deliver(stream_batch(mine + theirs), local) == {"batchItemFailures": []}
        ids = sorted(e.event_id for e in mine)
        # Then Splunk got one HEC request with the agent events only, OCSF inside
        assert len(hec.received) == 1 and sorted(map(event_id_of, hec.records())) == sorted(e.event_id for e in mine if e.event_type == "agent.registered")
        assert hec.records()[0]["class_uid"] == 3001 and hec.rejected == []
        # And Datadog one gzip request with all 9 events, tagged, never t2's
        assert len(dd.received) == 1 and sorted(map(event_id_of, dd.records())) == ids
        assert dd.received[0].headers["content-encoding"] == "gzip"
        # And the https receiver one NDJSON batch whose signature verifies with the stream secret
        (got,) = web.received
        assert sorted(map(event_id_of, got.records)) == ids and got.path == "/ingest"
        expected = Webhook(hook["secret"]).sign(got.headers["webhook-id"], datetime.fromtimestamp(
            int(got.headers["webhook-timestamp"]), timezone.utc), got.body.decode())
        assert got.headers["webhook-signature"] == expected
    # And S3 holds one gzip NDJSON object under tenant/date/hour
    s3 = boto3.client("s3", region_name="us-east-1")
    (obj,) = s3.list_objects_v2(Bucket="maip-siem-audit")["Contents"]
    assert obj["Key"].startswith("maip/tenant=t1/dt=2026-11-23/hour=07/") and obj["Key"].endswith(".ndjson.gz")
    lines = gzip.decompress(s3.get_object(Bucket="maip-siem-audit", Key=obj["Key"])["Body"].read()).decode().splitlines()
    assert sorted(json.loads(line)["metadata"]["uid"] for line in lines) == ids
    # And each stream's delivery status counts the batch
    assert status_of(headers, bucket["id"])["delivered_events"] == 9


def test_a_failing_receiver_gets_everything_exactly_once_after_recovering(local):
    headers = key_headers("t1", STREAM_SCOPES)
    with Receiver("splunk_hec", "tok") as hec:
        stream = create(headers, type="splunk_hec", config={"url": hec.url, "token": "tok"})
        # Given a receiver that fails the next request, and two stream batches
        hec.fail_next = 1
        first, second = make_events("t1", MIX * 2), make_events("t1", MIX)
        # When both go through the dispatcher and the delivery queue (retries included)
        dispatch_and_deliver(stream_batch(first), local)
        dispatch_and_deliver(stream_batch(second, 2000), local)
        # Then every event arrived exactly once, and the status shows the failure and the recovery
        assert sorted(map(event_id_of, hec.records())) == sorted(e.event_id for e in first + second)
        status = status_of(headers, stream["id"])
        assert (status["delivered_events"], status["failed_attempts"], status["retried_batches"], status["dead_lettered_events"]) == (9, 1, 1, 0)
        assert status["last_error"] == "HTTP 503" and status["last_success_at"] >= status["last_error_at"]


def test_a_receiver_that_never_recovers_ends_in_the_dead_letter_queue(local):
    headers = key_headers("t1", STREAM_SCOPES)
    with Receiver("datadog", "k") as dd:
        stream = create(headers, type="datadog", config={"api_key": "k", "url": dd.url, "compress": False})
        dd.fail_next = 100
        events = make_events("t1", MIX)
        # When the batch and all its retries fail (schedule "0,0": two retries)
        dispatch_and_deliver(stream_batch(events), local)
        # Then the batch sits in the dead-letter queue with its event ids, and the status counts it
        (dead,) = messages(local["maip-stream-dead-letters"])
        assert dead["stream_id"] == stream["id"] and dead["event_ids"] == [e.event_id for e in events] and dead["attempt"] == 0
        status = status_of(headers, stream["id"])
        assert (status["failed_attempts"], status["dead_lettered_events"], status["delivered_events"]) == (3, 3, 0)
        assert status["last_error"].startswith("dead-lettered after 3 attempts")
