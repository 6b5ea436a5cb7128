"""EventsTable access: keys, the write path and the read path.

Keys: a tenant's events are spread over `write_shards` partition keys `<tenant>#<shard>` (store/tenants.py), so
one tenant can exceed one partition's 1,000 WCU/s; every GSI partition key carries the shard too. The shard of
an event is a function of its id's random bits (`shard_of`), so a re-written event lands on the same key.

Writes: one accepted event is one PutItem of one item (plus, with an Idempotency-Key, its idempotency record in
the same TransactWriteItems). No counter is written here: counts are derived from the table's stream.

Reads: every shard `0 .. read_shards-1` is queried with the same key condition and the results merged newest
first (ids are time-ordered and unique, so merging by id gives one order with no duplicates or gaps). Listing
cost grows neither with a tenant's history nor with its density: `total` is summed from counts of closed
minutes and hours (store/counts.py) plus COUNT queries over partial minutes at explicit window edges, plus the
matches written since the counts' cursor (read-your-writes, _not_yet_counted), and a deep `offset` is found by
descending counts to a block entered from its nearer end. Days older than the tenant's hot tier are read from
the S3 archive (archive/reader.py). See README "Listing at scale".
"""
from __future__ import annotations

import functools
import heapq
import itertools
import json
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, NamedTuple

from aws_lambda_powertools import Logger
from ulid import ULID

from maip_events import aws
from maip_events.archive.reader import ArchiveReader
from maip_events.catalog import EVENT_TYPES, SEVERITIES
from maip_events.ids import EVENT_PREFIX, highest_event_id_ms, lowest_event_id_ms, parse_time
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store import counts, cursor
from maip_events.store.tenants import Retention, Shards, TenantSettingsStore

logger = Logger(service="maip-events")

TRANSACTION_MAX_ITEMS = 100
# Per shard, at most this many events a total counts from the events because the aggregation has not counted them
# yet (its lag: ~1-2 s of writes); beyond it (the aggregation stalled) the total trails the writes meanwhile.
UNCOUNTED_MAX = 20_000
BATCH_WRITE_MAX_ITEMS = 25  # BatchWriteItem's limit
_RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


@dataclass(frozen=True)
class EventFilter:
    """What a list/export matches: every given condition holds (AND). Built by maip_events.query.build_filter."""

    tenant_id: str
    agent_id: str | None = None
    event_type: str | None = None  # one exact type (ANDed with `types`)
    time_from: Any = None  # datetime | None
    time_to: Any = None
    resource_id: str | None = None
    types: frozenset[str] | None = None  # any of these exact types (None: any type)
    severities: frozenset[str] | None = None  # any of these (None: any severity)
    not_agents: frozenset[str] = frozenset()  # none of these agents (events without an agent match)
    not_resources: frozenset[str] = frozenset()
    empty: bool = False  # the conditions contradict each other: nothing matches

    def type_set(self) -> frozenset[str] | None:
        if self.event_type is None:
            return self.types
        return frozenset({self.event_type}) if self.types is None else self.types & {self.event_type}

    def matches_nothing(self) -> bool:
        types = self.type_set()
        return (self.empty or types is not None and not types or self.severities is not None and not self.severities
                or self.agent_id is not None and self.agent_id in self.not_agents
                or self.resource_id is not None and self.resource_id in self.not_resources)

    def scope(self) -> dict[str, Any]:
        """What a cursor is bound to."""
        types = self.type_set()
        found: dict[str, Any] = {
            "tenant": self.tenant_id,
            "agent": self.agent_id,
            "type": (next(iter(types)) if len(types) == 1 else sorted(types)) if types is not None else None,
            "from": self.time_from.isoformat() if self.time_from else None,
            "to": self.time_to.isoformat() if self.time_to else None,
        }
        extra = {"resource": self.resource_id, "severity": sorted(self.severities) if self.severities is not None else None,
                 "not_agents": sorted(self.not_agents), "not_resources": sorted(self.not_resources), "empty": self.empty}
        found.update({k: v for k, v in extra.items() if v})
        return found


@dataclass
class Page:
    events: list["ListedEvent"]
    total: int
    offset: int
    next_token: str | None


# ---- keys (README "Listing at scale") ---------------------------------------------------------------------

def shard_of(event_id: str, write_shards: int) -> int:
    """The write shard of an event: its ULID's 80 random bits modulo `write_shards` (deterministic per id)."""
    if write_shards <= 1:
        return 0
    ulid = ULID.from_str(event_id[len(EVENT_PREFIX):])
    return int.from_bytes(ulid.bytes[6:], "big") % write_shards


def partition_key(tenant_id: str, shard: int) -> str:
    return f"{tenant_id}#{shard}"  # tenant ids never contain '#': no key crosses tenants


def event_key(tenant_id: str, shard: int, event_id: str) -> dict[str, Any]:
    """The table key of one stored event."""
    return {"pk": {"S": partition_key(tenant_id, shard)}, "event_id": {"S": event_id}}


