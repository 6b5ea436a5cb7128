"""Issue 11, read/count half: figures of the one stream-fed counting system and of list reads.

`measure() -> list[(figure, value, note)]` (bench/ingest.py prints these rows beside its own); run alone:
    .venv/bin/python bench/ingest_read.py

Everything runs in-process against moto (tables from template.yaml). DynamoDB calls are counted at the client
boundary with botocore event hooks (items written per TransactWriteItems, ScannedCount per Query), never inside
our code.

1. count lag: median ms from a 201 to the event being in the list `total` and in the metrics `total` (the
   aggregation itself), with the local stack's stream poller running AggregateFunction under the template's
   event source settings (MaximumBatchingWindowInSeconds = 1);
2. items written by the aggregation: the most-written item per 1,000 events and amortised items per event, at
   ~100 events/s (1 s windows: batches of 100), ~1,000 events/s (batches of 1,000) and 1 event per batch;
3. deep offsets at a dense minute (2,000 events in one minute): items read (events + counters) at offset 0 vs deep;
4. warm GET page (limit 50) vs a raw stubbed `query` of 51 items (same client-side cost, canned answers), caches
   as deployed, calls interleaved.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tests"), str(ROOT / "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")

Row = tuple[str, str, str]


class Calls:
    """Counts DynamoDB work at the client boundary: items written per item key, items read per table."""

    def __init__(self, client):
        self.client, self.writes, self.read = client, Counter(), Counter()
        client.meta.events.register("before-call.dynamodb.TransactWriteItems", self._transaction, unique_id="ingest-read-tx")
        client.meta.events.register("before-call.dynamodb.Query", self._query_table, unique_id="ingest-read-qt")
        client.meta.events.register("after-call.dynamodb.Query", self._query, unique_id="ingest-read-q")

    def _transaction(self, params, **_):
        for entry in json.loads(params["body"])["TransactItems"]:
            op = next(iter(entry.values()))
            key = op.get("Key") or {k: op["Item"][k] for k in ("pk", "sk") if k in op["Item"]}
            self.writes[(op["TableName"], json.dumps(key, sort_keys=True))] += 1

    def _query_table(self, params, context, **_):
        context["ingest_read_table"] = json.loads(params["body"]).get("TableName")

    def _query(self, parsed, context, **_):
        self.read[context.get("ingest_read_table")] += parsed.get("ScannedCount", 0)

    def reset(self):
        self.writes.clear()
        self.read.clear()


def _tables():
    import boto3

    from maip_events import settings
    from maip_events_local.template import table_definitions

    settings.reset()
    client = boto3.client("dynamodb", region_name="us-east-1")
    for definition in table_definitions():
        client.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})


def _records(events, first):
    from maip_events.store.events import to_item

    return [{"eventName": "INSERT", "dynamodb": {"NewImage": to_item(e), "SequenceNumber": str(first + i)}} for i, e in enumerate(events)]


def _total(handler, path: str, headers, query: dict[str, str]) -> int:
    from support import invoke

    status, body, _ = invoke(handler, "GET", path, headers=headers, query=query)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {body}")
    return body["total"]


def count_lag(samples: int = 12) -> tuple[float, float]:
    """Median ms from 201 to the event being in the list `total` (limit 1, so never from the page alone), and to
    it being in the metrics `total` (the aggregation's own lag), poller running as in `maip-events serve`."""
    from functions.emit.app import lambda_handler as emit
    from functions.list.app import lambda_handler as list_events
    from functions.metrics.app import lambda_handler as metrics
    from maip_events_local.streams import StreamPoller
    from maip_events_local.template import stream_consumers
    from support import invoke, key_headers

    headers = key_headers("lag", ["*"])
    consumers = [c for c in stream_consumers() if c.function.logical_id == "AggregateFunction"]
    poller = StreamPoller(consumers=consumers)
    poller.start()
    lags: dict[str, list[float]] = {"list": [], "metrics": []}
    reads = {"list": (list_events, "/v1/observability/events", {"limit": "1"}),
             "metrics": (metrics, "/v1/observability/metrics", {})}
    try:
        for n in range(1, samples + 1):
            status, _, _ = invoke(emit, "POST", "/v1/observability/events", headers=headers, body={"event_type": "agent.updated"})
            assert status == 201
            t0 = time.perf_counter()
            for name, (handler, path, query) in reads.items():
                while _total(handler, path, headers, query) < n:
                    time.sleep(0.02)
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError("aggregation did not catch up in 30 s")
                lags[name].append((time.perf_counter() - t0) * 1000)
            time.sleep(0.3)
    finally:
        poller.stop()
    return statistics.median(lags["list"]), statistics.median(lags["metrics"])


def aggregation_writes(calls: Calls) -> list[Row]:
    from functions.aggregate.app import lambda_handler as aggregate
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest
    from maip_events.store.events import EventStore
    from support import Ctx

    rows: list[Row] = []
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    types = ["agent.registered", "agent.updated", "session.created"]
    for label, rate, batch in (("100 events/s, batches of 100", 100, 100), ("1,000 events/s, batches of 1,000", 1000, 1000),
                               ("1 event per batch (low rate)", 1, 1)):
        n = 1000 if batch > 1 else 50
        events = EventStore().prepare([build_event(f"w{rate}-{batch}", EmitEventRequest(
            event_type=types[i % 3], agent_id=f"agent-{i % 10}"), start + timedelta(seconds=i / rate)) for i in range(n)])
        records = _records(events, 10**6)
        calls.reset()
        for first in range(0, n, batch):
            assert aggregate({"Records": records[first:first + batch]}, Ctx()) == {"batchItemFailures": []}
        written = sum(calls.writes.values())
        hottest = max(calls.writes.values())
        rows.append((f"aggregation: items written per event ({label})", f"{written / n:.2f}",
                     f"{written} item writes in TransactWriteItems for {n} events (3 types, 10 agents), checkpoints included"))
        if batch > 1:
            rows.append((f"aggregation: most-written item per 1,000 events ({label})", f"{hottest * 1000 // n}",
                         "target <= 100 (N/10); one ADD per distinct bucket per transaction chunk"))
    return rows


def deep_offsets(calls: Calls) -> list[Row]:
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest
    from maip_events.store.events import EventFilter, EventStore
    from aggregation import aggregate

    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=1)
    store = EventStore()
    events = store.prepare([build_event("dense", EmitEventRequest(event_type="agent.updated", agent_id=f"a{i % 2}"),
                                        start + timedelta(milliseconds=30 * i)) for i in range(2000)])
    store.put_many(events, prepared=True)
    aggregate(events)
    found = {}
    for offset in (0, 1000, 1940):
        calls.reset()
        page = store.page(EventFilter("dense"), limit=50, offset=offset)
        assert len(page.events) == 50 and page.total == 2000
        found[offset] = (calls.read[store.table], sum(calls.read.values()) - calls.read[store.table])
    base = sum(found[0])
    return [(f"deep offset in a dense minute: items read at offset {o} (events + counters)", f"{e + c}",
             f"{e} events + {c} counter items; {(e + c) / base:.2f}x offset 0 (target <= 2x); main read 508 at offset 4,950")
            for o, (e, c) in found.items()]


