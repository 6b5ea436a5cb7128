"""Runs the events stream through AggregateFunction in-process (moto), as its event source mapping does.

Counts (list `total`, metrics) come from the stream, so a test that reads them after writing first lets the
aggregation catch up with `settle()`: the local stack's own poller, batching window closed."""
from __future__ import annotations

import dataclasses

from maip_events import aws

_pollers: dict[str, object] = {}


def settle(function: str = "AggregateFunction") -> None:
    from maip_events_local import moto_patches
    from maip_events_local.streams import StreamPoller

    moto_patches.install()  # moto's own TransactWriteItems copies the whole table per item
    from maip_events_local.template import stream_consumers

    consumer = next(c for c in stream_consumers() if c.function.logical_id == function and c.kind == "DynamoDB")
    consumer = dataclasses.replace(consumer, batching_window=0.0)
    # One poller per stream (each test's moto account has its own), so each record is delivered once.
    arn = aws.dynamodb().describe_table(TableName=_events_table())["Table"]["LatestStreamArn"]
    poller = _pollers.setdefault(arn, StreamPoller(consumers=[consumer]))
    while poller.poll(consumer):  # type: ignore[attr-defined]
        pass


def _events_table() -> str:
    from maip_events.settings import get_settings

    return get_settings().events_table


def aggregate(events: list, first_sequence: int = 10**6, batch: int = 1000) -> None:
    """Feeds already-stored events to AggregateFunction as stream batches of `batch` records (what a busy stream
    hands it), skipping the stream read: for tests about reads of many events (moto's GetRecords is slow)."""
    from functions.aggregate.app import lambda_handler
    from maip_events.store.events import to_item
    from maip_events_local import moto_patches
    from support import Ctx

    moto_patches.install()

    records = [{"eventName": "INSERT", "dynamodb": {"NewImage": to_item(e), "SequenceNumber": str(first_sequence + i)}}
               for i, e in enumerate(events)]
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        for _ in range(50):  # as Lambda does: a reported record and those after it come again
            failures = lambda_handler({"Records": chunk}, Ctx())["batchItemFailures"]
            if not failures:
                break
            first = [r["dynamodb"]["SequenceNumber"] for r in chunk].index(failures[0]["itemIdentifier"])
            chunk = chunk[first:]
        else:
            raise AssertionError("the aggregation did not catch up")