# Indexes (README "Listing at scale"): (name, partition-key attribute, the condition its key fixes). Each copy of
# an event in an index is one more write unit, so only the contract's filters have one, agent and type, plus
# warn/error severities (sparse: info events, most of them, are not copied). Other conditions are a
# FilterExpression on the chosen index or on the table; their totals come from counts where a dimension exists.
INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("by_agent", "agent_pk", ("agent",)),
    ("by_type", "type_pk", ("type",)),
    ("by_severity", "severity_pk", ("severity",)),
)
SPARSE_SEVERITIES = frozenset({"warn", "error"})  # the only severities by_severity holds
MAX_INDEX_FANOUT = 8  # at most this many index partitions (per shard) merged for one value set; else filtered


def index_key(prefix: str, index: str, values: dict[str, str]) -> str:
    """The partition-key value of `index` for these values (tenant ids, types and severities hold no '#'; an
    agent id, which may, comes last, so no two values share a key)."""
    name = {"by_agent": "agent", "by_type": "type", "by_severity": "severity"}[index]
    return f"{prefix}#{values[name]}"


def _conditions(flt: EventFilter) -> dict[str, list[str]]:
    """Equality conditions of the filter as value lists (any of them), by field."""
    found: dict[str, list[str]] = {}
    types = flt.type_set()
    if types is not None:
        found["type"] = sorted(types)
    if flt.agent_id is not None:
        found["agent"] = [flt.agent_id]
    if flt.resource_id is not None:
        found["resource"] = [flt.resource_id]
    if flt.severities is not None:
        found["severity"] = sorted(flt.severities)
    return found


@dataclass(frozen=True)
class Plan:
    """How a filter is read: the index, the partition-key values to query and merge (one per combination of
    the fields it fixes, per shard) and a FilterExpression for the conditions the index does not fix."""

    index: str | None
    key_attr: str
    keys: tuple[tuple[int, str], ...]  # (shard, partition-key value)
    residual: dict[str, Any] | None  # FilterExpression, ExpressionAttributeNames, ExpressionAttributeValues

    def parts(self) -> list[tuple[int, tuple[str | None, str, str]]]:
        return [(shard, (self.index, self.key_attr, value)) for shard, value in self.keys]

    def shards(self) -> set[int]:
        return {shard for shard, _ in self.keys}


@functools.lru_cache(maxsize=512)  # a few filters per tenant, read page after page
def plan_for(flt: EventFilter, shards: int) -> Plan:
    conditions = _conditions(flt)
    best: tuple[str, str, tuple[str, ...]] | None = None
    best_rank: tuple[int, int] | None = None
    for index in INDEXES:
        if not all(field in conditions for field in index[2]):
            continue
        if index[0] == "by_severity" and not set(conditions["severity"]) <= SPARSE_SEVERITIES:
            continue
        fanout = 1
        for field in index[2]:
            fanout *= len(conditions[field])
        if fanout > MAX_INDEX_FANOUT:
            continue
        rank = (-len(index[2]), fanout)
        if best_rank is None or rank < best_rank:
            best, best_rank = index, rank
    fixed = best[2] if best else ()
    keys: list[tuple[int, str]] = []
    for shard in range(shards):
        prefix = partition_key(flt.tenant_id, shard)
        if best is None:
            keys.append((shard, prefix))
            continue
        for combination in itertools.product(*(conditions[field] for field in fixed)):
            keys.append((shard, index_key(prefix, best[0], dict(zip(fixed, combination)))))
    return Plan(best[0] if best else None, best[1] if best else "pk", tuple(keys),
                _residual(flt, {f: v for f, v in conditions.items() if f not in fixed}))


_ATTRIBUTE = {"type": "event_type", "agent": "agent_id", "resource": "resource_id", "severity": "severity"}


