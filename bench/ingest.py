"""Issue 11 (write half) benchmarks, side by side in one run; DynamoDB calls counted at the client boundary
(botocore `provide-client-params` hook) against moto:

1. write requests / items / estimated write units per accepted POST of a 1 KB event, without and with an
   Idempotency-Key, and per event of a 100-event batch: this tree beside the pre-issue main (the same measurement
   run on `git archive <baseline ref>` in a subprocess; quoted from the issue if that is not possible);
2. capacity model from the measured write log: WCU/s on the hottest partition key of the table and of each GSI
   at 10,000 events/s of 1 KB for one tenant (one agent, one type: the worst case), per write-shard count;
3. warm overhead: warm POST handler vs a raw stubbed `put_item` (bench/foundation.py's measurement, reused);
4. rows of bench/ingest_read.py and bench/local_throughput.py (other helpers' benches) when present.

Write units: ceil(item size / 1 KB) per item written to the table, doubled inside TransactWriteItems; plus the
per GSI whose key attributes the item carries, sized by what the GSI projects (GSI propagation is not transactional).
UpdateItem of a small counter counts 1 unit (2 in a transaction).

Run: .venv/bin/python bench/ingest.py [--baseline-ref 34bff7d] [--events 2000]
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter, defaultdict
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MAIP_BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tools"), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="ERROR", MAIP_SHARD_SWITCH_DELAY="0")

BASELINE_REF = "34bff7d"  # main before issue 11's write path (the tree the issue measured)
TARGET_RATE = 10_000  # events/s of one tenant
PARTITION_LIMIT = 1_000  # WCU/s per partition key
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
# Quoted from issue 11 ("main, measured in issue") when the baseline cannot be measured here.
MAIN_QUOTED = {"requests": 1, "items": 13, "wcu": 29.0}


# ---- write log ---------------------------------------------------------------------------------------------

def _value_size(value: dict[str, Any]) -> int:
    kind, raw = next(iter(value.items()))
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        return len(raw.lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in raw.items())
    return len(json.dumps(raw))


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8 bytes; numbers ~1 byte per 2 digits)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _projected(index: dict[str, Any], table_keys: set[str]) -> set[str] | None:
    """The attributes a GSI copy holds (None: all of them): table and index keys plus INCLUDE's non-key ones."""
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return None
    return table_keys | {k["AttributeName"] for k in index["KeySchema"]} | set(projection.get("NonKeyAttributes", []))


class WriteLog:
    """Write requests of the process's DynamoDB client, with the items and estimated units each wrote."""

    def __init__(self) -> None:
        from maip_events_local.template import table_definitions

        self.indexes: dict[str, list[tuple[str, str, set[str] | None]]] = {}  # table -> [(index, hash attr, projected)]
        self.keys: dict[str, str] = {}  # table -> hash attribute
        for d in table_definitions():
            table_keys = {k["AttributeName"] for k in d["KeySchema"]}
            self.keys[d["TableName"]] = next(k["AttributeName"] for k in d["KeySchema"] if k["KeyType"] == "HASH")
            self.indexes[d["TableName"]] = [(g["IndexName"], next(k["AttributeName"] for k in g["KeySchema"] if k["KeyType"] == "HASH"),
                                             _projected(g, table_keys)) for g in d.get("GlobalSecondaryIndexes", [])]
        self.requests: list[str] = []
        self.writes: list[tuple[str, str, str, int]] = []  # (table or "table/index", partition key value, op, units)

    def hook(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in WRITES:
            return
        self.requests.append(model.name)
        if model.name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, op), = entry.items()
                self._item(op["TableName"], op.get("Item") or op.get("Key"), kind, transactional=True)
        elif model.name == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    if "PutRequest" in r:
                        self._item(table, r["PutRequest"]["Item"], "Put", transactional=False)
        elif model.name == "PutItem":
            self._item(params["TableName"], params["Item"], "Put", transactional=False)
        else:
            self._item(params["TableName"], params["Key"], "Update", transactional=False)

    def _item(self, table: str, item: dict[str, Any], kind: str, transactional: bool) -> None:
        units = max(1, math.ceil(item_size(item) / 1024)) if kind == "Put" else 1
        key = self.keys.get(table)
        self.writes.append((table, str(item.get(key, {}).get("S", "?")), kind, units * (2 if transactional else 1)))
        if kind == "Put":
            for index, attr, projected in self.indexes.get(table, []):
                if attr in item:
                    copy = item if projected is None else {k: v for k, v in item.items() if k in projected}
                    self.writes.append((f"{table}/{index}", item[attr]["S"], "gsi", max(1, math.ceil(item_size(copy) / 1024))))

    def clear(self) -> None:
        self.requests.clear()
        self.writes.clear()

    def summary(self, events: int) -> dict[str, float]:
        return {"requests": len(self.requests) / events, "items": sum(1 for w in self.writes if w[2] != "gsi") / events,
                "wcu": sum(w[3] for w in self.writes) / events}

    def hottest(self, events: int, rate: int = TARGET_RATE) -> dict[str, tuple[str, float]]:
        """Per table and GSI: (hottest partition key, its WCU/s at `rate` events/s) from this log of `events` events."""
        per_key: dict[str, Counter] = defaultdict(Counter)
        for table, key, _, units in self.writes:
            per_key[table][key] += units
        return {table: (key, units * rate / events) for table, counter in per_key.items() for key, units in [counter.most_common(1)[0]]}


