"""Issue 6 benchmark: cost of one list page (with its exact `total`) at N = 5,000 and N = 50,000 events.

Runs in-process against moto (tables from template.yaml) and counts, from the responses themselves, the
DynamoDB requests and items read (ScannedCount) per call: moto's ConsumedCapacity is not real. The same
figures are measured for the naive approach (the foundation's store: `total` by paging through every
match, `offset` by reading and discarding) on the same tables, side by side. Then the write amplification
of one emit and of a batch.

Run: .venv/bin/python bench/list_scale.py [--sizes 5000,50000] [--limit 50]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="WARNING")
for name in ("MAIP_DYNAMODB_ENDPOINT", "MAIP_LOCAL", "AWS_LAMBDA_FUNCTION_NAME"):
    os.environ.pop(name, None)

AGENTS = [f"agent-{i}" for i in range(8)] + [None]
TYPES = ["agent.registered", "session.created", "session.refreshed", "trust.computed", "guardrail.violation", "anomaly.reported"]
DAYS = 7


class Counting:
    """boto3 client proxy recording, per call: operation, table, items read (ScannedCount) and bytes returned."""

    def __init__(self, client: Any):
        self._client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _record(self, op: str, table: str, response: dict, **extra: Any) -> dict:
        items = response.get("Items", [])
        self.calls.append({"op": op, "table": table, "read": response.get("ScannedCount", len(items)),
                           "bytes": len(json.dumps(items)) if items else 0, "consistent": extra.get("consistent", False), **extra})
        return response

    def query(self, **kwargs: Any) -> dict:
        return self._record("Query", kwargs["TableName"], self._client.query(**kwargs), consistent=kwargs.get("ConsistentRead", False))

    def get_item(self, **kwargs: Any) -> dict:
        response = self._client.get_item(**kwargs)
        return self._record("GetItem", kwargs["TableName"], {"ScannedCount": 1 if "Item" in response else 0, **response})

    def transact_write_items(self, **kwargs: Any) -> dict:
        items = kwargs["TransactItems"]
        wcu = sum(2 * math.ceil(len(json.dumps(next(iter(i.values())))) / 1024) for i in items)  # transactional = 2x
        self.calls.append({"op": "TransactWriteItems", "table": "*", "read": 0, "bytes": 0, "items": len(items), "wcu": wcu})
        return self._client.transact_write_items(**kwargs)

    def take(self) -> list[dict]:
        calls, self.calls = self.calls, []
        return calls


def summarize(calls: list[dict], events_table: str) -> dict[str, float]:
    reads = [c for c in calls if c["op"] in ("Query", "GetItem")]
    # Read units as DynamoDB bills a Query: bytes read rounded up to 4 KB per request, half for eventual consistency.
    # Items read but not returned (Select=COUNT) are sized like the returned events (avg_event_bytes).
    rcu = 0.0
    for c in reads:
        size = c["bytes"] if c["bytes"] else c["read"] * (AVG_EVENT_BYTES if c["table"] == events_table else 60)
        rcu += max(1, math.ceil(size / 4096)) * (1 if c["consistent"] else 0.5)
    return {
        "requests": len(calls),
        "event_items": sum(c["read"] for c in reads if c["table"] == events_table),
        "counter_items": sum(c["read"] for c in reads if c["table"] != events_table),
        "rcu": rcu,
    }


AVG_EVENT_BYTES = 400


def add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a[k] + b[k] for k in a}


class NaiveStore:
    """The foundation's read path, verbatim in behaviour: count every match, skip an offset by reading it."""

    def __init__(self, store: Any):
        self.store = store

    def page(self, flt: Any, limit: int, offset: int) -> list:
        """The events of one page (its `total` is `count`, measured once per filter and added to both pages)."""
        from maip_events.store.events import from_item

        low, high = self.window(flt)
        args = {**self.store._query_args(flt, low, high), "Limit": min(offset + limit + 1, 1000)}
        args.pop("ConsistentRead", None)
        events, skip = [], offset
        while len(events) < limit + 1:
            response = self.store.client.query(**args)
            for item in response["Items"]:
                if skip:
                    skip -= 1
                elif len(events) <= limit:
                    events.append(from_item(item))
            if "LastEvaluatedKey" not in response or len(events) > limit:
                break
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return events[:limit]

    @staticmethod
    def window(flt: Any) -> tuple[int, int | None]:
        from maip_events.store.events import _micros

        return (-(-_micros(flt.time_from) // 1000) if flt.time_from else 0), (_micros(flt.time_to) // 1000 + 1 if flt.time_to else None)

    def count(self, flt: Any) -> int:
        total, args = 0, {**self.store._query_args(flt, *self.window(flt)), "Select": "COUNT"}
        args.pop("ConsistentRead", None)
        while True:
            response = self.store.client.query(**args)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def load(client: Any, tenant: str, n: int, end: datetime) -> int:
    """N events over DAYS days for one tenant, written as the store would (same items, same counters), in bulk."""
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest
    from maip_events.settings import get_settings
    from maip_events.store import counts
    from maip_events.store.events import _ms, to_item
    from maip_events.store.tenants import Retention

    rng = random.Random(n)
    policy, span = Retention(), DAYS * 86_400_000
    rows, events = [], []
    for _ in range(n):
        at = end - timedelta(milliseconds=rng.randrange(span))
        e = build_event(tenant, EmitEventRequest(event_type=rng.choice(TYPES), agent_id=rng.choice(AGENTS),
                                                 metadata={"k": "v" * rng.randrange(50, 400)}), at)
        e = e.model_copy(update={"expires_at": policy.expires_at(_ms(at))})
        events.append(to_item(e))
        rows.append((tenant, e.event_type, e.agent_id, _ms(at), e.expires_at))
    settings = get_settings()
    counters = [{"counter_id": {"S": k[0]}, "bucket": {"S": k[1]}, "n": {"N": str(v[0])}, "expires_at": {"N": str(v[1])}}
                for k, v in counts.increments(rows).items()]
    # Straight into moto's backend: the HTTP round trip of 250,000 small writes would dominate the run.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for table, items in ((settings.events_table, events), (settings.counters_table, counters)):
        for item in items:
            backend.put_item(table, item)
    return len(counters)


def main() -> None:
    global AVG_EVENT_BYTES
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import boto3
    from moto import mock_aws

    from maip_events import settings as settings_module
    from maip_events_local import moto_patches
    from maip_events_local.template import table_definitions
    from maip_events.store.events import EventFilter, EventStore

    moto_patches.install()
    with mock_aws():
        settings_module.reset()
        raw = boto3.client("dynamodb", region_name="us-east-1")
        for definition in table_definitions():
            raw.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})
        client = Counting(raw)
        store = EventStore(client=client)
        naive = NaiveStore(store)
        events_table = store.table
        end = datetime.now(timezone.utc) - timedelta(minutes=1)
        t0 = time.perf_counter()
        counter_items = {n: load(raw, f"bench-{n}", n, end) for n in sizes}
        sample = raw.query(TableName=events_table, KeyConditionExpression="tenant_id = :t", Limit=200,
                           ExpressionAttributeValues={":t": {"S": f"bench-{sizes[0]}"}})["Items"]
        AVG_EVENT_BYTES = sum(len(json.dumps(i)) for i in sample) // max(1, len(sample))
        print(f"loaded {'+'.join(map(str, sizes))} events over {DAYS} days in {time.perf_counter() - t0:.0f} s "
              f"(avg event item {AVG_EVENT_BYTES} B); counter items stored: "
              + ", ".join(f"{c} for N={n} ({c / n:.1f}/event)" for n, c in counter_items.items()) + f"; limit={args.limit}\n")

        window = (end - timedelta(days=DAYS) + timedelta(days=1, hours=3, minutes=17, seconds=5.123),
                  end - timedelta(days=1, hours=5, minutes=41, seconds=7.456))
        combos = []
        for name, agent, etype in (("tenant", None, None), ("agent", "agent-3", None), ("type", None, "session.created"),
                                   ("agent+type", "agent-3", "session.created")):
            combos.append((name, agent, etype, None))
            combos.append((name + "+window", agent, etype, window))

        results: dict[tuple[str, int], dict[str, Any]] = {}
        for name, agent, etype, win in combos:
            for n in sizes:
                flt = EventFilter(f"bench-{n}", agent_id=agent, event_type=etype,
                                  time_from=win[0] if win else None, time_to=win[1] if win else None)
                row: dict[str, Any] = {}
                client.take()
                first = store.page(flt, args.limit, 0)
                row["p0"] = summarize(client.take(), events_table)
                deep_offset = max(0, first.total - args.limit)
                deep = store.page(flt, args.limit, deep_offset)
                row["deep"] = summarize(client.take(), events_table)
                store.count(flt)
                row["total"] = summarize(client.take(), events_table)
                t_naive = naive.count(flt)
                naive_total = summarize(client.take(), events_table)
                n0 = naive.page(flt, args.limit, 0)
                row["naive_p0"] = add(summarize(client.take(), events_table), naive_total)
                nd = naive.page(flt, args.limit, deep_offset)
                row["naive_deep"] = add(summarize(client.take(), events_table), naive_total)
                assert t_naive == first.total, (name, n, t_naive, first.total)
                assert [e.event_id for e in n0] == [e.event_id for e in first.events]
                assert [e.event_id for e in nd] == [e.event_id for e in deep.events]
                row["matches"] = first.total
                results[(name, n)] = row
                print(f"  measured {name} N={n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

        lo, hi = sizes[0], sizes[-1]
        print("Per page (offset 0 and offset total-limit, `total` included) - requests / event items read / counter items read / est. RCU")
        header = f"{'filter':<20}{'N':>7}{'matches':>9} | {'new p0':>22} | {'new deep':>22} | {'naive p0':>22} | {'naive deep':>22}"
        print(header + "\n" + "-" * len(header))
        fmt = lambda s: f"{s['requests']:>3} / {s['event_items']:>5} / {s['counter_items']:>4} / {s['rcu']:>5.1f}"
        for name, *_ in combos:
            for n in sizes:
                r = results[(name, n)]
                print(f"{name:<20}{n:>7}{r['matches']:>9} | {fmt(r['p0']):>22} | {fmt(r['deep']):>22} | {fmt(r['naive_p0']):>22} | {fmt(r['naive_deep']):>22}")
        print("\nTargets (new design; naive in brackets)")
        print(f"{'filter':<20}{'p0 event items/limit':>22}{'deep/p0 items':>16}{'req 50k/5k p0':>15}{'req 50k/5k deep':>17}{'req 50k/5k total':>18}")
        worst = defaultdict(float)
        for name, *_ in combos:
            a, b = results[(name, lo)], results[(name, hi)]
            p0_items = b["p0"]["event_items"] / args.limit
            deep_ratio = b["deep"]["event_items"] / max(1, b["p0"]["event_items"])
            naive_deep_ratio = b["naive_deep"]["event_items"] / max(1, b["naive_p0"]["event_items"])
            rq = {k: b[k]["requests"] / a[k]["requests"] for k in ("p0", "deep", "total", "naive_p0", "naive_deep")}
            worst["p0"] = max(worst["p0"], p0_items)
            worst["deep"] = max(worst["deep"], deep_ratio)
            worst["req"] = max(worst["req"], rq["p0"], rq["deep"], rq["total"])
            print(f"{name:<20}{p0_items:>10.2f} [{b['naive_p0']['event_items'] / args.limit:>8.1f}]"
                  f"{deep_ratio:>8.2f} [{naive_deep_ratio:>5.0f}]{rq['p0']:>7.2f} [{rq['naive_p0']:>4.1f}]"
                  f"{rq['deep']:>9.2f} [{rq['naive_deep']:>4.1f}]{rq['total']:>10.2f}")
        print(f"\nworst case at N={hi}: p0 event items/limit {worst['p0']:.2f} (target <= 1.5), deep/p0 items {worst['deep']:.2f} "
              f"(target <= 2), requests 50k/5k {worst['req']:.2f} (target <= 1.1)")

        write_amplification(store, client)


def write_amplification(store: Any, client: Counting) -> None:
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest

    print("\nWrite amplification (TransactWriteItems; transactional writes bill 2 WCU per KB per item)")
    for label, agent in (("emit with agent_id", "agent-1"), ("emit without agent_id", None)):
        client.take()
        for i in range(20):
            store.put(build_event("wa", EmitEventRequest(event_type="agent.registered", agent_id=agent, metadata={"i": i})))
        writes = [c for c in client.take() if c["op"] == "TransactWriteItems"]
        items, wcu = sum(c["items"] for c in writes) / 20, sum(c["wcu"] for c in writes) / 20
        print(f"  {label:<24} requests/event {len(writes) / 20:.2f}, items/event {items:.1f}, WCU/event {wcu:.1f} "
              f"(naive: 1 request, 1 item, 1 WCU)")
    rng = random.Random(1)
    batch = [build_event("wa-batch", EmitEventRequest(event_type=rng.choice(TYPES), agent_id=rng.choice(AGENTS))) for _ in range(500)]
    client.take()
    store.put_many(batch)
    writes = [c for c in client.take() if c["op"] == "TransactWriteItems"]
    print(f"  {'put_many (500, 1 s)':<24} requests/event {len(writes) / 500:.3f}, items/event {sum(c['items'] for c in writes) / 500:.2f}, "
          f"WCU/event {sum(c['wcu'] for c in writes) / 500:.1f} (increments aggregated per transaction of <= 100 items)")


if __name__ == "__main__":
    main()