def _residual(flt: EventFilter, conditions: dict[str, list[str]]) -> dict[str, Any] | None:
    clauses: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def placeholders(field: str, items: list[str]) -> str:
        start = len(values)
        for i, item in enumerate(items):
            values[f":f{start + i}"] = {"S": item}
        return ", ".join(f":f{start + i}" for i in range(len(items)))

    for field, items in conditions.items():
        names[f"#{field}"] = _ATTRIBUTE[field]
        if field == "type" and len(items) > len(EVENT_TYPES) // 2:  # shorter as what it leaves out
            clauses.append(f"NOT #{field} IN ({placeholders(field, sorted(set(EVENT_TYPES) - set(items)))})")
        else:
            clauses.append(f"#{field} IN ({placeholders(field, items)})")
    for field, excluded in (("agent", flt.not_agents), ("resource", flt.not_resources)):
        if excluded:
            names[f"#{field}"] = _ATTRIBUTE[field]
            unequal = " AND ".join(f"#{field} <> {p}" for p in placeholders(field, sorted(excluded)).split(", "))
            clauses.append(f"(attribute_not_exists(#{field}) OR ({unequal}))")
    if not clauses:
        return None
    return {"FilterExpression": " AND ".join(clauses), "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def to_item(event: StoredEvent) -> dict[str, Any]:
    prefix = partition_key(event.tenant_id, event.shard)
    item: dict[str, Any] = {
        "pk": {"S": prefix},
        "event_id": {"S": event.event_id},
        "tenant_id": {"S": event.tenant_id},
        "shard": {"N": str(event.shard)},
        "event_type": {"S": event.event_type},
        "severity": {"S": event.severity},
        "created_at": {"S": event.created_at},
        "payload": {"S": event.payload_json},
        "type_pk": {"S": f"{prefix}#{event.event_type}"},
    }
    if event.severity in SPARSE_SEVERITIES:
        item["severity_pk"] = {"S": f"{prefix}#{event.severity}"}
    if event.agent_id is not None:
        item["agent_id"] = {"S": event.agent_id}
        item["agent_pk"] = {"S": f"{prefix}#{event.agent_id}"}
    if event.resource_id is not None:
        item["resource_id"] = {"S": event.resource_id}
    if event.expires_at is not None:
        item["expires_at"] = {"N": str(event.expires_at)}
    return item


def from_item(item: dict[str, Any]) -> StoredEvent:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return StoredEvent(
        tenant_id=item["tenant_id"]["S"],
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        agent_id=text("agent_id"),
        resource_id=text("resource_id"),
        severity=item["severity"]["S"],
        created_at=item["created_at"]["S"],
        payload_json=text("payload") or "{}",
        expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
        shard=int(item["shard"]["N"]) if "shard" in item else 0,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class Counted(NamedTuple):
    """A window's count buckets, their marks (None: nothing counted yet), whether they came from the cache, and how
    many uncounted matches a first page should read so as to count them itself (no COUNT query)."""

    buckets: list[counts.Bucket]
    marks: dict[int, str] | None
    cached: bool
    uncounted_guess: int = 0

    @property
    def total(self) -> int:
        return sum(b.count for b in self.buckets)


@dataclass
class WriteOutcome:
    """What a multi-event write achieved, per event id: stored, or not stored (and why)."""

    stored: set[str]
    failed: dict[str, str]  # event id -> error text (for logs; never shown to callers)


class EventStore:
    def __init__(self, client: Any = None, table: str | None = None, counters_table: str | None = None,
                 tenants: TenantSettingsStore | None = None, clock: Callable[[], datetime] | None = None,
                 archive: ArchiveReader | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().events_table
        self.counters_table = counters_table or get_settings().counters_table  # read side (ingest-count)
        self.tenants = tenants or TenantSettingsStore(self.client)
        self.clock = clock or (lambda: datetime.now(timezone.utc))  # tests move time to check retention
        self.archive = archive or ArchiveReader()  # the S3 tier of days older than the hot one (its client is lazy)

    # ---- writes ---------------------------------------------------------------------------------------

    def prepare(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """Events as they will be stored: TTL from the tenant's retention (whole days), shard from its write shards.

        Two cached reads per tenant at most (one settings item); call once before any write so a retry can
        re-drive exactly the same items (batch idempotency records keep the shard and TTL).
        """
        policies: dict[str, tuple[Retention, Shards]] = {}
        done = []
        for event in events:
            if event.tenant_id not in policies:
                policies[event.tenant_id] = self.tenants.policy(event.tenant_id)
            retention, shards = policies[event.tenant_id]
            done.append(event.model_copy(update={
                "expires_at": retention.expires_at(_ms(parse_time(event.created_at))),
                "shard": shard_of(event.event_id, shards.write),
            }))
        return done

    def _put_request(self, event: StoredEvent) -> dict[str, Any]:
        return {"TableName": self.table, "Item": to_item(event), "ConditionExpression": "attribute_not_exists(pk)"}

    def put(self, event: StoredEvent, prepared: bool = False) -> bool:
        """One PutItem of one item (the event). False if the id was already stored."""
        if not prepared:
            event = self.prepare([event])[0]
        try:
            self.client.put_item(**self._put_request(event))
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def put_with(self, event: StoredEvent, record: dict[str, Any]) -> dict[str, Any] | None:
        """The event and one more Put (an idempotency record) in one TransactWriteItems: both or neither.

        `record` is a Put (TableName, Item, ConditionExpression...). Returns None when both were written, or the
        existing item that failed the record's condition (ReturnValuesOnConditionCheckFailure=ALL_OLD).
        """
        operations = [{"Put": self._put_request(event)}, {"Put": {**record, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]
        attempt = 0
        while True:
            try:
                self.client.transact_write_items(TransactItems=operations)
                return None
            except self.client.exceptions.TransactionCanceledException as err:
                reasons = err.response.get("CancellationReasons", [])
                codes = [r.get("Code") for r in reasons]
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    return reasons[1].get("Item") or {}
                if not set(codes) & _RETRYABLE or attempt >= 9:
                    raise
            attempt += 1
            time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))

    def put_many(self, events: list[StoredEvent], prepared: bool = False) -> WriteOutcome:
        """Batch path: BatchWriteItem requests of <= 25 events (one write per event, no transaction surcharge).

        Puts are unconditional: a batch's ids are fresh ULIDs, and re-driving a planned batch rewrites exactly
        the same items (DynamoDB writes no stream record for a put that changes nothing), so an already-stored id
        simply counts as stored. A request that fails does not stop the others; its events' truth is then read
        back (consistent BatchGetItem) so the caller can report per event what is stored.
        """
        if not prepared:
            events = self.prepare(events)
        outcome = WriteOutcome(stored=set(), failed={})
        for start in range(0, len(events), BATCH_WRITE_MAX_ITEMS):
            chunk = events[start : start + BATCH_WRITE_MAX_ITEMS]
            try:
                self._batch_write(chunk)
                outcome.stored.update(e.event_id for e in chunk)
            except Exception as err:  # botocore ClientError, timeouts...: find out what was written
                try:
                    present = self._present(chunk)
                except Exception:
                    present = set()
                outcome.stored.update(present)
                outcome.failed.update({e.event_id: f"{type(err).__name__}: {err}" for e in chunk if e.event_id not in present})
        return outcome

    def _batch_write(self, chunk: list[StoredEvent]) -> None:
        request = {self.table: [{"PutRequest": {"Item": to_item(e)}} for e in chunk]}
        for attempt in range(10):
            response = self.client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
        raise RuntimeError(f"{sum(len(v) for v in request.values())} items stayed unprocessed")

    def _present(self, events: list[StoredEvent]) -> set[str]:
        """Ids of `events` that are stored (consistent reads by key)."""
        keys = [event_key(e.tenant_id, e.shard, e.event_id) for e in events]
        return {item["event_id"]["S"] for item in self._batch_get(keys, ConsistentRead=True, ProjectionExpression="event_id")}

    def _batch_get(self, keys: list[dict[str, Any]], **options: Any) -> Iterator[dict[str, Any]]:
        """The table's items with these keys, 100 keys a BatchGetItem, unprocessed keys retried with backoff (an
        error if some stay unprocessed: a caller never mistakes a throttled read for a missing item)."""
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table: {"Keys": keys[start:start + 100], **options}}
            for attempt in range(10):
                response = self.client.batch_get_item(RequestItems=request)
                yield from response.get("Responses", {}).get(self.table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
            else:
                raise RuntimeError("keys stayed unprocessed")

    def get_many(self, tenant_id: str, event_ids: list[str]) -> list[StoredEvent]:
        """The stored events with these ids, in the given order (ids no longer stored are skipped); ids the table no
        longer holds (past the hot tier) are read from the archive.

        An id's shard depends on the write count when it was stored, so every read shard's key is tried.
        """
        found: dict[str, StoredEvent] = {}
        keys = [event_key(tenant_id, shard, i) for i in dict.fromkeys(event_ids)
                for shard in range(self.tenants.shards(tenant_id).read)]
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table: {"Keys": keys[start : start + 100]}}
            for _ in range(8):
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    event = from_item(item)
                    found[event.event_id] = event
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        missing = [i for i in event_ids if i not in found]
        if missing:
            found.update((e.event_id, e) for e in map(from_item, self.archive.get_many(tenant_id, missing)))
        return [found[i] for i in event_ids if i in found]

    # ---- reads ----------------------------------------------------------------------------------------
    # Every read is a key-condition Query per write shard of the tenant, merged newest first (event ids are
    # unique and time-ordered, so a keyset cursor on the id is exact across shards). Items are fetched
    # lazily, about (needed / shards) per shard and request, so a page reads ~ its own size whatever the shards.

    def _plan(self, flt: EventFilter) -> Plan:
        return plan_for(flt, self.tenants.shards(flt.tenant_id).read)

    def _now_edge(self) -> int:
        """Where an open window's counts are expected to end (ms): now, plus a minute of client clock skew."""
        return _ms(self.clock()) + 60_000

    def _window(self, flt: EventFilter) -> tuple[int, int | None]:
        """[low, high) in ms: the filter's inclusive from/to (ids have ms precision), cut at the archive's horizon (what
        is listed at all; older than the hot tier is read from the archive)."""
        low = self.tenants.tiers(flt.tenant_id).visible_from(_ms(self.clock()))
        if flt.time_from:
            low = max(low, -(-_micros(flt.time_from) // 1000))
        high = _micros(flt.time_to) // 1000 + 1 if flt.time_to else None
        return low, high

    def _query_args(self, part: tuple[str | None, str, str], low: int, high: int | None, ascending: bool = False,
                    residual: dict[str, Any] | None = None) -> dict[str, Any]:
        index, key_attr, key_value = part
        args: dict[str, Any] = {
            "TableName": self.table,
            # Key attribute names are no reserved words; the table holds nothing but events (sort key = event id).
            "KeyConditionExpression": f"{key_attr} = :pk AND event_id >= :low",
            "ExpressionAttributeValues": {":pk": {"S": key_value}, ":low": {"S": lowest_event_id_ms(low)}},
            "ScanIndexForward": ascending,  # newest first unless asked
        }
        if high is not None:
            args["KeyConditionExpression"] = f"{key_attr} = :pk AND event_id BETWEEN :low AND :high"
            args["ExpressionAttributeValues"][":high"] = {"S": highest_event_id_ms(high - 1)}
        if residual:
            args["FilterExpression"] = residual["FilterExpression"]
            args["ExpressionAttributeNames"] = dict(residual["ExpressionAttributeNames"])
            args["ExpressionAttributeValues"].update(residual["ExpressionAttributeValues"])
        if index:
            args["IndexName"] = index
        else:
            args["ConsistentRead"] = True  # GSIs cannot; the base table gives read-after-write
        return args

    def _start_key(self, shard: int, part: tuple[str | None, str, str], flt: EventFilter, event_id: str) -> dict[str, Any]:
        index, key_attr, key_value = part
        key = event_key(flt.tenant_id, shard, event_id)
        if index:
            key[key_attr] = {"S": key_value}
        return key

    def _items(self, flt: EventFilter, shard: int, part: tuple[str | None, str, str], low: int, high: int | None,
               ascending: bool, after: str | None, page: int | None, residual: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        args = self._query_args(part, low, high, ascending, residual)
        if after:
            args["ExclusiveStartKey"] = self._start_key(shard, part, flt, after)
        if page:
            args["Limit"] = page
        while True:
            response = self.client.query(**args)
            if part[0] is not None and response["Items"]:
                self._add_payloads(flt.tenant_id, response["Items"])
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _add_payloads(self, tenant_id: str, items: list[dict[str, Any]]) -> None:
        """Index copies hold no payload (a copy of a 1 KB event would store it again, README "Listing at scale"):
        one BatchGetItem per 100 items of a page brings it from the table."""
        by_id = {item["event_id"]["S"]: item for item in items}
        keys = [event_key(tenant_id, int(item.get("shard", _SHARD_0)["N"]), event_id) for event_id, item in by_id.items()]
        for found in self._batch_get(keys, ProjectionExpression="event_id, payload"):
            if "payload" in found:
                by_id[found["event_id"]["S"]]["payload"] = found["payload"]

    def _hot_from(self, flt: EventFilter) -> int:
        """Where the hot tier starts (ms): older days are read from the archive."""
        return self.tenants.tiers(flt.tenant_id).hot_from(_ms(self.clock()))

    def _merged(self, flt: EventFilter, low: int, high: int | None, ascending: bool = False, after: str | None = None,
                need: int | None = None) -> Iterator[dict[str, Any]]:
        """The matching items of [low, high) (strictly past `after`), in id order, across tiers: the hot part from
        the table, the older part from the archive (newest first: the table, then the archive), each read only when
        the iteration reaches it."""
        hot_from = self._hot_from(flt)
        if low >= hot_from:
            return self._hot(flt, low, high, ascending, after, need)
        cold_high = hot_from if high is None else min(high, hot_from)
        hot: Iterator[dict[str, Any]] = iter(())
        if high is None or hot_from < high:
            start = lowest_event_id_ms(hot_from)
            if not after or after >= start:
                hot = self._hot(flt, hot_from, high, ascending, after, need)
            elif ascending:  # the cursor is still in the archive: the whole hot part follows it
                hot = self._hot(flt, hot_from, high, ascending, None, need)
            # (newest first with a cursor in the archive: nothing of the hot part is left)
        cold = self.archive.items(flt, low, cold_high, ascending=ascending, after=after)  # a generator: reads on demand
        return itertools.chain(cold, hot) if ascending else itertools.chain(hot, cold)

    def _hot(self, flt: EventFilter, low: int, high: int | None, ascending: bool, after: str | None,
             need: int | None) -> Iterator[dict[str, Any]]:
        """The table's matching items of every partition of the plan in [low, high) (strictly past `after`), in id
        order, fetched lazily: each partition is asked for about its share of `need` at a time."""
        plan = self._plan(flt)
        parts = plan.parts()
        page = None if need is None else (need if len(parts) == 1 else -(-need // len(parts)) + 1)
        streams = [self._items(flt, shard, part, low, high, ascending, after, page, plan.residual) for shard, part in parts]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda item: item["event_id"]["S"], reverse=not ascending)

    def _count_range(self, flt: EventFilter, low: int, high: int | None, above: dict[int, str] | None = None) -> int:
        """Matching events in [low, high): the hot part by COUNT queries (what the index holds, after the residual
        filter), the part older than the hot tier from the archive. With `above`, only hot events, only in its
        shards and only ids above the shard's given id (the aggregation's lag is always in the hot tier)."""
        hot_from = self._hot_from(flt)
        total = 0
        if low < hot_from:
            if above is None:
                total = self.archive.count(flt, low, hot_from if high is None else min(high, hot_from))
            low = hot_from
            if high is not None and low >= high:
                return total
        plan = self._plan(flt)
        for shard, part in plan.parts():
            args = {**self._query_args(part, low, high, residual=plan.residual), "Select": "COUNT"}
            if above is not None:
                if shard not in above:
                    continue
                bounds = args["ExpressionAttributeValues"]
                bounds[":low"] = {"S": max(bounds[":low"]["S"], above[shard] + "0")}  # + "0": the smallest longer id
                if ":high" in bounds and bounds[":low"]["S"] > bounds[":high"]["S"]:
                    continue
                args["Limit"] = UNCOUNTED_MAX
            scanned = 0
            while True:
                response = self.client.query(**args)
                total += response["Count"]
                scanned += response.get("ScannedCount", response["Count"])
                if "LastEvaluatedKey" not in response:
                    break
                if above is not None:
                    if scanned >= UNCOUNTED_MAX:
                        logger.warning("count aggregation behind: total trails the writes",
                                       extra={"uncounted_over": UNCOUNTED_MAX, "partition": part[2]})
                        break
                    args["Limit"] = UNCOUNTED_MAX - scanned
                args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return total

    # ---- counts -----------------------------------------------------------------------------------------
    # A filter with one value per field, on a combination of fields that has a count dimension, is a "cell":
    # its total is summed from its buckets. Other filters are sums and differences of cells (a value set is the
    # sum of its values' cells, or all minus the values it leaves out; a negated agent/resource is the total
    # minus the cell with that agent/resource); only what cannot be written so is counted from the events.

    @staticmethod
    def _dimension(flt: EventFilter) -> str | None:
        if flt.not_agents or flt.not_resources or (flt.severities is not None and len(flt.severities) != 1):
            return None
        types = flt.type_set()
        if types is not None and len(types) != 1:
            return None
        return counts.dimension(next(iter(types)) if types else None, flt.agent_id, flt.resource_id,
                                next(iter(flt.severities)) if flt.severities else None)

    def _reader(self, flt: EventFilter) -> counts.CountReader | None:
        dim = self._dimension(flt)
        if dim is None:
            return None
        return counts.CountReader(self.client, self.counters_table, flt.tenant_id, dim,
                                  lambda low, high: self._count_range(flt, low, high))

    def _exact_count(self, flt: EventFilter, low: int, high: int | None) -> int | None:
        """The filter's count from count buckets, or None when it cannot be composed from cells."""
        if flt.matches_nothing():
            return 0
        reader = self._reader(flt)
        if reader is not None:
            counted = self._counted(flt, reader, low, high, cached=False)
            return counted.total + sum(self._not_yet_counted(flt, counted.marks, counted.buckets, low, high, None, False).values())
        for field, excluded in (("agent_id", flt.not_agents), ("resource_id", flt.not_resources)):
            if excluded:
                whole = replace(flt, **{"not_agents" if field == "agent_id" else "not_resources": frozenset()})
                parts = [whole] + [replace(whole, **{field: value}) for value in sorted(excluded)]
                found = [self._exact_count(part, low, high) for part in parts]
                return None if None in found else found[0] - sum(found[1:])  # type: ignore[operator]
        for field, chosen, domain in (("types", flt.type_set(), EVENT_TYPES), ("severities", flt.severities, SEVERITIES)):
            if chosen is None or len(chosen) == 1:
                continue
            left_out = sorted(set(domain) - chosen)
            base = replace(flt, event_type=None) if field == "types" else flt
            if len(chosen) <= len(left_out) + 1:
                found = [self._exact_count(replace(base, **{field: frozenset({v})}), low, high) for v in sorted(chosen)]
                return None if None in found else sum(found)  # type: ignore[arg-type]
            found = [self._exact_count(replace(base, **{field: None}), low, high)]
            found += [self._exact_count(replace(base, **{field: frozenset({v})}), low, high) for v in left_out]
            return None if None in found else found[0] - sum(found[1:])  # type: ignore[operator]
        return None

    def _total(self, flt: EventFilter, low: int, high: int | None) -> int:
        found = self._exact_count(flt, low, high)
        return self._count_range(flt, low, high) if found is None else found

    def count(self, flt: EventFilter) -> int:
        low, high = self._window(flt)
        if flt.matches_nothing() or high is not None and low >= high:
            return 0
        return self._total(flt, low, high)

    def iterate(self, flt: EventFilter, after_event_id: str | None = None, page_size: int = 500,
                ascending: bool = False) -> Iterator[StoredEvent]:
        """Every visible matching event, newest first (or oldest first), starting after `after_event_id`."""
        low, high = self._window(flt)
        if flt.matches_nothing() or high is not None and low >= high:
            return
        for item in self._merged(flt, low, high, ascending=ascending, after=after_event_id, need=page_size):
            yield from_item(item)

    def _counted(self, flt: EventFilter, reader: counts.CountReader, low: int, high: int | None, cached: bool) -> Counted:
        """The window's buckets and their marks. With `cached`, a first page may reuse the buckets read for the
        same window moments ago (MAIP_COUNTS_CACHE_TTL, deployed Lambdas only): exact all the same, since the
        marks say which events they hold and the page counts newer ones from what it reads (or reads the buckets
        again when it cannot). Partial edges counted from the events and windows whose start moved past a
        bucket are never reused."""
        shards = self._plan(flt).shards()
        key = (self.counters_table, flt.tenant_id, reader.dim, high, len(shards))
        ttl = get_settings().counts_cache_ttl
        if cached and ttl > 0:
            hit = _COUNTED.get(key)
            if hit and hit[0] > time.monotonic() and hit[1] <= low and all(b.start >= low for b in hit[2]):
                return Counted(hit[2], hit[3], True, self._uncounted_guess(hit[4], hit[3]))
        buckets = reader.buckets(low, high, self._now_edge())
        marks = reader.counted_through(shards)
        if ttl > 0 and marks is not None and all(b.level != counts.RAW for b in buckets):
            if len(_COUNTED) >= 1024:  # bounded: a Lambda serves few windows at a time
                _COUNTED.clear()
            _COUNTED[key] = (time.monotonic() + ttl, low, buckets, marks, reader.newest_rate)
        return Counted(buckets, marks, False, self._uncounted_guess(reader.newest_rate, marks))

    def _uncounted_guess(self, per_minute: int, marks: dict[int, str] | None) -> int:
        """About how many matches were written since the counts' cursor, at the rate of the newest counted minute
        (+25 %), capped at a page's worth of reading (~1 MB of items)."""
        if not marks or not per_minute:
            return 0
        since = _ms(self.clock()) - counts.mark_end(next(iter(marks.values())))
        return min(1000, per_minute * max(since, 0) * 5 // (4 * 60_000) + 8)

    def _not_yet_counted(self, flt: EventFilter, marks: dict[int, str] | None, buckets: list[counts.Bucket], low: int,
                         high: int | None, seen: list[ListedEvent] | None, complete: bool) -> dict[int, int]:
        """Matching events of [low, high) that the buckets do not hold yet: ids above their shard's mark (what the
        aggregation has counted), outside the partial edges the buckets already counted from the events. Taken
        from the items a first page read newest first (`seen`, all of them if `complete`) where they reach down
        to the shard's mark, else counted with COUNT queries above the marks: those cover the newest minute or so
        (minutes are counted once closed), so they stay small while the aggregation keeps up (UNCOUNTED_MAX
        bounds them when it does not). Per shard."""
        if marks is None:
            return {}
        for bucket in buckets:
            if bucket.level == counts.RAW and bucket.start == low:
                low = bucket.end
            if bucket.level == counts.RAW and high is not None and bucket.end == high:
                high = bucket.start
        if high is not None and low >= high:
            return {}
        start = lowest_event_id_ms(low)
        floor = {str(shard): max(mark + "0", start) for shard, mark in marks.items()}  # keyed as ListedEvent.shard
        top = highest_event_id_ms(high - 1) if high is not None else None
        unseen = set(floor)  # shards whose uncounted events this page may not all have read
        found: dict[int, int] = {}
        if seen is not None:
            # Newest first per shard: a shard is done once an item below its floor shows up (or the page read all).
            above: dict[str, int] = {}
            reached: set[str] = set()
            for e in seen:
                if e.shard in reached:
                    continue
                if e.event_id < floor[e.shard]:
                    reached.add(e.shard)
                    if len(reached) == len(floor):
                        break
                elif top is None or e.event_id <= top:
                    above[e.shard] = above.get(e.shard, 0) + 1
            done = unseen if complete else reached
            found = {int(shard): n for shard, n in above.items() if shard in done}
            unseen = unseen - done
        for shard in unseen:
            found[int(shard)] = self._count_range(flt, low, high, above={int(shard): marks[int(shard)]})
        return found

    def _past_uncounted(self, flt: EventFilter, reader: counts.CountReader, counted: Counted, uncounted: dict[int, int] | None,
                        low: int, high: int | None, offset: int, limit: int) -> Iterator[dict[str, Any]]:
        """Items from the `offset`-th newest on while the aggregation may lag: the newest events, down to the
        oldest mark of a shard with uncounted events (the aggregation's few seconds of lag), are skipped over
        from the events themselves; a deeper position is found from the counts of the window cut there, where
        every event is counted."""
        marks = counted.marks or {}
        lagging = [marks[shard] for shard, n in (uncounted or {}).items() if n]
        if not lagging:
            return self._at_offset(flt, reader, counted.buckets, low, high, offset, limit)
        oldest = min(lagging)
        cut = max(low, counts.mark_end(oldest)) if oldest else low
        # Every event of [cut, high), counted or not (bounded like the uncounted ones: UNCOUNTED_MAX a shard).
        zone = self._count_range(flt, cut, high, above={shard: "" for shard in self._plan(flt).shards()})
        if offset < zone:
            return itertools.islice(self._merged(flt, low, high, need=offset + limit + 1), offset, None)
        older = reader.buckets(low, cut, self._now_edge())
        return self._at_offset(flt, reader, older, low, high, offset - zone, limit)

    def _at_offset(self, flt: EventFilter, reader: counts.CountReader, buckets: list[counts.Bucket], low: int, high: int | None,
                   offset: int, limit: int) -> Iterator[dict[str, Any]]:
        """Items from the `offset`-th newest on: the block holding it is found from counts, then entered from its
        nearer end (skipping at most STOP_SKIP events or half a leaf block)."""
        found = reader.locate(buckets, offset)
        if not found:
            return iter(())
        bucket, skip = found
        if skip <= bucket.count - 1 - skip:
            return itertools.islice(self._merged(flt, low, bucket.end, need=skip + limit + 1), skip, None)
        rank = bucket.count - skip  # from the oldest end: the rank-th oldest event of the block opens the page
        older_first = list(itertools.islice(self._merged(flt, max(low, bucket.start), bucket.end, ascending=True, need=rank), rank))
        if len(older_first) < rank:  # counts ahead of the events (should not happen): skip from the newest end
            return itertools.islice(self._merged(flt, low, bucket.end, need=skip + limit + 1), skip, None)
        first = older_first[-1]
        return itertools.chain([first], self._merged(flt, low, high, after=first["event_id"]["S"], need=limit))

    def page(self, flt: EventFilter, limit: int, offset: int = 0, next_token: str | None = None, order: str = "desc") -> Page:
        """One page, newest first (`order="asc"`: oldest first); a next_token continues in the order it was made with."""
        state = cursor.decode(next_token, flt.scope()) if next_token else None
        position = int(state["position"]) if state else offset
        ascending = (state.get("order", "desc") if state else order) == "asc"
        low, high = self._window(flt)
        if flt.matches_nothing() or high is not None and low >= high:
            return Page(events=[], total=0, offset=position, next_token=None)
        reader = self._reader(flt)
        first = not state and not offset and not ascending  # reads the newest matches: they show the uncounted
        counted = self._counted(flt, reader, low, high, cached=first) if reader is not None else None
        total = counted.total if counted is not None else self._total(flt, low, high)
        uncounted: dict[int, int] | None = None
        if state:  # keyset: continue strictly after the last id served, whatever arrived meanwhile
            items = self._merged(flt, low, high, ascending=ascending, after=str(state["after"]), need=limit + 1)
        elif offset and reader is not None and counted is not None and not ascending:
            uncounted = self._not_yet_counted(flt, counted.marks, counted.buckets, low, high, None, False)
            items = self._past_uncounted(flt, reader, counted, uncounted, low, high, offset, limit)
        elif offset:  # other filters and oldest-first offsets skip what precedes the page
            items = itertools.islice(self._merged(flt, low, high, ascending=ascending, need=offset + limit + 1), offset, None)
        else:  # a first page also reads what was written since the counts' cursor, to count it without a COUNT query
            extra = counted.uncounted_guess if first and counted is not None else 0
            items = self._merged(flt, low, high, ascending=ascending, need=limit + 1 + extra)
        events, has_more, peeked = _take(items, limit)
        if counted is not None and uncounted is None:  # read-your-writes: plus what the aggregation has not counted yet
            seen, complete = (events + peeked if first else None), not has_more
            if first and has_more and counted.uncounted_guess:
                more = [_listed_event(ListedEvent, (item["event_id"]["S"], "", item.get("shard", _SHARD_0)["N"]))
                        for item in itertools.islice(items, counted.uncounted_guess)]
                seen, complete = seen + more, len(more) < counted.uncounted_guess
            uncounted = self._not_yet_counted(flt, counted.marks, counted.buckets, low, high, seen, complete)
        total += sum((uncounted or {}).values())
        # `total` never contradicts what this page read (it matters where counts can trail the writes: buckets
        # from before marks, a stalled aggregation): a first page with nothing after it holds every match, and
        # any page proves at least its position plus what it shows.
        if not has_more and not state and offset == 0:
            total = len(events)
        elif events:
            total = max(total, position + len(events) + (1 if has_more else 0))
        token = None
        if has_more and events:
            place: dict[str, Any] = {"after": events[-1].event_id, "position": position + len(events)}
            if ascending:
                place["order"] = "asc"
            token = cursor.encode(flt.scope(), place)
        return Page(events=events, total=total, offset=position, next_token=token)


# (counters table, tenant, dimension, window end, shards) -> (deadline, window start, buckets, marks, rate): see _counted
_COUNTED: dict[tuple[Any, ...], tuple[float, int, list[counts.Bucket], dict[int, str], int]] = {}
PAGE_MAX_BYTES = 5_000_000  # Lambda answers at most 6 MB: a page stops before ~5 MB and continues with next_token
_quote = json.encoder.encode_basestring  # the C encoder json.dumps(str, ensure_ascii=False) uses


class ListedEvent(NamedTuple):  # made with _listed_event: the generated __new__ costs ~0.5 us an item
    """A listed event as the JSON text of its list item, built from the stored item without a model: the stored
    metadata text is spliced in as it is (it was stored canonical, see events.serialize_metadata)."""

    event_id: str
    json: str
    shard: str = "0"  # the write shard, as stored

    def list_item(self) -> dict[str, Any]:
        return json.loads(self.json)


def list_item_json(item: dict[str, Any]) -> str:
    get = item.get
    # Only the caller-chosen ids need escaping: the event id, created_at, catalog type and severity are ours and
    # plain ASCII by construction (validated on the way in). _quote is json.dumps(str, ensure_ascii=False)'s own
    # encoder, without its per-call dispatch (50 items per page).
    agent, resource = get("agent_id"), get("resource_id")
    payload = get("payload")
    return (f'{{"event_id":"{item["event_id"]["S"]}","event_type":"{item["event_type"]["S"]}",'
            f'"agent_id":{_quote(agent["S"]) if agent else "null"},"resource_id":{_quote(resource["S"]) if resource else "null"},'
            f'"severity":"{item["severity"]["S"]}","payload":{payload["S"] if payload else "{}"},'
            f'"timestamp":"{item["created_at"]["S"]}"}}')


_SHARD_0 = {"N": "0"}  # items written before write shards existed
_listed_event = tuple.__new__


def _take(items: Iterator[dict[str, Any]], limit: int) -> tuple[list[ListedEvent], bool, list[ListedEvent]]:
    """Up to `limit` listed events (fewer if the page would pass PAGE_MAX_BYTES), whether more follow, and the
    one read past the page (if any)."""
    read = list(itertools.islice(items, limit + 1))
    texts = [list_item_json(item) for item in read[:limit]]
    if sum(map(len, texts)) * 4 + len(texts) > PAGE_MAX_BYTES:  # may pass the cap (UTF-8: <= 4 bytes a character)
        size, kept = 0, 0
        for text in texts:
            size += len(text.encode("utf-8", "surrogatepass")) + 1
            if kept and size > PAGE_MAX_BYTES:
                break
            kept += 1
        texts = texts[:kept]
    keys = [(item["event_id"]["S"], item.get("shard", _SHARD_0)["N"]) for item in read]  # id and shard of each
    events = [_listed_event(ListedEvent, (event_id, text, shard)) for (event_id, shard), text in zip(keys, texts)]
    peeked = [_listed_event(ListedEvent, (event_id, "", shard)) for event_id, shard in keys[len(events):len(events) + 1]]
    return events, bool(peeked), peeked
