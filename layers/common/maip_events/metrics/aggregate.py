"""The counting reader of the events stream (AggregateFunction): closes each tenant's minutes into counts, and
publishes CloudWatch EMF metrics.

A batch only says which tenants have new events. For each, the closer counts every minute that has closed since
its last one (ended more than MAIP_COUNT_GRACE_SECONDS ago: an emit stamps its id before it writes) from the
events table itself, and writes the minute's maps; a closed hour gets its buckets (store/counts.py). Items are
functions of immutable events, so a retried batch, a replayed stream or two concurrent invocations only write
the same items again: no transactions, no checkpoints, no counter per event. An event written later than the
grace into an already closed minute (its stream record shows it) makes that minute and hour counted again.

Cost: one or two small items a minute and tenant, a handful more for dense minutes, and one bucket per
dimension and hour, whatever the rate; the events are read once (consistent Query, ~0.25 read units each).
"""
from __future__ import annotations

import heapq
import os
import time
from collections import Counter as Tally
from typing import Any, Iterator, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from maip_events import aws
from maip_events.ids import highest_event_id_ms, lowest_event_id_ms
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store import counts
from maip_events.store.events import from_item, partition_key
from maip_events.store.tenants import TenantSettingsStore

logger = Logger(service="maip-events")

METRICS_NAMESPACE = "MAIP/Events"


class ClosedEvent(NamedTuple):  # what the closer reads of an event
    event_id: str
    event_type: str
    agent_id: str | None
    severity: str


def _inserted(records: list[dict[str, Any]]) -> list[tuple[str, StoredEvent]]:
    """(sequence number, event) of the INSERT records (the template's filter already drops the others; TTL
    deletions are REMOVE records: expiry never changes a count, buckets expire on their own)."""
    return [(r["dynamodb"]["SequenceNumber"], from_item(r["dynamodb"]["NewImage"]))
            for r in records if r.get("eventName") == "INSERT"]


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    inserted = _inserted(event.get("Records") or [])
    order = {seq: i for i, (seq, _) in enumerate(inserted)}
    by_tenant: dict[str, list[tuple[str, StoredEvent]]] = {}
    for record in inserted:
        by_tenant.setdefault(record[1].tenant_id, []).append(record)
    remaining = context.get_remaining_time_in_millis() / 1000 if hasattr(context, "get_remaining_time_in_millis") else 60.0
    deadline = time.monotonic() + remaining * 0.75  # leaves time to answer before the function's Timeout
    retry_from: list[str] = []  # the records Lambda must deliver again (it retries from the oldest one)
    for tenant_id, records in by_tenant.items():
        if time.monotonic() > deadline:
            retry_from.append(records[0][0])
            continue
        try:
            done = Closer(tenant_id).run([e for _, e in records], deadline)
        except Exception:
            logger.exception("aggregate: counting failed; the batch is retried from this tenant's first record",
                             extra={"tenant_id": tenant_id, "records": len(records)})
            retry_from.append(records[0][0])
            continue
        if not done:  # a backlog longer than one invocation: this tenant's newest record brings it back
            logger.info("aggregate: backlog left for the retry", extra={"tenant_id": tenant_id})
            retry_from.append(records[-1][0])
    publish([e for _, e in inserted])
    if retry_from:
        return {"batchItemFailures": [{"itemIdentifier": min(retry_from, key=order.__getitem__)}]}
    return {"batchItemFailures": []}


