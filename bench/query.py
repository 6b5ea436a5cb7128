"""Issue 13, query half: is a filtered page as cheap at 5,000 events as at 500, and is `total` exact?

For each filter of the issue (agent, type, namespace, resource_id, severity, type+agent, agent+severity,
type+severity) and a few others, a first page (limit 50, offset 0) is read at 500 and at 5,000 stored events
(same mix, two tenants) and the DynamoDB work is counted at the client boundary with botocore event hooks:
Query requests per page, and items read (ScannedCount) per page on the events table and on the counts table.
Targets: requests per page grow <= 1.1x from 500 to 5,000 events, events-table items read at offset 0 <= 1.5x
limit. Also prints the write cost per event (write units of a 1 KB event: table + the GSIs holding it) and the
count buckets one event feeds. Everything runs in-process against moto (tables from template.yaml):

    .venv/bin/python bench/query.py
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tests"), str(ROOT / "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")

from ingest_read import _tables  # noqa: E402  (moto tables from template.yaml, as every bench builds them)

LIMIT = 50
SIZES = (500, 5000)
FILTERS = {  # name -> build_filter keyword arguments
    "agent": {"agent_id": "a3"},
    "type": {"event_type": "session.created"},
    "namespace": {"event_type": "trust.*"},
    "resource_id": {"resource_id": "r7"},
    "severity": {"severity": "error"},
    "type+agent": {"event_type": "agent.updated", "agent_id": "a3"},
    "agent+severity": {"agent_id": "a3", "severity": "error"},
    "type+severity": {"event_type": "agent.updated", "severity": "error"},
    # beyond the targets (other combinations may read more, but say nothing false)
    "severity list": {"severity": "warn,error"},
    "q: -type:session.*": {"q": "-type:session.*"},
    "q: resource+type": {"q": "resource:r7 type:agent.updated"},
}


class Calls:
    """DynamoDB requests and items read (ScannedCount) per table, counted at the client boundary."""

    def __init__(self, client):
        self.requests, self.read = Counter(), Counter()
        client.meta.events.register("before-call.dynamodb.*", self._before, unique_id="query-bench-before")
        client.meta.events.register("after-call.dynamodb.Query", self._query, unique_id="query-bench-query")

    def _before(self, params, model, context, **_):
        self.requests[model.name] += 1
        context["query_bench_table"] = json.loads(params["body"] or "{}").get("TableName")

    def _query(self, parsed, context, **_):
        self.read[context.get("query_bench_table")] += parsed.get("ScannedCount", 0)

    def reset(self):
        self.requests.clear()
        self.read.clear()


def _events(tenant: str, n: int):
    """n events over the last ~2 days: 9 agents, 25 resources, the whole catalog, mostly info (15 % warn, 5 % error)."""
    from maip_events.catalog import EVENT_TYPES
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest

    start = datetime.now(timezone.utc) - timedelta(days=2)
    step = timedelta(days=2) / n
    severities = ["info"] * 16 + ["warn"] * 3 + ["error"]
    return [build_event(tenant, EmitEventRequest(event_type=EVENT_TYPES[i % len(EVENT_TYPES)], agent_id=f"a{i % 9}",
                                                  resource_id=f"r{i % 25}", severity=severities[(i * 7) % 20],
                                                  metadata={"i": i, "pad": "x" * 600}), start + i * step) for i in range(n)]


def write_cost() -> list[str]:
    """Write units of one 1 KB event (table + every GSI holding it, projection ALL) and count buckets it feeds."""
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest
    from maip_events.store import counts
    from maip_events.store.events import INDEXES, to_item

    event = build_event("tenant-0001", EmitEventRequest(event_type="agent.updated", agent_id="agent-0001", resource_id="resource-0001",
                                                         severity="warn", metadata={"pad": "x" * 500}))
    item = to_item(event)
    size = sum(len(k) + len(next(iter(v.values()))) for k, v in item.items())
    units = math.ceil(size / 1024)
    held = [name for name, attribute, _ in INDEXES if attribute in item]
    dims = counts.dimensions(event.event_type, event.agent_id, event.severity)
    return [f"write units of one event of ~{size} B (table + {len(held)} GSIs): {units * (1 + len(held))}",
            f"count dimensions one event feeds: {len(dims)}, written once per closed minute and hour, not per event"]


def measure() -> list[str]:
    from moto import mock_aws

    from maip_events import aws, query
    from maip_events.store.events import EventStore
    from maip_events_local import moto_patches
    from aggregation import aggregate

    moto_patches.install()
    rows = write_cost()
    with mock_aws():
        _tables()
        calls = Calls(aws.dynamodb())
        store = EventStore()
        for n in SIZES:
            events = store.prepare(_events(f"bench{n}", n))
            store.put_many(events, prepared=True)
            aggregate(events)
        found: dict[tuple[str, int], tuple[int, int, int, int]] = {}
        for name, params in FILTERS.items():
            for n in SIZES:
                flt = query.build_filter(f"bench{n}", **params)
                store.page(flt, limit=LIMIT)  # warm the tenant-settings cache
                calls.reset()
                page = store.page(flt, limit=LIMIT)
                found[(name, n)] = (calls.requests["Query"], calls.read[store.table], calls.read[store.counters_table], page.total)
                assert page.total == sum(1 for _ in store.iterate(flt)), name  # exact
        rows.append(f"{'filter':<22} {'requests/page':>16} {'growth':>7} {'events read/page':>17} {'counter items':>14} {'total':>12}")
        for name in FILTERS:
            (r1, e1, c1, t1), (r2, e2, c2, t2) = found[(name, SIZES[0])], found[(name, SIZES[1])]
            rows.append(f"{name:<22} {r1:>7} -> {r2:<6} {r2 / r1:>6.2f}x {e1:>7} -> {e2:<7} {c1:>5} -> {c2:<6} {t1:>5} -> {t2:<5}")
    return rows


if __name__ == "__main__":
    for row in measure():
        print(row)
