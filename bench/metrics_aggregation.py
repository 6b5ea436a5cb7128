"""Metrics aggregation: the consumer's per-batch transactions (one ADD per distinct counter + one marker per
event) against the naive per-event approach (four UpdateItems per event, no replay protection), side by side
on in-process moto. Prints DynamoDB requests and wall time of each, and their ratios."""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_METRICS_DISABLED="true")
os.environ.pop("MAIP_DYNAMODB_ENDPOINT", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from maip_events import settings  # noqa: E402
from maip_events.events import build_event  # noqa: E402
from maip_events_local.template import table_definitions  # noqa: E402
from maip_events.models.events import EmitEventRequest  # noqa: E402
from maip_events.store.metrics import MetricsStore, chunks, counter_keys  # noqa: E402

BATCHES, BATCH_SIZE = 10, 100


def main() -> None:
    with mock_aws():
        settings.reset()
        client = boto3.client("dynamodb", region_name="us-east-1")
        for definition in table_definitions():
            client.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})
        start = datetime(2026, 11, 23, 7, tzinfo=timezone.utc)
        types = ["agent.registered", "session.created", "guardrail.violation", "trust.computed"]
        batches = [[build_event("t1", EmitEventRequest(event_type=types[i % 4], agent_id=f"a{i % 20}", severity="info"),
                                now=start + timedelta(seconds=b * BATCH_SIZE + i)) for i in range(BATCH_SIZE)] for b in range(BATCHES)]
        store, calls = MetricsStore(client=client), {"n": 0}
        client.meta.events.register("before-call.dynamodb.*", lambda **_: calls.__setitem__("n", calls["n"] + 1))

        calls["n"], t = 0, time.perf_counter()
        for batch in batches:
            for chunk in chunks(batch):
                store.count_once("t1", chunk)
        ours_calls, ours_time = calls["n"], time.perf_counter() - t

        calls["n"], t = 0, time.perf_counter()
        for batch in batches:
            for event in batch:
                for dimension, hour, value in counter_keys(event):
                    client.update_item(TableName=store.table, Key={"pk": {"S": f"naive#{dimension}"}, "sk": {"S": f"{hour}#{value}"}},
                                       UpdateExpression="ADD #c :n", ExpressionAttributeNames={"#c": "count"},
                                       ExpressionAttributeValues={":n": {"N": "1"}})
        naive_calls, naive_time = calls["n"], time.perf_counter() - t

    events = BATCHES * BATCH_SIZE
    print(f"{events} events in {BATCHES} batches of {BATCH_SIZE} (20 agents, 4 types)")
    print(f"batched transactions : {ours_calls:5d} DynamoDB requests, {ours_time:6.2f} s (idempotent on replay)")
    print(f"per-event updates    : {naive_calls:5d} DynamoDB requests, {naive_time:6.2f} s (double counts on replay)")
    print(f"ratio requests naive/batched = {naive_calls / ours_calls:.1f}x, time = {naive_time / ours_time:.2f}x")


if __name__ == "__main__":
    main()
