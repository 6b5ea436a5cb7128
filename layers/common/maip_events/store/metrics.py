"""MetricsTable: hourly counters per tenant and dimension, and the per-event "counted" markers.

Counters:  pk `<tenant>#<dimension>` (dimension = total | event_type | severity | agent_id),
           sk `<YYYY-MM-DDTHH>#<value>` (value empty for `total` and for events without an agent), attr `count`.
Markers:   pk `<tenant>#counted#<event id>`, sk `-`, with a TTL beyond the stream's 24 h retention. A marker is
           written in the same transaction as the counter increments, conditioned on not existing yet: an event
           that a retried or replayed batch brings again cancels that transaction instead of counting twice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from maip_events import aws
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store import query_items

DIMENSIONS = ("total", "event_type", "severity", "agent_id")
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit
MARKER_TTL_SECONDS = 3 * 86400


def hour_of(created_at: str) -> str:
    return created_at[:13]  # "2026-11-23T07" of "2026-11-23T07:36:56.123Z"


def counter_keys(event: StoredEvent) -> set[tuple[str, str, str]]:
    """(dimension, hour, value) of every counter the event increments."""
    hour = hour_of(event.created_at)
    return {("total", hour, ""), ("event_type", hour, event.event_type), ("severity", hour, event.severity),
            ("agent_id", hour, event.agent_id or "")}


@dataclass
class Counter:
    dimension: str
    hour: str
    value: str
    count: int


class MetricsStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().metrics_table

    # -- writes -----------------------------------------------------------------------------------
    def count_once(self, tenant_id: str, events: list[StoredEvent]) -> list[StoredEvent]:
        """Adds `events` (one tenant, at most one transaction's worth) to the counters, skipping any already
        counted. Returns the events counted now. One ADD per distinct counter, all in one transaction."""
        pending = list({e.event_id: e for e in events}.values())
        for attempt in range(6):
            if not pending:
                return []
            try:
                self.client.transact_write_items(TransactItems=self._transaction(tenant_id, pending))
                return pending
            except self.client.exceptions.TransactionCanceledException as err:
                reasons = err.response.get("CancellationReasons") or []
                seen = {pending[i].event_id for i, r in enumerate(reasons[: len(pending)]) if r.get("Code") == "ConditionalCheckFailed"}
                if seen:
                    pending = [e for e in pending if e.event_id not in seen]
                    continue
                # A conflict with a concurrent transaction on the same counter: back off and try again.
                time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RuntimeError("metrics transaction kept conflicting")

    def _transaction(self, tenant_id: str, events: list[StoredEvent]) -> list[dict[str, Any]]:
        expires = str(int(time.time()) + MARKER_TTL_SECONDS)
        items: list[dict[str, Any]] = [{
            "Put": {
                "TableName": self.table,
                "Item": {"pk": {"S": f"{tenant_id}#counted#{e.event_id}"}, "sk": {"S": "-"}, "expires_at": {"N": expires}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        } for e in events]  # markers first: cancellation reasons are indexed like the events
        totals: dict[tuple[str, str, str], int] = {}
        for event in events:
            for key in counter_keys(event):
                totals[key] = totals.get(key, 0) + 1
        for (dimension, hour, value), count in sorted(totals.items()):
            items.append({
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"{tenant_id}#{dimension}"}, "sk": {"S": f"{hour}#{value}"}},
                    "UpdateExpression": "ADD #count :n",
                    "ExpressionAttributeNames": {"#count": "count"},
                    "ExpressionAttributeValues": {":n": {"N": str(count)}},
                }
            })
        return items

    # -- reads ------------------------------------------------------------------------------------
    def counters(self, tenant_id: str, dimension: str, first_hour: str, last_hour: str) -> Iterator[Counter]:
        """Every counter of the dimension for hours in [first_hour, last_hour] (keyed query, paginated)."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": f"{tenant_id}#{dimension}"}, ":low": {"S": f"{first_hour}#"},
                                          ":high": {"S": f"{last_hour}#\U0010ffff"}},
        }
        for item in query_items(self.client, **args):
            hour, value = item["sk"]["S"].split("#", 1)
            yield Counter(dimension, hour, value, int(item["count"]["N"]))


def chunks(events: Iterable[StoredEvent]) -> Iterator[list[StoredEvent]]:
    """Consecutive runs of one tenant's events whose markers and distinct counters fit one transaction
    (stream order is kept, so a failed chunk can be reported as the point to retry from)."""
    chunk: list[StoredEvent] = []
    keys: set[tuple[str, str, str]] = set()
    for event in events:
        mine = counter_keys(event)
        if chunk and (event.tenant_id != chunk[0].tenant_id or len(chunk) + 1 + len(keys | mine) > MAX_TRANSACTION_ITEMS):
            yield chunk
            chunk, keys = [], set()
        chunk.append(event)
        keys |= mine
    if chunk:
        yield chunk
