"""Issue 19 cost bench: $ per million ~1 KB events at AWS list prices, from calls counted at the botocore boundary.

Every function of template.yaml runs in-process on moto (mock_aws), wired from the template the way the local stack
wires it (tools/maip_events_local/template.py): tables, queues, KMS keys and S3 buckets are created from it, HTTP
events reach the emit handler shaped like API Gateway's (gateway.build_event), DynamoDB stream records reach every
stream consumer and SQS messages every SQS consumer in batches composed as Lambda's event source mappings compose
them (a batch is invoked when BatchSize records wait, or MaximumBatchingWindowInSeconds after its first record;
filter criteria applied), and functions with Schedule events run at their schedule. Nothing is named here: a
function, table, bucket or event source added to the template is run and counted with the rest.

The clock is simulated (time-machine): each event is emitted at its moment at the given rate, and the consumers,
TTLs, SQS delays and time-closed blocks see that clock, so minutes of traffic take seconds and no figure depends
on how fast this machine is. time.monotonic (the layer's cache deadlines) follows the simulated clock too.

Counting: BaseClient._make_api_call is wrapped, so every AWS call of every handler is attributed to the function
whose handler made it. DynamoDB units follow DynamoDB's rules, computed from item sizes (read back from moto by an
uncounted client where the request does not carry the whole item):
- write: ceil(KB) per item, of the larger of the item before and after (UpdateItem/PutItem replace); 2x inside
  TransactWriteItems; a failed conditional write costs the existing item's size (min 1); a cancelled transaction
  costs each item once (its prepare phase); a ConditionCheck costs like a transactional write of the item it reads;
  every GSI/LSI the item enters, leaves or changes in costs the index entry's units (not doubled in transactions);
- read: ceil(total bytes evaluated / 4 KB) per Query/Scan request and per item of GetItem/BatchGetItem (min 1),
  halved when eventually consistent, doubled in TransactGetItems;
- storage: item + every index entry + 100 bytes per item and per entry, for the item's lifetime: until its TTL
  attribute (the tables' TimeToLiveSpecification), else the whole history; point-in-time recovery where enabled.
S3: PUT/COPY/POST/LIST and GET/HEAD requests, bytes stored per object for its lifetime under the bucket's lifecycle
rules (transitions, expiry, minimum durations and sizes); SQS: requests per 64 KB chunk, plus the receive and delete
requests Lambda's SQS pollers make for each batch; KMS requests (asymmetric keys at their rate); Lambda: one request
per invocation and the handler's in-process time (its thread's CPU time, moto's answers included, minus this
bench's own counting) as a stand-in for billed duration, at the function's MemorySize and architecture; API
Gateway: one request per 512 KB; CloudWatch Logs: what handlers print (plus Lambda's ~300 bytes of START/END/REPORT
lines per invocation).

History: the tenant is given the longest history (7 years) with the operator CLI (`tenants set-retention
--archive-days N` where the CLI has an archive tier, else `--days N`, today's one retention) a day before its
traffic, since a retention change applies to TTLs from the next UTC day. Each item is then priced for its own
lifetime within each history: until its TTL (the hot tier, or the whole history where everything stays in
DynamoDB), else the history; each S3 object until its lifecycle expiry or the history's end.

Not shown by moto, and how it is modelled: no throttling, no hot-partition limits and no transaction conflicts
(moto serialises everything: a figure never includes retries); one warm container per function (deployed, a burst
runs many containers, each with its own API key and settings caches, so more reads at high rates); no cold starts;
Lambda's DynamoDB Streams reads are free and not counted; the SQS pollers' idle long polls, KMS key-months and
other per-month fixed costs are not per event and are left out. Functions that run on a schedule are priced on
their own line ("compaction", everything they call), fired at their schedule during the traffic and once after
the simulated day has closed; their per-day fixed requests are spread over the events simulated, an upper bound.
Likewise items shared by many events (count buckets) are stored per event over the few minutes simulated: at low
rates their storage per event is an upper bound. Lambda durations are moto's in-process speed, not DynamoDB's.

Events per scenario: a few minutes of traffic at low rates and more events at high rates, cut short when the
scenario's CPU budget (--budget) is spent; every figure says how many events it is measured on.

Run: .venv/bin/python bench/cost.py [--json] [--rates 1,5,100,1000] [--modes single,batch50] [--seconds S]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tools"), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# ---- prices ----------------------------------------------------------------------------------------------------
# AWS list prices, us-east-1, on-demand, no free tier, first volume tier; looked up on 2026-12-07 (DynamoDB's are
# those in force since its on-demand price cut of 2024-11-01).
PRICES_DATE = "2026-12-07"
PRICES: dict[str, tuple[float, str]] = {
    "apigw_http_request": (1.00 / 1e6, "API Gateway HTTP API, per request (metered per 512 KB), first 300 M a month"),
    "lambda_request": (0.20 / 1e6, "Lambda, per invocation"),
    "lambda_gb_s_arm64": (0.0000133334, "Lambda duration, per GB-second, arm64"),
    "lambda_gb_s_x86_64": (0.0000166667, "Lambda duration, per GB-second, x86_64"),
    "ddb_wru": (0.625 / 1e6, "DynamoDB on-demand, per write request unit"),
    "ddb_rru": (0.125 / 1e6, "DynamoDB on-demand, per read request unit"),
    "ddb_storage_gb_month": (0.25, "DynamoDB Standard table class storage, per GB-month"),
    "ddb_pitr_gb_month": (0.20, "DynamoDB continuous backups (PITR), per GB-month of table size"),
    "ddb_streams_rru": (0.02 / 1e5, "DynamoDB Streams GetRecords not made by Lambda, per read request unit"),
    "s3_standard_gb_month": (0.023, "S3 Standard storage, per GB-month, first 50 TB"),
    "s3_standard_put": (0.005 / 1e3, "S3 Standard PUT, COPY, POST, LIST, per request"),
    "s3_standard_get": (0.0004 / 1e3, "S3 Standard GET, SELECT, HEAD, per request"),
    "s3_standard_ia_gb_month": (0.0125, "S3 Standard-IA storage, per GB-month (30 days, 128 KB minimum)"),
    "s3_standard_ia_transition": (0.01 / 1e3, "S3 lifecycle transition to Standard-IA, per object"),
    "s3_glacier_ir_gb_month": (0.004, "S3 Glacier Instant Retrieval storage, per GB-month (90 days, 128 KB minimum)"),
    "s3_glacier_ir_put": (0.02 / 1e3, "S3 Glacier Instant Retrieval PUT, per request"),
    "s3_glacier_ir_get": (0.01 / 1e3, "S3 Glacier Instant Retrieval GET, per request (+$0.03/GB retrieved)"),
    "s3_glacier_ir_transition": (0.02 / 1e3, "S3 lifecycle transition to Glacier Instant Retrieval, per object"),
    "s3_glacier_gb_month": (0.0036, "S3 Glacier Flexible Retrieval storage, per GB-month (90 days minimum)"),
    "s3_glacier_transition": (0.03 / 1e3, "S3 lifecycle transition to Glacier Flexible Retrieval, per object"),
    "s3_deep_archive_gb_month": (0.00099, "S3 Glacier Deep Archive storage, per GB-month (180 days minimum)"),
    "s3_deep_archive_transition": (0.05 / 1e3, "S3 lifecycle transition to Glacier Deep Archive, per object"),
    "sqs_request": (0.40 / 1e6, "SQS standard queue, per request (per 64 KB chunk)"),
    "kms_request": (0.03 / 1e4, "KMS, per request (symmetric keys)"),
    "kms_asymmetric_request": (0.15 / 1e4, "KMS, per request on an asymmetric key (except RSA 2048)"),
    "firehose_gb": (0.029, "Data Firehose Direct PUT ingestion, per GB (records rounded up to 5 KB)"),
    "logs_ingest_gb": (0.50, "CloudWatch Logs standard ingestion, per GB"),
}
# S3 storage classes: (storage price, PUT price, GET price, transition price, minimum days, minimum billed bytes).
S3_CLASSES = {
    "STANDARD": ("s3_standard_gb_month", "s3_standard_put", "s3_standard_get", None, 0, 0),
    "STANDARD_IA": ("s3_standard_ia_gb_month", "s3_standard_put", "s3_standard_get", "s3_standard_ia_transition", 30, 128 * 1024),
    "GLACIER_IR": ("s3_glacier_ir_gb_month", "s3_glacier_ir_put", "s3_glacier_ir_get", "s3_glacier_ir_transition", 90, 128 * 1024),
    "GLACIER": ("s3_glacier_gb_month", "s3_standard_put", "s3_standard_get", "s3_glacier_transition", 90, 0),
    "DEEP_ARCHIVE": ("s3_deep_archive_gb_month", "s3_standard_put", "s3_standard_get", "s3_deep_archive_transition", 180, 0),
}
GB = 1024 ** 3
DAYS_PER_MONTH = 365.25 / 12
DAY = 86_400
HISTORIES = {"1y": 365, "7y": 7 * 365}
TARGETS = {"single_1y": 5.00, "batch_1y": 2.50, "seven_year_adds": 0.50, "counting_wru_per_event": 1.0, "most_written_share": 0.10}
LAMBDA_PLATFORM_LOG_BYTES = 300  # START, END and REPORT lines of each invocation
DEFAULT_RATES = (1, 5, 100, 1000)
DEFAULT_MODES = ("single", "batch50")
BATCH = 50
START = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)  # simulated; each scenario starts a day later


# ---- DynamoDB size rules (pure) ----------------------------------------------------------------------------------

def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value, as DynamoDB sizes it (names are counted by the caller)."""
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        return _number_size(raw)
    if kind == "B":  # bytes, or base64 text as in DynamoDB JSON
        return len(raw) if isinstance(raw, (bytes, bytearray)) else len(base64.b64decode(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in raw)
    if kind == "NS":
        return sum(_number_size(v) for v in raw)
    if kind == "BS":
        return sum(value_size({"B": v}) for v in raw)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def _number_size(text: str) -> int:
    """1 byte per two significant digits (leading and trailing zeros trimmed), plus 1."""
    digits = text.lstrip("-+").lower().split("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    """One request's read units for `size` bytes read (a Query's whole page, or one item)."""
    units = max(1, math.ceil(size / 4096))
    return units * 2 if transactional else units if consistent else units / 2


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]  # its key attributes: an item lacking one is not in the index
    projected: frozenset[str] | None  # attributes an entry holds (None: all)
    local: bool = False  # an LSI: part of the table's size (and its backups)

    def entry(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if not item or any(k not in item for k in self.keys):
            return None
        return dict(item) if self.projected is None else {k: v for k, v in item.items() if k in self.projected}


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    pitr: bool = False

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: item[k] for k in self.keys if k in item}

    def stored_bytes(self, item: dict[str, Any]) -> tuple[int, int]:
        """(bytes with every index entry, bytes of the table and its LSIs): 100 bytes of overhead per item and entry."""
        base = total = item_size(item) + 100
        for index in self.indexes:
            entry = index.entry(item)
            if entry is not None:
                total += item_size(entry) + 100
                base += item_size(entry) + 100 if index.local else 0
        return total, base


def index_of(definition: dict[str, Any], table_keys: tuple[str, ...], local: bool = False) -> Index:
    keys = tuple(k["AttributeName"] for k in definition["KeySchema"])
    projection = definition.get("Projection") or {}
    kind = projection.get("ProjectionType", "ALL")
    projected = None if kind == "ALL" else frozenset(table_keys) | frozenset(keys) | frozenset(
        projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else [])
    return Index(definition["IndexName"], keys, projected, local)


def table_of(definition: dict[str, Any], pitr: bool = False) -> Table:
    """A Table from create_table kwargs (template.table_definitions())."""
    keys = tuple(k["AttributeName"] for k in definition["KeySchema"])
    indexes = tuple(index_of(i, keys, kind.startswith("Local")) for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
                    for i in definition.get(kind, []))
    ttl = definition.get("TimeToLiveSpecification") or {}
    return Table(definition["TableName"], keys, indexes, ttl.get("AttributeName") if ttl.get("Enabled", True) else None, pitr)


def item_write(table: Table, before: dict[str, Any] | None, after: dict[str, Any] | None, *, transactional: bool = False,
               failed: bool = False, check: bool = False) -> tuple[int, dict[str, int]]:
    """(table units, {index: units}) of one item write: before/after are the whole item (None: absent).
    `failed`: the condition failed (or the transaction was cancelled), nothing written; `check`: a ConditionCheck."""
    if failed:
        return write_units(item_size(before)), {}
    if check:
        return 2 * write_units(item_size(before)), {}
    units = write_units(max(item_size(before), item_size(after)))
    indexes = {}
    for index in table.indexes:
        old, new = index.entry(before), index.entry(after)
        if old == new:
            continue  # not in it before nor after, or the entry did not change
        if old is None or new is None:
            cost = write_units(item_size(old or new))
        elif any(old[k] != new[k] for k in index.keys):
            cost = write_units(item_size(old)) + write_units(item_size(new))  # moved: a delete and a put
        else:
            cost = write_units(max(item_size(old), item_size(new)))
        indexes[index.name] = cost
    return units * (2 if transactional else 1), indexes


def sqs_requests(payload_bytes: int) -> int:
    """SQS bills each 64 KB chunk of a request's payload as one request."""
    return max(1, math.ceil(payload_bytes / 65536))


# ---- the template ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    function: Any
    period: float  # seconds
    offset: float  # seconds after midnight UTC of the first firing of a day (cron), 0 for rate()
    payload: dict[str, Any] | None


def _template() -> dict[str, Any]:
    from maip_events_local.template import load_template

    return load_template()


def function_settings(logical_id: str) -> tuple[int, str]:
    """(MemorySize MB, architecture) of a function, from its properties or Globals."""
    template = _template()
    props = template["Resources"][logical_id].get("Properties") or {}
    globals_ = template.get("Globals", {}).get("Function", {})
    memory = props.get("MemorySize", globals_.get("MemorySize", 128))
    arch = (props.get("Architectures") or globals_.get("Architectures") or ["x86_64"])[0]
    return int(memory) if isinstance(memory, (int, str)) and str(memory).isdigit() else 128, str(arch)


def parse_schedule(expression: str) -> tuple[float, float]:
    """(period, offset in the day) of rate(...) or cron(...) (minutes and hours fields; anything finer: daily)."""
    rate = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if rate:
        unit = {"minute": 60, "hour": 3600, "day": DAY}[rate.group(2).rstrip("s")]
        return int(rate.group(1)) * unit, 0.0
    cron = re.fullmatch(r"cron\((\S+)\s+(\S+)\s+.*\)", expression.strip())
    if cron:
        minute, hour = cron.groups()
        m = int(minute) if minute.isdigit() else 0
        if hour in ("*", "?"):
            return 3600.0, m * 60.0
        return float(DAY), (int(hour.split(",")[0]) if hour.split(",")[0].isdigit() else 0) * 3600.0 + m * 60.0
    raise ValueError(f"unsupported schedule {expression!r}")


def schedules() -> list[Schedule]:
    found = []
    for logical_id, resource in _template()["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        for event in (props.get("Events") or {}).values():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            p = event.get("Properties") or {}
            expression = p.get("Schedule") or p.get("ScheduleExpression")
            if not isinstance(expression, str):
                continue
            function = _function(logical_id)
            if function is None:
                continue
            period, offset = parse_schedule(expression)
            payload = json.loads(p["Input"]) if isinstance(p.get("Input"), str) else None
            found.append(Schedule(function, period, offset, payload))
    return found


def _function(logical_id: str):
    from maip_events_local.template import _functions  # the local stack's reading of every function

    return next((f for f, _ in _functions() if f.logical_id == logical_id), None)


def tables() -> dict[str, Table]:
    from maip_events_local.template import local_name, table_definitions

    pitr = {local_name(lid): bool(((r.get("Properties") or {}).get("PointInTimeRecoverySpecification") or {})
                                  .get("PointInTimeRecoveryEnabled"))
            for lid, r in _template()["Resources"].items() if r.get("Type") == "AWS::DynamoDB::Table"}
    return {d["TableName"]: table_of(d, pitr.get(d["TableName"], False)) for d in table_definitions()}


def counting_tables() -> list[str]:
    """Tables that hold counts: their logical id, or the Globals variable naming them, says "count"."""
    from maip_events_local.template import local_name

    env = _template().get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    found = []
    for lid, resource in _template()["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        names = [lid] + [var for var, value in env.items() if value == {"Ref": lid}]
        if any("count" in n.lower() for n in names):
            found.append(local_name(lid))
    return found


@dataclass(frozen=True)
class Rule:
    prefix: str
    tags: tuple[tuple[str, str], ...]
    expiration_days: float | None
    transitions: tuple[tuple[float, str], ...]  # (days, storage class)


def buckets() -> dict[str, tuple[Rule, ...]]:
    """Every AWS::S3::Bucket of the template (local name) with its enabled lifecycle rules."""
    from maip_events_local.template import local_name

    found = {}
    for lid, resource in _template()["Resources"].items():
        if resource.get("Type") != "AWS::S3::Bucket":
            continue
        rules = []
        for rule in (((resource.get("Properties") or {}).get("LifecycleConfiguration") or {}).get("Rules") or []):
            if rule.get("Status", "Enabled") != "Enabled":
                continue
            flt = rule.get("Filter") or {}
            and_ = flt.get("And") or {}
            prefix = rule.get("Prefix") or flt.get("Prefix") or and_.get("Prefix") or ""
            tags = [t for t in (rule.get("TagFilters") or []) + ([flt["Tag"]] if "Tag" in flt else []) + (and_.get("Tags") or [])]
            transitions = [(float(t["TransitionInDays"]), t["StorageClass"]) for t in
                           (rule.get("Transitions") or []) + ([rule["Transition"]] if "Transition" in rule else [])
                           if isinstance(t.get("TransitionInDays"), (int, float, str)) and str(t["TransitionInDays"]).isdigit()]
            expiration = rule.get("ExpirationInDays")
            rules.append(Rule(str(prefix), tuple((str(t["Key"]), str(t["Value"])) for t in tags),
                              float(expiration) if isinstance(expiration, (int, float)) or str(expiration).isdigit() else None,
                              tuple(sorted(transitions))))
        found[local_name(lid)] = tuple(rules)
    return found


def s3_object_cost(size: int, days: float, storage_class: str, rules: tuple[Rule, ...], key: str,
                   tags: dict[str, str], history_days: float) -> float:
    """Storage and transition dollars of one object written in `storage_class` and kept `days` (None: until its
    lifecycle expiry or the end of the history), moving through the lifecycle rules that match it."""
    matching = [r for r in rules if key.startswith(r.prefix) and all(tags.get(k) == v for k, v in r.tags)]
    expiries = [r.expiration_days for r in matching if r.expiration_days is not None]
    end = min([history_days, days] + expiries)
    steps = [(0.0, storage_class)] + sorted(t for r in matching for t in r.transitions if t[0] < end)
    dollars = 0.0
    for i, (start, klass) in enumerate(steps):
        stop = steps[i + 1][0] if i + 1 < len(steps) else end
        storage, _, _, transition, minimum_days, minimum_bytes = S3_CLASSES.get(klass, S3_CLASSES["STANDARD"])
        billed_days = max(stop - start, minimum_days if i + 1 == len(steps) else stop - start)
        dollars += max(size, minimum_bytes) / GB * billed_days / DAYS_PER_MONTH * PRICES[storage][0]
        if i > 0 and transition:
            dollars += PRICES[transition][0]
    return dollars


# ---- counting at the botocore boundary ---------------------------------------------------------------------------

READ_STRIP = ("ProjectionExpression", "FilterExpression", "AttributesToGet", "QueryFilter", "ScanFilter",
              "ConditionalOperator", "Select")
S3_PUT = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
          "ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads", "ListParts", "PutObjectTagging",
          "RestoreObject"}
S3_GET = {"GetObject", "HeadObject", "SelectObjectContent", "GetObjectTagging", "GetObjectAttributes"}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}


@dataclass
class Usage:
    """What one function did, summed over a scenario."""
    invocations: int = 0
    seconds: float = 0.0  # in-process handler wall time, billed per ms
    billed_ms: int = 0
    requests: Counter = field(default_factory=Counter)  # "service.Operation" -> requests
    wru: Counter = field(default_factory=Counter)  # "table" or "table/index" -> write units
    rru: Counter = field(default_factory=Counter)  # table -> read units
    items_written: int = 0
    s3_put: Counter = field(default_factory=Counter)  # storage class -> PUT-class requests
    s3_get: Counter = field(default_factory=Counter)
    sqs: int = 0  # billed requests
    kms: float = 0.0  # dollars
    firehose_bytes: int = 0
    streams_rru: float = 0.0
    log_bytes: int = 0


class Meter:
    """Wraps BaseClient._make_api_call and attributes every call to the function running on this thread."""

    def __init__(self, table_defs: dict[str, Table], kms_specs: dict[str, str], now: Any):
        import boto3

        self.tables = table_defs
        self.kms_specs = kms_specs  # key id, ARN or alias -> KeySpec
        self.now = now  # simulated epoch seconds
        self.region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self.raw = {s: boto3.client(s, region_name=self.region) for s in ("dynamodb", "s3")}
        for client in self.raw.values():
            client._cost_bench_raw = True
        self.local = threading.local()
        self.paused = True
        self.reset()

    def reset(self) -> None:
        self.usage: dict[str, Usage] = defaultdict(Usage)
        self.item_writes: Counter = Counter()  # (table, key json) -> writes
        self.items: dict[tuple[str, str], tuple[int, int, float, float | None]] = {}  # -> (bytes, base bytes, written, expires)
        self.items_gone: list[tuple[int, int, float]] = []  # (bytes, base bytes, lifetime seconds)
        self.objects: dict[tuple[str, str], tuple[int, float, str, dict[str, str]]] = {}  # -> (size, put at, class, tags)
        self.objects_gone: list[tuple[str, str, int, float, str, dict[str, str]]] = []  # + lifetime seconds
        self.stream_item_bytes: list[int] = []  # sizes of items written to tables with a stream (the events)

    # -- attribution -------------------------------------------------------------------------------------------
    @property
    def function(self) -> str | None:
        return getattr(self.local, "function", None)

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        previous, self.local.function = self.function, name
        self.local.overhead = 0.0
        try:
            yield
        finally:
            self.local.function = previous

    @property
    def overhead(self) -> float:
        return getattr(self.local, "overhead", 0.0)

    def install(self) -> None:
        """Counts every call of every client from now on with this meter (the wrapper is installed once)."""
        global _METER
        _METER = self
        from botocore.client import BaseClient

        if not getattr(BaseClient._make_api_call, "_cost_bench", False):
            counted = _counted(BaseClient._make_api_call)
            counted._cost_bench = True
            BaseClient._make_api_call = counted

    # -- uncounted reads of moto's state -----------------------------------------------------------------------
    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item as moto holds it, read from moto's backend (a request per item written would triple the run)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        try:
            item = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region].get_item(table, key)
        except Exception:  # noqa: BLE001 - a table or key shape moto refuses: sized as absent
            return None
        return item.to_json()["Attributes"] if item is not None else None

    def _write_keys(self, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any] | None]]:
        """(table, kind, key, item to put) of every item a write request touches."""
        out = []
        if operation == "PutItem":
            out.append((params["TableName"], "Put", self._key(params["TableName"], params["Item"]), params["Item"]))
        elif operation in ("UpdateItem", "DeleteItem"):
            out.append((params["TableName"], operation[:-4], params["Key"], None))
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    if "PutRequest" in r:
                        out.append((table, "Put", self._key(table, r["PutRequest"]["Item"]), r["PutRequest"]["Item"]))
                    else:
                        out.append((table, "Delete", r["DeleteRequest"]["Key"], None))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, op), = entry.items()
                item = op.get("Item")
                out.append((op["TableName"], kind, self._key(op["TableName"], item) if item else op["Key"], item))
        return out

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        known = self.tables.get(table)
        return known.key_of(item) if known else item

    def _before(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        if service == "dynamodb" and operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"):
            return [(t, kind, key, item, self._get(t, key)) for t, kind, key, item in self._write_keys(operation, params)]
        return None

    def _after(self, service: str, operation: str, params: dict[str, Any], response: Any, error: Any, before: Any) -> None:
        usage = self.usage[self.function]
        usage.requests[f"{service}.{operation}"] += 1
        code = error.response.get("Error", {}).get("Code") if error is not None else None
        if service == "dynamodb":
            self._dynamodb(usage, operation, params, response, code, before)
        elif service == "s3":
            self._s3(usage, operation, params, response, error)
        elif service == "sqs":
            self._sqs(usage, operation, params, response)
        elif service == "kms":
            spec = self.kms_specs.get(str(params.get("KeyId", "")), "SYMMETRIC_DEFAULT")
            usage.kms += PRICES["kms_request" if spec in ("SYMMETRIC_DEFAULT", "RSA_2048") else "kms_asymmetric_request"][0]
        elif service == "firehose":
            records = params.get("Records") or ([params["Record"]] if "Record" in params else [])
            usage.firehose_bytes += sum(math.ceil(len(r.get("Data", b"")) / 5120) * 5120 for r in records)
        elif service == "dynamodbstreams" and operation == "GetRecords" and response:
            usage.streams_rru += max(1, len(response.get("Records", [])))  # ~1 unit per record up to 1 KB

    # -- DynamoDB -----------------------------------------------------------------------------------------------
    def _dynamodb(self, usage: Usage, operation: str, params: dict[str, Any], response: Any, code: str | None, before: Any) -> None:
        if before is not None:  # a write
            cancelled = code in ("ConditionalCheckFailedException", "TransactionCanceledException")
            if code is not None and not cancelled:
                return  # validation and other errors consume nothing
            transactional = operation == "TransactWriteItems"
            for table, kind, key, item, old in before:
                known = self.tables.get(table)
                if known is None:
                    continue
                if cancelled:
                    new = old
                elif kind == "Put":
                    new = item
                elif kind == "Delete":
                    new = None
                elif kind == "ConditionCheck":
                    new = old
                else:
                    new = self._get(table, key)
                units, indexes = item_write(known, old, new, transactional=transactional, failed=cancelled,
                                            check=kind == "ConditionCheck" and not cancelled)
                usage.wru[table] += units
                for index, n in indexes.items():
                    usage.wru[f"{table}/{index}"] += n
                if cancelled or kind == "ConditionCheck":
                    continue
                usage.items_written += 1
                ident = (table, json.dumps(key, sort_keys=True, default=str))
                self.item_writes[ident] += 1
                self._store(known, ident, new)
            return
        if code is not None:
            return
        if operation == "GetItem":
            item = response.get("Item")
            if item is not None and any(k in params for k in ("ProjectionExpression", "AttributesToGet")):
                item = self._get(params["TableName"], params["Key"])
            usage.rru[params["TableName"]] += read_units(item_size(item), bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, spec in params["RequestItems"].items():
                for key in spec["Keys"]:
                    usage.rru[table] += read_units(item_size(self._get(table, key)), bool(spec.get("ConsistentRead")))
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                get = entry["Get"]
                usage.rru[get["TableName"]] += read_units(item_size(self._get(get["TableName"], get["Key"])), True, True)
        elif operation in ("Query", "Scan"):
            items = response.get("Items")
            if items is None or any(k in params for k in READ_STRIP):
                items = self._evaluated(operation, params)
            consistent = bool(params.get("ConsistentRead"))
            usage.rru[params["TableName"]] += read_units(sum(item_size(i) for i in items), consistent)

    def _evaluated(self, operation: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a Query/Scan evaluated (what it is billed for): the same request without projection or filter."""
        bare = {k: v for k, v in params.items() if k not in READ_STRIP}
        used = " ".join(str(bare.get(k, "")) for k in ("KeyConditionExpression",))
        names = {k: v for k, v in (bare.get("ExpressionAttributeNames") or {}).items() if k in used}
        values = {k: v for k, v in (bare.get("ExpressionAttributeValues") or {}).items() if k in used}
        bare.pop("ExpressionAttributeNames", None)
        bare.pop("ExpressionAttributeValues", None)
        if names:
            bare["ExpressionAttributeNames"] = names
        if values:
            bare["ExpressionAttributeValues"] = values
        return getattr(self.raw["dynamodb"], operation[0].lower() + operation[1:])(**bare).get("Items", [])

    def _store(self, table: Table, ident: tuple[str, str], item: dict[str, Any] | None) -> None:
        now = self.now()
        old = self.items.pop(ident, None)
        if old is not None:
            self.items_gone.append((old[0], old[1], now - old[2]))
        if item is None:
            return
        total, base = table.stored_bytes(item)
        ttl = item.get(table.ttl_attribute) if table.ttl_attribute else None
        expires = float(ttl["N"]) if ttl and "N" in ttl else None
        self.items[ident] = (total, base, now, expires)

    # -- S3, SQS ------------------------------------------------------------------------------------------------
    def _s3(self, usage: Usage, operation: str, params: dict[str, Any], response: Any, error: Any) -> None:
        klass = params.get("StorageClass") or "STANDARD"
        if operation in S3_PUT:
            usage.s3_put[klass if operation in ("PutObject", "CopyObject", "CreateMultipartUpload") else "STANDARD"] += 1
        elif operation in S3_GET:
            found = self.objects.get((params.get("Bucket"), params.get("Key")))
            usage.s3_get[found[2] if found else "STANDARD"] += 1
        elif operation not in S3_FREE:
            usage.s3_put["STANDARD"] += 1  # bucket configuration calls are PUT-class
        if error is not None:
            return
        if operation in ("PutObject", "CopyObject", "CompleteMultipartUpload"):
            bucket, key = params["Bucket"], params["Key"]
            head = self.raw["s3"].head_object(Bucket=bucket, Key=key)
            tags = dict(pair.split("=", 1) for pair in str(params.get("Tagging") or "").split("&") if "=" in pair)
            self._s3_gone(bucket, key)
            self.objects[(bucket, key)] = (int(head["ContentLength"]), self.now(), head.get("StorageClass") or klass, tags)
        elif operation == "DeleteObject":
            self._s3_gone(params["Bucket"], params["Key"])
        elif operation == "DeleteObjects":
            for obj in params["Delete"]["Objects"]:
                self._s3_gone(params["Bucket"], obj["Key"])

    def sweep_buckets(self, names: Any) -> None:
        """Objects in the template's buckets that no botocore call wrote (a service writing for us, e.g. Firehose):
        stored from now on, in the class S3 reports."""
        for bucket in names:
            for page in self.raw["s3"].get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    if (bucket, obj["Key"]) not in self.objects:
                        self.objects[(bucket, obj["Key"])] = (int(obj["Size"]), self.now(), obj.get("StorageClass") or "STANDARD", {})

    def _s3_gone(self, bucket: str, key: str) -> None:
        old = self.objects.pop((bucket, key), None)
        if old is not None:
            self.objects_gone.append((bucket, key, old[0], self.now() - old[1], old[2], old[3]))

    def _sqs(self, usage: Usage, operation: str, params: dict[str, Any], response: Any) -> None:
        def payload(entry: dict[str, Any]) -> int:
            attributes = entry.get("MessageAttributes") or {}
            return len(str(entry.get("MessageBody") or entry.get("Body") or "").encode()) + sum(
                len(k) + len(str(v.get("StringValue") or v.get("BinaryValue") or "")) + len(v.get("DataType", ""))
                for k, v in attributes.items())

        if operation == "SendMessage":
            usage.sqs += sqs_requests(payload(params))
        elif operation == "SendMessageBatch":
            usage.sqs += sqs_requests(sum(payload(e) for e in params["Entries"]))
        elif operation == "ReceiveMessage":
            usage.sqs += sqs_requests(sum(payload(m) for m in (response or {}).get("Messages", [])))
        else:
            usage.sqs += 1


_METER: Meter | None = None


def _counted(original: Any) -> Any:
    from botocore.exceptions import ClientError

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        meter = _METER
        if meter is None or meter.paused or getattr(client, "_cost_bench_raw", False) or meter.function is None:
            return original(client, operation, params)
        service = client.meta.service_model.service_name
        started = time.thread_time()
        before = meter._before(service, operation, params)
        meter.local.overhead += time.thread_time() - started
        try:
            response = original(client, operation, params)
        except ClientError as error:
            started = time.thread_time()
            meter._after(service, operation, params, None, error, before)
            meter.local.overhead += time.thread_time() - started
            raise
        started = time.thread_time()
        meter._after(service, operation, params, response, None, before)
        meter.local.overhead += time.thread_time() - started
        return response

    return counted


class LogCapture(io.TextIOBase):
    """sys.stdout while handlers run: what they print is CloudWatch Logs ingestion of the function printing it."""

    def __init__(self, meter: Meter):
        self.meter = meter

    def write(self, text: str) -> int:
        if self.meter.function is not None and not self.meter.paused:
            self.meter.usage[self.meter.function].log_bytes += len(text.encode("utf-8"))
        return len(text)


# ---- the simulation ----------------------------------------------------------------------------------------------

class Clock:
    """The simulated clock: time-machine moves time.time/datetime; time.monotonic follows it (the layer's caches)."""

    def __init__(self, coordinates: Any):
        self.coordinates = coordinates  # what time_machine.travel(...).start() returns
        self.t = time.time()

    def advance_to(self, t: float) -> None:
        if t > self.t:
            self.t = t
            self.coordinates.move_to(datetime.fromtimestamp(t, timezone.utc), tick=False)

    def __call__(self) -> float:
        return self.t


@dataclass
class _Pending:
    arrived: float
    record: dict[str, Any]
    receipt: str | None = None


class EventSources:
    """Lambda's event source mappings of the template, fed from moto's streams and queues (uncounted reads; the
    SQS pollers' receive and delete requests are added per batch, as Lambda makes them)."""

    POLL = 0.25  # seconds between looks at a stream or queue (Lambda polls a shard about 4 times a second)

    def __init__(self, meter: Meter, clock: Clock, invoke: Any):
        import boto3

        from maip_events_local.template import local_name, stream_consumers, table_logical_ids

        self.meter, self.clock, self.invoke = meter, clock, invoke
        self.consumers = stream_consumers()
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self.streams_client = boto3.client("dynamodbstreams", region_name=region)
        self.sqs = boto3.client("sqs", region_name=region)
        ddb = boto3.client("dynamodb", region_name=region)
        for client in (self.streams_client, self.sqs, ddb):
            client._cost_bench_raw = True
        self.pending: list[list[_Pending]] = [[] for _ in self.consumers]
        self.iterators: dict[str, list[list[Any]]] = {}  # table logical id -> [[stream arn, shard id, iterator]]
        self.queues: dict[str, str] = {}
        names = table_logical_ids()
        for consumer in self.consumers:
            if consumer.kind == "DynamoDB" and consumer.source not in self.iterators:
                arn = ddb.describe_table(TableName=names[consumer.source])["Table"].get("LatestStreamArn")
                shards = self.streams_client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"] if arn else []
                self.iterators[consumer.source] = [[arn, s["ShardId"], self.streams_client.get_shard_iterator(
                    StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]] for s in shards]
            elif consumer.kind == "SQS" and consumer.source not in self.queues:
                self.queues[consumer.source] = self.sqs.get_queue_url(QueueName=local_name(consumer.source))["QueueUrl"]
        self.last_poll = float("-inf")
        self.failures = 0

    def _poll(self) -> None:
        from maip_events_local.streams import lambda_stream_record, matches

        now = self.clock()
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        for source, shards in self.iterators.items():
            records = []
            for shard in shards:
                while shard[2]:
                    got = self.streams_client.get_records(ShardIterator=shard[2], Limit=1000)
                    shard[2] = got.get("NextShardIterator")
                    records += [lambda_stream_record(r, shard[0], region) for r in got.get("Records", [])]
                    if len(got.get("Records", [])) < 1000:
                        break
            for i, consumer in enumerate(self.consumers):
                if consumer.kind == "DynamoDB" and consumer.source == source:
                    self.pending[i] += [_Pending(now, r) for r in records
                                        if not consumer.filters or any(matches(f, r) for f in consumer.filters)]
        for i, consumer in enumerate(self.consumers):
            if consumer.kind != "SQS":
                continue
            from maip_events_local.streams import lambda_sqs_record

            url = self.queues[consumer.source]
            if not self._queue(consumer.source).approximate_number_of_messages:
                continue  # nothing visible: spare the request (a request through botocore costs ~20 ms here)
            arn = f"arn:aws:sqs:{region}:123456789012:{url.rsplit('/', 1)[-1]}"
            seen = {p.record["messageId"] for p in self.pending[i]}
            while True:
                got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=900,
                                               AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
                fresh = [m for m in got if m["MessageId"] not in seen]
                self.pending[i] += [_Pending(now, lambda_sqs_record(m, arn, region), m["ReceiptHandle"]) for m in fresh]
                if len(got) < 10:
                    break

    def step(self, now: float, final: bool = False) -> bool:
        """Deliver every batch due by `now` (with `final`, whatever waits); True when anything was delivered."""
        if now - self.last_poll >= self.POLL or final:
            self._poll()
            self.last_poll = now
        delivered = False
        for i, consumer in enumerate(self.consumers):
            queue = self.pending[i]
            while queue:
                full = len(queue) >= consumer.batch_size
                window = max(consumer.batching_window, self.POLL if consumer.kind == "DynamoDB" else 0.0)
                due = queue[consumer.batch_size - 1].arrived if full else queue[0].arrived + window
                if not full and due > now and not final:
                    break
                self.clock.advance_to(due)
                batch, self.pending[i] = queue[:consumer.batch_size], queue[consumer.batch_size:]
                queue = self.pending[i]
                self._deliver(consumer, batch)
                delivered = True
        return delivered

    def _deliver(self, consumer: Any, batch: list[_Pending]) -> None:
        response = self.invoke(consumer.function, {"Records": [p.record for p in batch]})
        failed = {f.get("itemIdentifier") for f in (response or {}).get("batchItemFailures") or [] if isinstance(f, dict)}
        if failed:
            self.failures += len(failed)
        if consumer.kind != "SQS":
            return
        usage = self.meter.usage[consumer.function.logical_id]
        # Lambda's poller: ReceiveMessage calls (10 messages each) and DeleteMessageBatch for what succeeded.
        for start in range(0, len(batch), 10):
            usage.requests["sqs.ReceiveMessage (event source)"] += 1
            usage.sqs += sqs_requests(sum(len(p.record["body"].encode()) for p in batch[start:start + 10]))
        done = [p for p in batch if p.record["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start:start + 10]
            self.sqs.delete_message_batch(QueueUrl=self.queues[consumer.source], Entries=[
                {"Id": str(n), "ReceiptHandle": p.receipt} for n, p in enumerate(chunk)])
            usage.requests["sqs.DeleteMessageBatch (event source)"] += 1
            usage.sqs += 1

    def _queue(self, logical_id: str) -> Any:
        """moto's queue itself: its message counts without a request."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        from maip_events_local.template import local_name

        return sqs_backends[DEFAULT_ACCOUNT_ID][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")].get_queue(local_name(logical_id))

    def waiting(self) -> bool:
        """Anything pending, or still in a queue (visible, in flight or delayed)?"""
        if any(self.pending):
            return True
        for source in self.queues:
            queue = self._queue(source)
            if queue.approximate_number_of_messages or queue.approximate_number_of_messages_delayed or \
                    queue.approximate_number_of_messages_not_visible:
                return True
        return False


@dataclass
class Scenario:  # events: as planned, then as simulated (the wall-time budget may cut it short)
    mode: str  # "single" or "batch50"
    rate: float  # events per second
    events: int


def scenario_events(rate: float, mode: str, seconds: float | None) -> int:
    """Events simulated per scenario: a few minutes of traffic at low rates, more events (seconds less) at high
    rates, so that one run stays within a few minutes on a small machine."""
    if seconds is not None:
        n = int(rate * seconds)
    else:
        n = {1: 300, 5: 900, 100: 6000, 1000: 20000}.get(int(rate), int(min(rate * 180, 20000)))
    step = BATCH if mode == "batch50" else 1
    return max(step, n // step * step)


def _set_history(tenant: str, days: int) -> str:
    """The tenant keeps `days` of history, set with the operator CLI (`tenants set-retention`): the archive tier's
    days where the CLI has them (the hot tier then keeps its default), else the one retention of today's main."""
    from maip_events_local import cli

    hot = next((str(p.get("Default")) for name, p in (_template().get("Parameters") or {}).items()
                if "hot" in name.lower() and str(p.get("Default", "")).isdigit()), "30")
    for args in (["--archive-days", str(days)], ["--hot-days", hot, "--archive-days", str(days)], ["--days", str(days)]):
        with redirect_stdout(io.StringIO()), _quiet_stderr():
            try:
                if cli.main(["tenants", "set-retention", "--tenant", tenant, *args, "--json"]) == 0:
                    return " ".join(args)
            except SystemExit:
                continue
    raise RuntimeError("tenants set-retention accepted neither --archive-days (with or without --hot-days) nor --days")


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    saved, sys.stderr = sys.stderr, io.StringIO()
    try:
        yield
    finally:
        sys.stderr = saved


def _setup_resources() -> dict[str, str]:
    """Tables, queues and KMS keys as `maip-events serve` creates them, plus the template's S3 buckets; returns KMS
    key id/ARN/alias -> KeySpec."""
    from maip_events import aws
    from maip_events_local import server
    from maip_events_local.template import kms_key_definitions

    server.create_resources()
    s3 = aws.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in buckets():
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    specs: dict[str, str] = {}
    kms = aws.client("kms")
    by_alias = {k["alias"]: k["create"].get("KeySpec", "SYMMETRIC_DEFAULT") for k in kms_key_definitions()}
    for alias in kms.list_aliases().get("Aliases", []):
        if alias["AliasName"] in by_alias and alias.get("TargetKeyId"):
            spec = by_alias[alias["AliasName"]]
            arn = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
            specs.update({alias["AliasName"]: spec, alias["TargetKeyId"]: spec, arn: spec, alias["AliasArn"]: spec})
    return specs


def run_scenario(scenario: Scenario, index: int, budget: float) -> dict[str, Any]:
    import time_machine
    from moto import mock_aws

    from maip_events import aws, settings
    from maip_events_local import functions
    from maip_events_local.gateway import build_event
    from maip_events_local.template import http_routes

    start = START + timedelta(days=3 * index)  # setup day, traffic day, the day after: scenarios never overlap
    traveller = time_machine.travel(start, tick=False)
    clock = Clock(traveller.start())
    real_monotonic = time.monotonic
    base = real_monotonic() - clock()
    time.monotonic = lambda: base + time.time()  # the layer's cache deadlines follow the simulated clock
    mock = mock_aws()
    mock.start()
    try:
        # A tenant's quota must admit the rate (the operator raises TenantRequestQuota for such a tenant).
        quota = _template().get("Parameters", {}).get("TenantRequestQuota", {}).get("Default", "100,200")
        requests_per_second = scenario.rate / (BATCH if scenario.mode == "batch50" else 1)
        if float(str(quota).split(",")[0]) < requests_per_second * 2:
            quota = f"{requests_per_second * 2:g},{requests_per_second * 4:g}"
        os.environ["MAIP_TENANT_QUOTA"] = str(quota)
        settings.reset()
        aws.reset()
        try:
            from maip_events_local import moto_patches

            moto_patches.install()
        except ImportError:
            pass
        kms_specs = _setup_resources()
        meter = Meter(tables(), kms_specs, clock)
        meter.install()

        from ingest import one_kb_event  # bench/ingest.py's ~1 KB event
        from maip_events.auth.keys import create_api_key

        tenant = f"cost-{scenario.mode}-{int(scenario.rate)}"
        key = create_api_key(tenant, ["*"])
        history = _set_history(tenant, max(HISTORIES.values()))
        headers = [("X-API-Key", key["api_key"]), ("X-Tenant-ID", tenant), ("Content-Type", "application/json"),
                   ("Host", "api.example.com")]
        routes = http_routes()
        path = "/v1/observability/events:batch" if scenario.mode == "batch50" else "/v1/observability/events"
        route = next(r for r in routes if r.method == "POST" and r.match(path) is not None)
        scheduled = schedules()
        scheduled_ids = {s.function.logical_id for s in scheduled}

        def invoke(function: Any, event: dict[str, Any]) -> Any:
            with meter.running(function.logical_id):
                # CPU time of this thread (moto answers in-process, so no I/O waits): what the handler and moto
                # computed, whatever else runs on the machine, less the bench's own counting.
                started = time.thread_time()
                try:
                    result = functions.invoke(function, event)
                except Exception as error:  # noqa: BLE001 - Lambda records a failed invocation; so does the bench
                    errors[function.logical_id] += 1
                    print(f"warning: {function.logical_id} failed: {type(error).__name__}: {error}", file=sys.stderr)
                    result = None
                seconds = max(0.0, time.thread_time() - started - meter.overhead)
            usage = meter.usage[function.logical_id]
            usage.invocations += 1
            usage.seconds += seconds
            usage.billed_ms += max(1, math.ceil(seconds * 1000))
            usage.log_bytes += LAMBDA_PLATFORM_LOG_BYTES
            return result

        errors: Counter = Counter()
        sources = EventSources(meter, clock, invoke)
        types = ["agent.registered", "agent.updated", "session.created"]

        def body(i: int) -> dict[str, Any]:
            event = one_kb_event(f"agent-{i % 10}")
            event["event_type"] = types[i % len(types)]
            return event

        def emit(i: int, count: int) -> int:
            payload = body(i) if scenario.mode == "single" else {"events": [body(i + j) for j in range(count)]}
            raw = json.dumps(payload).encode()
            event = build_event("POST", path, "", headers, raw, route, route.match(path), "203.0.113.7", uuid.uuid4().hex)
            status = int((invoke(route.function, event) or {}).get("statusCode", 500))
            meter.usage[route.function.logical_id].requests["apigateway.HttpRequest"] += math.ceil(max(len(raw), 1) / (512 * 1024))
            return status

        next_fire = {id(s): _next_fire(clock(), s) for s in scheduled}

        def fire_schedules(now: float) -> None:
            for s in scheduled:
                while next_fire[id(s)] <= now:
                    clock.advance_to(next_fire[id(s)])
                    invoke(s.function, _scheduled_event(s, next_fire[id(s)]))
                    next_fire[id(s)] += s.period

        step = BATCH if scenario.mode == "batch50" else 1
        with _stdout_to(LogCapture(meter)):
            meter.paused = True  # warm every handler's caches and imports, uncounted
            emit(0, step)
            clock.advance_to(clock() + 60)
            sources.step(clock(), final=True)
            _drain(sources, clock, fire=lambda now: None)
            meter.reset()
            meter.paused = False
            # Traffic starts the next day at the same hour: a retention change applies to TTLs from the next UTC day.
            t0 = start.timestamp() + DAY
            next_fire.update({id(s): _next_fire(t0, s) for s in scheduled})
            bad = 0
            wall, cpu = time.perf_counter(), time.process_time()
            # CPU seconds, not wall: other processes on the machine do not change how many events are simulated.
            budget *= 0.6 + 0.2 * math.log10(max(scenario.rate, 1))  # high rates need more events to fill batches
            for i in range(0, scenario.events, step):
                if i and time.process_time() - cpu > budget:
                    scenario.events = i  # the budget is spent: the figures are of the events sent so far
                    break
                now = t0 + i / scenario.rate
                sources.step(now)
                fire_schedules(now)
                clock.advance_to(now)
                bad += emit(i, step) >= 300
            traffic_end = clock()
            _drain(sources, clock, fire=fire_schedules)
            # Once the simulated day has closed: every scheduled function at its first firing after midnight.
            midnight = (math.floor(traffic_end / DAY) + 1) * DAY
            for s in scheduled:
                fire_at = _next_fire(midnight, s)
                clock.advance_to(fire_at)
                invoke(s.function, _scheduled_event(s, fire_at))
            _drain(sources, clock, fire=lambda now: None)
            meter.sweep_buckets(buckets())
            wall = time.perf_counter() - wall
            end = clock()
            meter.paused = True
        if bad:
            print(f"warning: {bad} emit requests were refused in {scenario.mode} at {scenario.rate:g}/s", file=sys.stderr)
        if sources.failures:
            print(f"warning: {sources.failures} records reported failed by consumers", file=sys.stderr)
        return report(scenario, meter, scheduled_ids, end, traffic_end - t0, wall, history)
    finally:
        mock.stop()
        time.monotonic = real_monotonic
        traveller.stop()


def _next_fire(now: float, s: Schedule) -> float:
    day = math.floor(now / DAY) * DAY
    fire = day + s.offset
    while fire < now:
        fire += s.period
    return fire


def _scheduled_event(s: Schedule, at: float) -> dict[str, Any]:
    if s.payload is not None:
        return s.payload
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{s.function.logical_id}"], "detail": {}}


def _drain(sources: EventSources, clock: Clock, fire: Any, limit: float = 3600.0) -> None:
    """Run the clock on until every stream batch and queued message (delayed ones too) has been delivered."""
    deadline = clock() + limit
    while clock() < deadline:
        now = clock() + EventSources.POLL
        fire(now)
        clock.advance_to(now)
        if sources.step(now, final=True):
            continue
        if not sources.waiting():
            return
        clock.advance_to(clock() + 5.0)  # only delayed messages left: SQS delays are whole seconds, often 30 or more


@contextmanager
def _stdout_to(stream: Any) -> Iterator[None]:
    saved, sys.stdout = sys.stdout, stream
    try:
        yield
    finally:
        sys.stdout = saved


# ---- the report --------------------------------------------------------------------------------------------------

def report(scenario: Scenario, meter: Meter, scheduled: set[str], end: float,
           traffic_seconds: float, wall: float, history: str) -> dict[str, Any]:
    n = scenario.events
    per_m = 1e6 / n
    lines: dict[str, float] = Counter()
    functions_out = {}
    for name, u in sorted(meter.usage.items()):
        memory, arch = function_settings(name) if name in _template()["Resources"] else (128, "arm64")
        lam = u.invocations * PRICES["lambda_request"][0] + u.billed_ms / 1000 * memory / 1024 * PRICES[f"lambda_gb_s_{arch}"][0]
        ddb_w = sum(u.wru.values()) * PRICES["ddb_wru"][0]
        ddb_r = sum(u.rru.values()) * PRICES["ddb_rru"][0] + u.streams_rru * PRICES["ddb_streams_rru"][0]
        s3 = sum(c * PRICES[S3_CLASSES.get(k, S3_CLASSES["STANDARD"])[1]][0] for k, c in u.s3_put.items()) + \
            sum(c * PRICES[S3_CLASSES.get(k, S3_CLASSES["STANDARD"])[2]][0] for k, c in u.s3_get.items())
        sqs = u.sqs * PRICES["sqs_request"][0]
        logs = u.log_bytes / GB * PRICES["logs_ingest_gb"][0]
        firehose = u.firehose_bytes / GB * PRICES["firehose_gb"][0]
        apigw = u.requests.get("apigateway.HttpRequest", 0) * PRICES["apigw_http_request"][0]
        costs = {"api_gateway": apigw, "lambda": lam, "dynamodb_writes": ddb_w, "dynamodb_reads": ddb_r, "s3_requests": s3,
                 "sqs": sqs, "kms": u.kms, "firehose": firehose, "logs": logs}
        if name in scheduled:
            lines["compaction"] += sum(costs.values())
        else:
            for line, dollars in costs.items():
                lines[line] += dollars
        functions_out[name] = {
            "invocations": u.invocations, "events_per_invocation": round(n / u.invocations, 1) if u.invocations else None,
            "billed_ms_per_invocation": round(u.billed_ms / u.invocations, 2) if u.invocations else None,
            "wru_per_event": round(sum(u.wru.values()) / n, 3), "rru_per_event": round(sum(u.rru.values()) / n, 3),
            "items_written_per_event": round(u.items_written / n, 3),
            "wru_per_event_by_table": {t: round(w / n, 3) for t, w in sorted(u.wru.items())},
            "requests_per_event": {r: round(c / n, 4) for r, c in sorted(u.requests.items())},
            "usd_per_million": {k: round(v * per_m, 4) for k, v in costs.items() if v},
        }
    storage: dict[str, dict[str, float]] = {}
    for label, days in HISTORIES.items():
        ddb = pitr = s3 = 0.0
        for (table, _), (total, base, written, expires) in meter.items.items():
            life = min(days, (expires - written) / DAY) if expires else days
            ddb += total / GB * max(life, 0) / DAYS_PER_MONTH * PRICES["ddb_storage_gb_month"][0]
            if meter.tables[table].pitr:
                pitr += base / GB * max(life, 0) / DAYS_PER_MONTH * PRICES["ddb_pitr_gb_month"][0]
        for total, _base, lifetime in meter.items_gone:
            ddb += total / GB * lifetime / DAY / DAYS_PER_MONTH * PRICES["ddb_storage_gb_month"][0]
        rules = buckets()
        for (bucket, key), (size, _, klass, tags) in meter.objects.items():
            s3 += s3_object_cost(size, float("inf"), klass, rules.get(bucket, ()), key, tags, days)
        for bucket, key, size, lifetime, klass, tags in meter.objects_gone:
            s3 += s3_object_cost(size, lifetime / DAY, klass, rules.get(bucket, ()), key, tags, days)
        storage[label] = {"dynamodb_storage": ddb * per_m, "dynamodb_pitr": pitr * per_m, "s3_storage": s3 * per_m}
    usd = {k: v * per_m for k, v in lines.items()}
    for label in HISTORIES:
        usd.update({f"{k}_{label}": v for k, v in storage[label].items()})
    request_lines = ("api_gateway", "lambda", "dynamodb_writes", "dynamodb_reads", "s3_requests", "sqs", "kms", "firehose",
                     "logs", "compaction")
    for label in HISTORIES:
        usd[f"total_{label}"] = sum(usd.get(k, 0.0) for k in request_lines) + sum(storage[label].values())
    counting = counting_figures(meter, n)
    hot = [(expires - written) / DAY for _, _, written, expires in meter.items.values() if expires]
    event_bytes = sum(meter.items[k][0] for k in meter.items) / n
    by_table: Counter = Counter()
    base_bytes: Counter = Counter()
    item_count: Counter = Counter()
    for (table, _), (total, base, *_rest) in meter.items.items():
        by_table[table] += total
        base_bytes[table] += base - 100
        item_count[table] += 1
    s3_bytes = sum(size for size, *_ in meter.objects.values()) / n
    return {
        "mode": scenario.mode, "rate": scenario.rate, "events": n, "http_requests": sum(
            u.requests.get("apigateway.HttpRequest", 0) for u in meter.usage.values()),
        "simulated_traffic_seconds": round(traffic_seconds, 1), "simulated_until": datetime.fromtimestamp(end, timezone.utc).isoformat(),
        "wall_seconds": round(wall, 1), "history_setting": history,
        "dynamodb_bytes_stored_per_event": round(event_bytes, 1), "s3_bytes_stored_per_event": round(s3_bytes, 1),
        "dynamodb_bytes_stored_per_event_by_table": {t: round(b / n, 1) for t, b in sorted(by_table.items())},
        "dynamodb_items_by_table": {t: {"items": c, "mean_item_bytes": round(base_bytes[t] / c)} for t, c in sorted(item_count.items())},
        "longest_item_lifetime_days": round(max(hot), 1) if hot else None,
        "wru_per_event": round(sum(sum(u.wru.values()) for u in meter.usage.values()) / n, 3),
        "rru_per_event": round(sum(sum(u.rru.values()) for u in meter.usage.values()) / n, 3),
        "functions": functions_out, "usd_per_million": {k: round(v, 4) for k, v in sorted(usd.items())},
        "counting": counting,
    }


def counting_figures(meter: Meter, n: int) -> dict[str, Any]:
    names = counting_tables()
    wru = sum(w for u in meter.usage.values() for t, w in u.wru.items() if t.split("/")[0] in names)
    counted = [(k, c) for k, c in meter.item_writes.items() if k[0] in names]
    top = max(counted, key=lambda kc: kc[1]) if counted else None
    anywhere = max(meter.item_writes.items(), key=lambda kc: kc[1]) if meter.item_writes else None
    return {
        "tables": names, "wru_per_event": round(wru / n, 3),
        "most_written_item": {"table": top[0][0], "key": json.loads(top[0][1]), "writes": top[1], "share_of_events": round(top[1] / n, 4)} if top else None,
        "most_written_item_any_table": {"table": anywhere[0][0], "key": json.loads(anywhere[0][1]), "writes": anywhere[1],
                                        "share_of_events": round(anywhere[1] / n, 4)} if anywhere else None,
    }


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        usd = r["usd_per_million"]
        target = TARGETS["single_1y"] if r["mode"] == "single" else TARGETS["batch_1y"]
        top = r["counting"]["most_written_item"]
        out.append({
            "mode": r["mode"], "rate": r["rate"],
            "total_1y_vs_target": round(usd["total_1y"] / target, 2), "target_1y": target,
            "seven_year_adds_vs_target": round((usd["total_7y"] - usd["total_1y"]) / TARGETS["seven_year_adds"], 2),
            "counting_wru_vs_target": round(r["counting"]["wru_per_event"] / TARGETS["counting_wru_per_event"], 2),
            "most_written_share_vs_target": round(top["share_of_events"] / TARGETS["most_written_share"], 2) if top else 0.0,
        })
    return out


LINES = [("API Gateway", "api_gateway"), ("Lambda", "lambda"), ("DynamoDB writes", "dynamodb_writes"),
         ("DynamoDB reads", "dynamodb_reads"), ("DynamoDB storage, 1 y", "dynamodb_storage_1y"),
         ("DynamoDB storage, 7 y", "dynamodb_storage_7y"), ("DynamoDB PITR, 1 y", "dynamodb_pitr_1y"),
         ("DynamoDB PITR, 7 y", "dynamodb_pitr_7y"), ("S3 requests", "s3_requests"), ("S3 storage, 1 y", "s3_storage_1y"),
         ("S3 storage, 7 y", "s3_storage_7y"), ("SQS", "sqs"), ("KMS", "kms"), ("Firehose", "firehose"),
         ("CloudWatch Logs", "logs"), ("compaction (scheduled functions)", "compaction"),
         ("TOTAL, 1-year history", "total_1y"), ("TOTAL, 7-year history", "total_7y")]


def print_text(results: list[dict[str, Any]]) -> None:
    print(f"AWS list prices, us-east-1, as of {PRICES_DATE}:")
    for name, (price, what) in PRICES.items():
        print(f"  {name:<28} ${price:.10g}  {what}")
    for r in results:
        print()
        print(f"== {r['mode']} at {r['rate']:g} events/s: {r['events']} events ({r['http_requests']} HTTP requests) over "
              f"{r['simulated_traffic_seconds']:g} simulated s, {r['wall_seconds']:g} s wall; history via "
              f"`tenants set-retention {r['history_setting']}`")
        print(f"   stored per event: DynamoDB {r['dynamodb_bytes_stored_per_event']:.0f} B (items + index entries + overhead), "
              f"S3 {r['s3_bytes_stored_per_event']:.0f} B; longest DynamoDB item lifetime {r['longest_item_lifetime_days']} days")
        print("   DynamoDB bytes per event by table (items, mean item bytes without indexes): " + ", ".join(
            f"{t} {b:.0f} ({r['dynamodb_items_by_table'][t]['items']}, {r['dynamodb_items_by_table'][t]['mean_item_bytes']})"
            for t, b in r["dynamodb_bytes_stored_per_event_by_table"].items()))
        print(f"   {'function':<26} {'invocations':>11} {'ev/inv':>7} {'ms/inv':>7} {'WRU/ev':>8} {'RRU/ev':>8} {'items/ev':>8}  write units by table")
        for name, f in r["functions"].items():
            if not (f["invocations"] or f["wru_per_event"] or f["rru_per_event"]):
                continue
            tables_ = ", ".join(f"{t} {w:g}" for t, w in f["wru_per_event_by_table"].items())
            print(f"   {name:<26} {f['invocations']:>11} {f['events_per_invocation'] or 0:>7g} {f['billed_ms_per_invocation'] or 0:>7g} "
                  f"{f['wru_per_event']:>8g} {f['rru_per_event']:>8g} {f['items_written_per_event']:>8g}  {tables_}")
        print(f"   {'all functions':<26} {'':>11} {'':>7} {'':>7} {r['wru_per_event']:>8g} {r['rru_per_event']:>8g}")
        usd = r["usd_per_million"]
        print("   $ per million events:")
        for label, key in LINES:
            if key in usd and (usd[key] or key.startswith("total")):
                print(f"     {label:<34} {usd[key]:>9.4f}")
        c = r["counting"]
        top = c["most_written_item"]
        print(f"   counting ({', '.join(c['tables']) or 'no counting table'}): {c['wru_per_event']:g} write units per event; most-written "
              f"item {json.dumps(top['key']) if top else '-'} written {top['writes'] if top else 0} times = "
              f"{top['share_of_events'] * 100 if top else 0:.2f} % of the tenant's events")
        anywhere = c["most_written_item_any_table"]
        if anywhere:
            print(f"   most-written item of any table: {anywhere['table']} {json.dumps(anywhere['key'])} "
                  f"{anywhere['writes']} writes = {anywhere['share_of_events'] * 100:.2f} % of events")
    print()
    print("summary ($ per million events; counting = write units per event to the counting tables):")
    print(f"   {'mode':<8} {'rate':>6} {'events':>7} {'WRU/ev':>8} {'counting':>9} {'top item':>9} {'RRU/ev':>7} "
          f"{'DynamoDB B/ev':>13} {'S3 B/ev':>8} {'$ 1 y':>9} {'$ 7 y':>9}")
    for r in results:
        top = r["counting"]["most_written_item"]
        print(f"   {r['mode']:<8} {r['rate']:>6g} {r['events']:>7} {r['wru_per_event']:>8.2f} {r['counting']['wru_per_event']:>9.2f} "
              f"{(top['share_of_events'] * 100 if top else 0):>8.2f}% {r['rru_per_event']:>7.2f} {r['dynamodb_bytes_stored_per_event']:>13.0f} "
              f"{r['s3_bytes_stored_per_event']:>8.0f} {r['usd_per_million']['total_1y']:>9.2f} {r['usd_per_million']['total_7y']:>9.2f}")
    print()
    print("ratios to issue 19's targets (<= 1.00 meets it; the $ targets are stated at 5 events/s):")
    print(f"   {'mode':<8} {'rate':>6}  {'1 y total/target':>17}  {'7 y extra/$0.50':>15}  {'counting WRU/1':>14}  {'top item/10 %':>13}")
    for q in ratios(results):
        print(f"   {q['mode']:<8} {q['rate']:>6g}  {q['total_1y_vs_target']:>11.2f} (${q['target_1y']:.2f})  "
              f"{q['seven_year_adds_vs_target']:>15.2f}  {q['counting_wru_vs_target']:>14.2f}  {q['most_written_share_vs_target']:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document (prices, every scenario, ratios)")
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES), help="events per second, comma-separated")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help="single and/or batch50")
    parser.add_argument("--seconds", type=float, help="simulated seconds of traffic per scenario (default: by rate)")
    parser.add_argument("--budget", type=float, default=12.0,
                        help="CPU seconds of traffic per scenario (x0.6 at 1 event/s .. x1.2 at 1,000/s): fewer events "
                             "are simulated once they are spent")
    args = parser.parse_args()
    for name, value in dict(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                            AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled").items():
        os.environ.setdefault(name, value)
    # As deployed: the template's log level, the caches' TTLs of a deployed Lambda (settings.py).
    log_level = _template().get("Parameters", {}).get("LogLevel", {}).get("Default", "INFO")
    os.environ.update(POWERTOOLS_LOG_LEVEL=str(log_level), MAIP_API_KEY_CACHE_TTL="5", MAIP_TENANT_SETTINGS_TTL="30",
                      MAIP_COUNTS_CACHE_TTL="10")
    os.environ.pop("MAIP_DYNAMODB_ENDPOINT", None)
    os.environ.pop("MAIP_LOCAL", None)
    results = []
    index = 0
    for mode in args.modes.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            scenario = Scenario(mode, rate, scenario_events(rate, mode, args.seconds))
            results.append(run_scenario(scenario, index, args.budget))
            index += 1
    if args.json:
        print(json.dumps({"prices_date": PRICES_DATE, "prices": {k: {"usd": v, "unit": u} for k, (v, u) in PRICES.items()},
                          "targets": TARGETS, "scenarios": results, "ratios": ratios(results)}, indent=1))
    else:
        print_text(results)


if __name__ == "__main__":
    main()