# ---- measurements ----------------------------------------------------------------------------------------

def one_kb_event(agent: str = "agent-1") -> dict[str, Any]:
    """An event whose stored item is about 1,000 bytes (within one write unit)."""
    return {"event_type": "agent.registered", "agent_id": agent, "resource_id": "res-1", "severity": "info",
            "metadata": {"note": "x" * 640, "region": "eu-west-1", "n": 1}}


def _setup():
    import boto3
    from moto import mock_aws

    from maip_events import aws, settings
    from maip_events_local.template import table_definitions

    mock = mock_aws()
    mock.start()
    settings.reset()
    aws.reset()
    client = boto3.client("dynamodb", region_name="us-east-1")
    for definition in table_definitions():
        client.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})
    try:
        from maip_events_local import moto_patches

        moto_patches.install()
    except ImportError:
        pass
    return mock


def _headers(tenant: str) -> dict[str, str]:
    from maip_events.auth.keys import create_api_key

    key = create_api_key(tenant, ["*"])
    return {"X-API-Key": key["api_key"], "X-Tenant-ID": tenant, "Content-Type": "application/json"}


def measure_writes(events: int) -> dict[str, Any]:
    """Per-POST write profile and the write log's hottest keys, for the tree on sys.path."""
    from functions.emit.app import lambda_handler as emit
    from maip_events import aws
    from support import invoke

    mock = _setup()
    log = WriteLog()
    aws.dynamodb().meta.events.register("provide-client-params.dynamodb", log.hook)
    result: dict[str, Any] = {}
    try:
        headers = _headers("bench")
        invoke(emit, "POST", "/v1/observability/events", headers=headers, body=one_kb_event())  # warm caches
        for name, key in (("POST", None), ("POST + Idempotency-Key", "k")):
            log.clear()
            n = 20
            for i in range(n):
                extra = {"Idempotency-Key": f"{key}-{i}"} if key else {}
                status = invoke(emit, "POST", "/v1/observability/events", headers={**headers, **extra}, body=one_kb_event())[0]
                assert status == 201, status
            result[name] = log.summary(n)
        log.clear()
        status = invoke(emit, "POST", "/v1/observability/events:batch", headers=headers,
                        body={"events": [one_kb_event(f"agent-{i % 7}") for i in range(100)]})[0]
        result["batch of 100, per event"] = log.summary(100)
        sample = [w for w in log.writes if w[2] == "Put"][:1]
        result["_item_bytes"] = None
        from maip_events.events import build_event
        from maip_events.models.events import EmitEventRequest
        from maip_events.store.events import to_item

        result["_item_bytes"] = item_size(to_item(build_event("bench", EmitEventRequest(**one_kb_event()))))
        del sample
        # Capacity: one tenant, one agent, one type (every event hits the same GSI keys), per shard count.
        shard_counts = [1, 16, 32] if _has_shards() else [1]
        result["_capacity"] = {}
        for shards in shard_counts:
            tenant = f"cap{shards}"
            tenant_headers = _headers(tenant)
            if shards > 1:
                from maip_events.store.tenants import TenantSettingsStore

                TenantSettingsStore().set_write_shards(tenant, shards)
            invoke(emit, "POST", "/v1/observability/events", headers=tenant_headers, body=one_kb_event())
            log.clear()
            for _ in range(events):
                invoke(emit, "POST", "/v1/observability/events", headers=tenant_headers, body=one_kb_event())
            result["_capacity"][shards] = log.hottest(events)
    finally:
        mock.stop()
    return result


def _has_shards() -> bool:
    from maip_events.store import tenants

    return hasattr(tenants.TenantSettingsStore, "set_write_shards")


