"""Metrics reads: the hourly metrics buckets of CountsTable (written by the one stream aggregation, see
store/counts.py), per tenant and dimension (total | event_type | severity | agent_id)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from maip_events import aws
from maip_events.settings import get_settings
from maip_events.store.counts import METRIC_DIMENSIONS, CountReader, hour_of  # noqa: F401  (hour_of: used by siem)

DIMENSIONS = METRIC_DIMENSIONS


@dataclass
class Counter:
    dimension: str
    hour: str
    value: str | None  # the raw value (event type, severity, agent id); None for `total` and events without an agent
    count: int


class MetricsStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().counters_table

    def counters(self, tenant_id: str, dimension: str, first_hour: str, last_hour: str) -> Iterator[Counter]:
        """Every counter of the dimension for hours in [first_hour, last_hour] (keyed query, paginated)."""
        reader = CountReader(self.client, self.table, tenant_id, "", lambda low, high: 0)
        for hour, value, count in reader.metric_counters(dimension, first_hour, last_hour):
            yield Counter(dimension, hour, value, count)