class Closer:
    """Counts one tenant's closed minutes (see the module docstring)."""

    def __init__(self, tenant_id: str, client: Any = None, now_ms: int | None = None):
        settings = get_settings()
        self.tenant_id = tenant_id
        self.client = client or aws.dynamodb()
        self.events_table, self.table = settings.events_table, settings.counters_table
        self.tenants = TenantSettingsStore(self.client)
        self.now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        self.writer = counts.CountWriter(self.client, self.table, tenant_id)

    def run(self, arrived: list[Any] = (), deadline: float | None = None) -> bool:
        """Closes every minute that ended more than the grace ago; recounts the closed minutes that `arrived`
        events were written into late. False when `deadline` (time.monotonic()) came first: the rest is left."""
        grace = int(float(os.environ.get("MAIP_COUNT_GRACE_SECONDS", "5")) * 1000)
        closable = counts.floor(self.now_ms - grace, counts.MINUTE)
        cursor = counts.cursor_of(self.client, self.table, self.tenant_id)
        if cursor is None:  # never counted: start with the oldest day the table holds
            cursor = self.tenants.tiers(self.tenant_id).hot_from(self.now_ms)
        self._recount({counts.floor(counts.event_ms(e.event_id), counts.MINUTE) for e in arrived
                       if counts.event_ms(e.event_id) < cursor}, cursor)
        return cursor >= closable or self._close(cursor, closable, deadline)

    def _close(self, start: int, end: int, deadline: float | None) -> bool:
        """Writes the minutes of [start, end) in time order, an hour's buckets once its end is passed; False when
        the deadline stopped it (after a whole minute: what is written stays a prefix)."""
        minute: int | None = None
        members: list[ClosedEvent] = []
        open_hour = counts.floor(start, counts.HOUR)  # may hold minutes written by an earlier run
        for event in self._events(start, end):
            at = counts.floor(counts.event_ms(event.event_id), counts.MINUTE)
            if at != minute:
                if minute is not None:
                    self._minute(minute, members)
                    if deadline is not None and time.monotonic() > deadline:
                        return False
                open_hour = self._pass_hours(open_hour, at)
                minute, members = at, []
            members.append(event)
        if minute is not None:
            self._minute(minute, members)
        self._pass_hours(open_hour, end)
        return True

    def _pass_hours(self, open_hour: int, now: int) -> int:
        """Closes the hour `open_hour` if `now` is past it; returns the hour `now` is in."""
        if open_hour + counts.UNIT_MS[counts.HOUR] <= now:
            self.writer.hour(open_hour, self._archive_expiry(open_hour))
            return counts.floor(now, counts.HOUR)
        return open_hour

    def _minute(self, start: int, members: list[ClosedEvent]) -> None:
        self.writer.minute(start, members, self.tenants.retention(self.tenant_id).expires_at(start))

    def _archive_expiry(self, ms: int) -> int:
        return self.tenants.tiers(self.tenant_id).archive_expires_at(ms)

    def _recount(self, minutes: set[int], cursor: int) -> None:
        """Counts again closed minutes that an event was written into after they were counted (and their hours)."""
        hours = set()
        for minute in sorted(minutes):
            logger.info("aggregate: an event arrived after its minute was counted; counting it again",
                        extra={"tenant_id": self.tenant_id, "minute": counts.prefix(minute, counts.MINUTE)})
            self._minute(minute, list(self._events(minute, minute + counts.UNIT_MS[counts.MINUTE])))
            hour = counts.floor(minute, counts.HOUR)
            if hour + counts.UNIT_MS[counts.HOUR] <= cursor:
                hours.add(hour)
        for hour in sorted(hours):
            self.writer.hour(hour, self._archive_expiry(hour))

    def _events(self, start: int, end: int) -> Iterator[ClosedEvent]:
        """The tenant's events of [start, end) from every read shard, oldest first (consistent reads)."""
        shards = self.tenants.shards(self.tenant_id).read
        streams = [self._shard(shard, start, end) for shard in range(shards)]
        return streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda e: e.event_id)

    def _shard(self, shard: int, start: int, end: int) -> Iterator[ClosedEvent]:
        args: dict[str, Any] = {
            "TableName": self.events_table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :p AND event_id BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": partition_key(self.tenant_id, shard)},
                                          ":lo": {"S": lowest_event_id_ms(start)}, ":hi": {"S": highest_event_id_ms(end - 1)}},
            "ProjectionExpression": "event_id, #t, agent_id, #s",
            "ExpressionAttributeNames": {"#t": "event_type", "#s": "severity"},
        }
        while True:
            response = self.client.query(**args)
            for item in response.get("Items", []):
                agent = item.get("agent_id")
                yield ClosedEvent(item["event_id"]["S"], item["event_type"]["S"], agent["S"] if agent else None,
                              item["severity"]["S"])
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]


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