def warm_get_ratio(rounds: int = 300) -> list[Row]:
    """A warm Lambda's GET: API key, tenant settings and a first page's count buckets cached as deployed
    (MAIP_API_KEY_CACHE_TTL 5 s, MAIP_TENANT_SETTINGS_TTL 30 s, MAIP_COUNTS_CACHE_TTL 10 s), so a repeated first
    page costs its events query; and the same page when its count buckets must be read (cache off)."""
    from maip_events import settings as settings_module

    deployed = {"MAIP_API_KEY_CACHE_TTL": "5", "MAIP_TENANT_SETTINGS_TTL": "30", "MAIP_COUNTS_CACHE_TTL": "10"}
    saved = {name: os.environ.get(name) for name in deployed}
    rows = []
    try:
        for counts_ttl, label in (("10", "count buckets cached"), ("0", "count buckets read")):
            os.environ.update(deployed, MAIP_COUNTS_CACHE_TTL=counts_ttl)
            settings_module.reset()
            rows.append(_warm_get_ratio(rounds, label))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        settings_module.reset()
    return rows


def _warm_get_ratio(rounds: int, label: str) -> Row:
    from functions.list.app import lambda_handler as list_events
    from support import Ctx, http_event, key_headers
    from warm_stub import WarmStub

    headers = key_headers("warm", ["*"])
    stub = WarmStub(headers, page_size=51, unique_id="ingest-read-stub")
    get = http_event("GET", "/v1/observability/events", headers=headers, query={"limit": "50"})
    with stub.installed():
        assert list_events(dict(get), Ctx())["statusCode"] == 200  # warm: API key and tenant settings now cached
    handler, raw = stub.timed(rounds, lambda: list_events(dict(get), Ctx()),
                              lambda: stub.client.query(TableName=stub.settings.events_table, KeyConditionExpression="pk = :p",
                                                        ExpressionAttributeValues={":p": {"S": "warm#0"}}, Limit=51))
    return (f"warm GET page (limit 50) vs raw stubbed query, {label}", f"{handler / raw:.2f}x",
            f"handler {handler * 1e6:.0f} us vs query {raw * 1e6:.0f} us (target <= 3x)")


def measure() -> list[Row]:
    from moto import mock_aws

    from maip_events import aws
    from maip_events_local import moto_patches

    moto_patches.install()
    rows: list[Row] = []
    with mock_aws():
        _tables()
        calls = Calls(aws.dynamodb())
        list_lag, metrics_lag = count_lag()
        rows.append(("count lag: median ms from 201 to the list `total` (limit 1; in-process poller, 1 s batching window)",
                     f"{list_lag:.0f}", "target <= 2,000 ms median; uncounted events are counted from the events"))
        rows.append(("aggregation lag: median ms from 201 to the metrics `total` (the buckets themselves)",
                     f"{metrics_lag:.0f}", "the 1 s batching window + one poll"))
        rows += aggregation_writes(calls)
        rows += deep_offsets(calls)
    with mock_aws():
        _tables()
        rows += warm_get_ratio()
    return rows


if __name__ == "__main__":
    for figure, value, note in measure():
        print(f"{figure}: {value}  ({note})")
