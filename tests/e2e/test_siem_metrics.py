"""SIEM streams, export and metrics end to end through `maip-events serve`: a known mix of events emitted over
HTTP shows up exactly in the metrics endpoint, both export formats and every log-stream type (Splunk HEC,
Datadog, https on 127.0.0.1, S3 in the embedded moto); a receiver that fails then recovers gets each event
exactly once; replaying real stream records leaves the counters unchanged. Self-contained: this module
starts its own stack with a 1 s retry schedule."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
import requests
from ocsf.v1_7_0 import events as ocsf_events

from siem_receivers import Receiver, event_id_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MIX = [("agent.registered", "info", "a1"), ("guardrail.violation", "error", "a2"), ("session.created", "warn", None),
       ("anomaly.reported", "warn", "a1"), ("orchestration.failed", "error", "a3"), ("agent.registered", "info", "a2")] * 2
OCSF = {3001: ocsf_events.AccountChange, 3002: ocsf_events.Authentication, 3004: ocsf_events.EntityManagement,
        2004: ocsf_events.DetectionFinding, 6002: ocsf_events.ApplicationLifecycle}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")])
    return {**env, **extra}


@pytest.fixture(scope="module")
def stack():
    env = _env(MAIP_STREAM_RETRY_SCHEDULE="1,1,1,1", MAIP_STREAM_TIMEOUT="5", POWERTOOLS_METRICS_DISABLED="true")
    process = subprocess.Popen([sys.executable, "-m", "maip_events_local.cli", "serve", "--port", "0", "--dynamodb-port", "0", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    try:
        line = process.stdout.readline()
        assert line, "maip-events serve did not start"
        info = json.loads(line)
        info["headers"] = {"X-API-Key": info["api_key"], "X-Tenant-ID": info["tenant_id"]}
        yield info
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def test_a_known_mix_shows_up_exactly_in_metrics_export_and_every_stream(stack, monkeypatch):
    url, headers = stack["url"], stack["headers"]
    s3 = boto3.client("s3", endpoint_url=stack["dynamodb_endpoint"], region_name="us-east-1")
    s3.create_bucket(Bucket="maip-siem-e2e")
    with Receiver("splunk_hec", "hec-tok") as hec, Receiver("datadog", "dd-key") as dd, Receiver("https") as web:
        # Given one log stream of each type, the Splunk receiver failing its first two requests
        hec.fail_next = 2
        bodies = [{"type": "splunk_hec", "config": {"url": hec.url, "token": "hec-tok"}},
                  {"type": "datadog", "config": {"api_key": "dd-key", "url": dd.url}, "format": "jsonl"},
                  {"type": "https", "config": {"url": web.url + "/siem"}},
                  {"type": "s3", "config": {"bucket": "maip-siem-e2e", "prefix": "e2e/"}}]
        created = []
        for body in bodies:
            response = requests.post(f"{url}/v1/observability/streams", headers=headers, json=body, timeout=10)
            assert response.status_code == 201, response.text
            created.append(response.json())
        # When a known mix of 12 events is emitted over HTTP
        started = datetime.now(timezone.utc)
        ids = set()
        for event_type, severity, agent in MIX:
            body = {"event_type": event_type, "severity": severity, **({"agent_id": agent} if agent else {}), "metadata": {"k": "ü"}}
            response = requests.post(f"{url}/v1/observability/events", headers=headers, json=body, timeout=10)
            assert response.status_code == 201, response.text
            ids.add(response.json()["id"])
        # Then every stream type receives exactly those events, each exactly once (Splunk after recovering)
        for receiver in (hec, dd, web):
            _wait(lambda r=receiver: len(r.records()) >= len(ids), timeout=40)
        time.sleep(1.5)  # a duplicate, if any, would arrive within a retry interval (one wait covers all three)
        for receiver in (hec, dd, web):
            assert Counter(map(event_id_of, receiver.records())) == Counter(ids), receiver.kind
            assert receiver.rejected == [], receiver.rejected
        for record in hec.records():
            OCSF[record["class_uid"]].model_validate(record)

        def s3_ids():
            found = []
            for obj in s3.list_objects_v2(Bucket="maip-siem-e2e").get("Contents", []):
                assert obj["Key"].startswith(f"e2e/tenant={stack['tenant_id']}/dt=")
                body = gzip.decompress(s3.get_object(Bucket="maip-siem-e2e", Key=obj["Key"])["Body"].read())
                found += [json.loads(line)["metadata"]["uid"] for line in body.decode().splitlines()]
            return found
        assert Counter(_wait(lambda: len(s3_ids()) >= len(ids) and s3_ids())) == Counter(ids)
        # And the Splunk stream's status shows the failures and the recovery, nothing dead-lettered
        status = requests.get(f"{url}/v1/observability/streams/{created[0]['id']}/status", headers=headers, timeout=10).json()
        assert status["delivered_events"] == len(ids) and status["failed_attempts"] == 2 and status["dead_lettered_events"] == 0, status

    # And the metrics totals equal the list endpoint's counts for the (hour-aligned) window, by every grouping
    window = {"from": (started - timedelta(minutes=1)).isoformat(), "to": (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()}

    def metrics(group_by=None):
        query = {**window, **({"group_by": group_by} if group_by else {})}
        response = requests.get(f"{url}/v1/observability/metrics", headers=headers, params=query, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    assert _wait(lambda: metrics()["total"] == len(MIX))
    aligned = {"from": metrics()["from"], "to": metrics()["to"]}
    listed = requests.get(f"{url}/v1/observability/events", headers=headers, params={**aligned, "limit": 1}, timeout=10).json()
    assert listed["total"] == len(MIX)
    expected = {"event_type": Counter(t for t, _, _ in MIX), "severity": Counter(s for _, s, _ in MIX), "agent_id": Counter(a for _, _, a in MIX)}
    before = {}
    for group_by, counts in expected.items():
        before[group_by] = {s["key"]: s["total"] for s in metrics(group_by)["series"]}
        assert before[group_by] == dict(counts)

    # And both export formats hold exactly the mix
    for fmt in ("jsonl", "ocsf"):
        response = requests.get(f"{url}/v1/observability/events/export", headers=headers, params={"format": fmt, **aligned}, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        assert Counter(event_id_of(json.loads(line)) for line in response.text.splitlines()) == Counter(ids)

    # When the real stream records are replayed to the aggregation (as a retried batch would be)
    for name, value in {"MAIP_DYNAMODB_ENDPOINT": stack["dynamodb_endpoint"], "MAIP_LOCAL": "1", "POWERTOOLS_METRICS_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    from maip_events import settings
    from functions.aggregate.app import lambda_handler as aggregate
    from support import Ctx

    settings.reset()
    try:
        streams = boto3.client("dynamodbstreams", endpoint_url=stack["dynamodb_endpoint"], region_name="us-east-1")
        arn = boto3.client("dynamodb", endpoint_url=stack["dynamodb_endpoint"], region_name="us-east-1").describe_table(
            TableName="maip-events")["Table"]["LatestStreamArn"]
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        replayed = [r for r in records if r["eventName"] == "INSERT" and r["dynamodb"]["NewImage"]["event_id"]["S"] in ids]
        assert len(replayed) == len(ids)
        assert aggregate({"Records": replayed}, Ctx()) == {"batchItemFailures": []}
    finally:
        settings.reset()
    # Then the counts are unchanged, in the metrics and in the list total
    for group_by in expected:
        assert {s["key"]: s["total"] for s in metrics(group_by)["series"]} == before[group_by]
    assert requests.get(f"{url}/v1/observability/events", headers=headers, params={**aligned, "limit": 1}, timeout=10).json()["total"] == len(MIX)
