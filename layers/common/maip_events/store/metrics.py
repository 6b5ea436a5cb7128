"""Metrics reads: hourly counts per tenant and dimension (total | event_type | severity | agent_id).

Closed hours come from their metrics buckets (store/counts.py); the hours after the newest closed one from the
minute maps; the newest events after the counts' cursor from the events table (the same read-your-writes as a
list's `total`)."""
from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any, Iterator

from maip_events import aws
from maip_events.settings import get_settings
from maip_events.store import counts
from maip_events.store.counts import METRIC_DIMENSIONS, hour_of  # noqa: F401  (hour_of: used by siem)

DIMENSIONS = METRIC_DIMENSIONS
_KIND = {"event_type": "t=", "severity": "s=", "agent_id": "a="}


@dataclass
class Counter:
    dimension: str
    hour: str
    value: str | None  # the raw value (event type, severity, agent id); None for `total` and events without an agent
    count: int


class MetricsStore:
    def __init__(self, client: Any = None, table: str | None = None, events: Any = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().counters_table
        self.events = events  # an EventStore (for the newest events); built when first needed

    def counters(self, tenant_id: str, dimension: str, first_hour: str, last_hour: str) -> Iterator[Counter]:
        """Every count of the dimension for hours in [first_hour, last_hour], exact up to the last write."""
        reader = counts.CountReader(self.client, self.table, tenant_id, "all", lambda low, high: 0)
        now = int(time.time() * 1000)
        catalog, cursor, frontier = reader.recent_maps(False, now + 60_000)
        closed_last = min(last_hour, counts.prefix(frontier - 1, counts.HOUR)) if frontier else None
        if closed_last is not None and first_hour <= closed_last:
            for hour, value, n in reader.metric_counters(dimension, first_hour, closed_last):
                yield Counter(dimension, hour, value, n)
        found: Tally = Tally()
        names: dict[str, str] = {}
        maps = catalog
        if dimension == "agent_id" and cursor > frontier:
            maps = catalog + list(reader.minute_items(True, frontier, cursor))
        kind = _KIND.get(dimension)
        for item in maps:
            hour = item["sk"]["S"][:counts.HOUR]
            if dimension == "total" or dimension == "agent_id":
                found[(hour, None if dimension == "total" else "")] += int(item.get("all", {"N": "0"})["N"])
            for name, value in item.items():
                if kind and name.startswith(kind):
                    found[(hour, name[len(kind):])] += int(value["N"])
                    if dimension == "agent_id":
                        found[(hour, "")] -= int(value["N"])  # what is left of `all`: events without an agent
            names.update({k: v["S"] for k, v in item.get("v", {}).get("M", {}).items()})
        for event in self._newest(tenant_id, cursor):
            hour = hour_of(event.created_at)
            if dimension == "total":
                found[(hour, None)] += 1
            elif dimension == "agent_id":
                key = counts.agent_key(event.agent_id) if event.agent_id is not None else ""
                if event.agent_id is not None:
                    names[key] = event.agent_id
                found[(hour, key)] += 1
            else:
                found[(hour, getattr(event, dimension))] += 1
        for (hour, key), n in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            if n and first_hour <= hour <= last_hour:
                value = names.get(key) if dimension == "agent_id" else key
                yield Counter(dimension, hour, value or None, n)

    def _newest(self, tenant_id: str, cursor: int) -> Iterator[Any]:
        from maip_events.query import build_filter
        from maip_events.store.events import EventStore

        store = self.events or EventStore(self.client)
        flt = build_filter(tenant_id, time_from=counts.iso(cursor) + "Z" if cursor else None)
        return store.iterate(flt, ascending=True)
