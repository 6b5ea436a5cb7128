"""The one stream aggregation (AggregateFunction): EventsTable INSERT records -> CountsTable buckets (list
totals, deep offsets, metrics; see store/counts.py) and CloudWatch EMF metrics.

Per batch, records are grouped by events partition (`<tenant>#<shard>`) in stream order and counted in as few
transactions as fit (one ADD per distinct bucket per chunk, plus the partition's checkpoint), so a batch
that Lambda retries, or that is replayed, adds nothing it already added. When a chunk fails, the consumer
reports the oldest record not yet counted as the batch item failure: Lambda retries from there on, and the
checkpoints skip what was counted meanwhile."""
from __future__ import annotations

import os
from collections import Counter as Tally
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store.counts import CountStore, groups_of
from maip_events.store.events import from_item

logger = Logger(service="maip-events")

METRICS_NAMESPACE = "MAIP/Events"


def partition_of(event: StoredEvent) -> str:
    """The events-table partition key of an event: its stream records keep their order within it."""
    return f"{event.tenant_id}#{getattr(event, 'shard', 0)}"


def _inserted(records: list[dict[str, Any]]) -> list[tuple[str, StoredEvent]]:
    """(sequence number, event) of the INSERT records (the template's filter already drops the others; TTL
    deletions are REMOVE records: expiry never changes a count, buckets expire on their own)."""
    return [(r["dynamodb"]["SequenceNumber"], from_item(r["dynamodb"]["NewImage"]))
            for r in records if r.get("eventName") == "INSERT"]


def handle_batch(event: dict[str, Any], context: Any = None, store: CountStore | None = None) -> dict[str, Any]:
    inserted = _inserted(event.get("Records") or [])
    if not inserted:
        return {"batchItemFailures": []}
    store = store or CountStore()
    by_partition: dict[str, list[tuple[str, StoredEvent]]] = {}
    for record in inserted:
        by_partition.setdefault(partition_of(record[1]), []).append(record)
    counted: list[StoredEvent] = []
    pending = {seq for seq, _ in inserted}
    try:  # every group's mark of the batch in as few reads as fit (100 a request), not one read per partition
        marks = store.marks({(partition, group) for partition, records in by_partition.items() for _, e in records
                             for group in groups_of(e)})
    except Exception:
        logger.exception("aggregate: reading the marks failed; the batch is retried", extra={"records": len(inserted)})
        return {"batchItemFailures": [{"itemIdentifier": inserted[0][0]}]}
    for partition, records in by_partition.items():
        try:
            store.apply(partition, records, marks)
        except Exception:
            logger.exception("aggregate: counting failed; the batch is retried from its oldest uncounted record",
                             extra={"records": len(records)})
            order = [seq for seq, _ in inserted]
            return {"batchItemFailures": [{"itemIdentifier": min(pending, key=order.index)}]}
        pending -= {seq for seq, _ in records}
        counted += [e for _, e in records]
    publish(counted)
    return {"batchItemFailures": []}


def publish(events: list[StoredEvent]) -> None:
    """EMF metric `EventsCounted` by event namespace and severity: both bounded (10 x 3 values); tenant and agent
    ids are never dimensions. Skipped in the local stack unless POWERTOOLS_METRICS_DISABLED is set explicitly,
    so EMF lines do not flood its console."""
    if not events or (get_settings().local and "POWERTOOLS_METRICS_DISABLED" not in os.environ):
        return
    tally = Tally((e.event_type.split(".", 1)[0], e.severity) for e in events)
    for (namespace, severity), count in sorted(tally.items()):
        with single_metric(name="EventsCounted", unit=MetricUnit.Count, value=count, namespace=METRICS_NAMESPACE,
                           default_dimensions={"event_namespace": namespace, "severity": severity}):
            pass
