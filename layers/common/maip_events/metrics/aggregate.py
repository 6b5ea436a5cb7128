"""EventsTable stream consumer: hourly per-tenant counters (DynamoDB) and CloudWatch metrics (EMF).

Per batch, the events of each tenant are grouped into as few transactions as fit DynamoDB's 100-item limit;
each transaction holds one ADD per distinct counter plus one "counted" marker per event, so a batch that
Lambda retries (or that is replayed) adds nothing for events it already counted. When a transaction fails,
the consumer reports its first record as the batch item failure: Lambda retries from there on."""
from __future__ import annotations

import os
from collections import Counter as Tally
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store.events import from_item
from maip_events.store.metrics import MetricsStore, chunks

logger = Logger(service="maip-events")

METRICS_NAMESPACE = "MAIP/Events"


def _inserted(records: list[dict[str, Any]]) -> list[tuple[str, StoredEvent]]:
    """(sequence number, event) of the INSERT records (the template's filter already drops the others)."""
    return [(r["dynamodb"]["SequenceNumber"], from_item(r["dynamodb"]["NewImage"]))
            for r in records if r.get("eventName") == "INSERT"]


def handle_batch(event: dict[str, Any], context: Any = None, store: MetricsStore | None = None) -> dict[str, Any]:
    inserted = _inserted(event.get("Records") or [])
    if not inserted:
        return {"batchItemFailures": []}
    store = store or MetricsStore()
    sequence_of = {e.event_id: seq for seq, e in inserted}
    counted: list[StoredEvent] = []
    failure = None
    for chunk in chunks(e for _, e in inserted):
        try:
            counted += store.count_once(chunk[0].tenant_id, chunk)
        except Exception:
            logger.exception("metrics: counting failed; the batch is retried from this record", extra={"records": len(chunk)})
            failure = sequence_of[chunk[0].event_id]
            break
    publish(counted)
    return {"batchItemFailures": [{"itemIdentifier": failure}] if failure else []}


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