def baseline_writes(ref: str, events: int) -> dict[str, Any] | None:
    """The same measurement on `git archive <ref>` (run in a subprocess with that tree first on sys.path)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], capture_output=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    with tempfile.TemporaryDirectory() as tree:
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(tree)
        env = {**os.environ, "MAIP_BENCH_ROOT": tree}
        out = subprocess.run([sys.executable, __file__, "--writes-json", "--events", str(events)], env=env, cwd=tree,
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"(baseline {ref} could not be measured: {out.stderr.strip().splitlines()[-1:]})")
            return None
        return json.loads(out.stdout.strip().splitlines()[-1])


def warm_ratio() -> None:
    """bench/foundation.py's warm ratios (POST vs raw stubbed put_item, GET vs raw stubbed query), with the
    deployed caches on: API keys 5 s, tenant settings 30 s, a first page's count buckets 10 s (as a warm Lambda
    has them; bench/ingest_read.py also prints the GET with its buckets read)."""
    os.environ.update(MAIP_API_KEY_CACHE_TTL="5", MAIP_TENANT_SETTINGS_TTL="30", MAIP_COUNTS_CACHE_TTL="10")
    import foundation

    from maip_events import aws, settings

    mock = _setup()
    try:
        settings.reset()
        aws.reset()
        headers = _headers("bench")
        foundation.warm_ratios(headers)
    finally:
        mock.stop()


def other_rows() -> None:
    for module in ("ingest_read", "local_throughput"):
        path = Path(__file__).resolve().parent / f"{module}.py"
        if not path.exists():
            print(f"{module}: (bench/{module}.py not present on this branch)")
            continue
        try:
            rows = __import__(module).measure()
            for row in rows:
                print(f"{module}: {row}")
        except Exception as err:  # another helper's bench must not hide this one's figures
            print(f"{module}: failed: {type(err).__name__}: {err}")


# ---- report ----------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--events", type=int, default=2000, help="POSTs per shard count for the capacity model")
    parser.add_argument("--writes-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writes_json:  # baseline subprocess: only the write profile, as JSON on the last line
        with redirect_stdout(io.StringIO()):
            result = measure_writes(args.events)
        print(json.dumps(result))
        return

    warm_ratio()  # first: a heap full of moto items from the write runs would slow every collection in the handler
    now = measure_writes(args.events)
    base = baseline_writes(args.baseline_ref, max(200, args.events // 10))
    print(f"1 KB event: stored item {now['_item_bytes']} bytes")
    print(f"{'writes per accepted POST':<30} {'this tree (req / items / WCU)':<32} {'main ' + (args.baseline_ref if base else '(quoted from issue)')}")
    for name in ("POST", "POST + Idempotency-Key", "batch of 100, per event"):
        mine = now[name]
        theirs = (base or {}).get(name) or (MAIN_QUOTED if name == "POST" else None)
        other = f"{theirs['requests']:.2f} / {theirs['items']:.2f} / {theirs['wcu']:.1f}" if theirs else "-"
        print(f"  {name:<28} {mine['requests']:.2f} / {mine['items']:.2f} / {mine['wcu']:.1f}{'':<14} {other}")
    print(f"capacity at {TARGET_RATE:,} events/s of 1 KB, one tenant, one agent and type (WCU/s on the hottest partition key; limit {PARTITION_LIMIT:,}):")
    tables = sorted({t for runs in [now["_capacity"], (base or {}).get("_capacity", {})] for cap in runs.values() for t in cap})
    for label, capacity in [(f"this tree, {s} write shard(s)", cap) for s, cap in now["_capacity"].items()] + \
            [(f"main {args.baseline_ref}", cap) for _, cap in (base or {}).get("_capacity", {}).items()]:
        worst = max(v[1] for v in capacity.values())
        cells = ", ".join(f"{t.split('/')[-1] if '/' in t else t}: {capacity[t][1]:,.0f}" for t in tables if t in capacity)
        print(f"  {label:<28} {cells}  -> max {worst:,.0f} {'OK' if worst <= PARTITION_LIMIT else 'OVER'}")
    for label, runs in (("this tree", now["_capacity"]), (f"main {args.baseline_ref}", (base or {}).get("_capacity", {}))):
        for shards, capacity in runs.items():
            table, (key, rate) = max(capacity.items(), key=lambda kv: kv[1][1])
            print(f"  hottest key, {label}, {shards} shard(s): {table} {key!r} at {rate:,.0f} WCU/s")
    other_rows()


if __name__ == "__main__":
    main()
