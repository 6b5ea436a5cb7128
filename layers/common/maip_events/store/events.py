"""EventsTable access. Writes store events only (counts come from the stream, store/counts.py); every read is a
key-condition Query.

Listing cost does not grow with a tenant's history nor with its density: `total` is summed from count buckets
plus COUNT queries over at most two partial 32 ms edges, and a deep `offset` is found by descending bucket counts
to a block it enters from the nearer end, skipping at most a few events. See README "Listing at scale".
"""
from __future__ import annotations

import heapq
import itertools
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, NamedTuple

from maip_events import aws
from maip_events.ids import EVENT_PREFIX, highest_event_id, lowest_event_id, parse_time
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store import counts, cursor
from maip_events.store.tenants import Retention, TenantSettingsStore

TRANSACTION_MAX_ITEMS = 100
_RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


@dataclass(frozen=True)
class EventFilter:
    tenant_id: str
    agent_id: str | None = None
    event_type: str | None = None
    time_from: Any = None  # datetime | None
    time_to: Any = None

    def scope(self) -> dict[str, Any]:
        """What a cursor is bound to."""
        return {
            "tenant": self.tenant_id,
            "agent": self.agent_id,
            "type": self.event_type,
            "from": self.time_from.isoformat() if self.time_from else None,
            "to": self.time_to.isoformat() if self.time_to else None,
        }


@dataclass
class Page:
    events: list["ListedEvent"]
    total: int
    offset: int
    next_token: str | None


# Index name, partition-key attribute and how its value is built; tenant first so no query crosses tenants.
def _index_for(flt: EventFilter) -> tuple[str | None, str, str]:
    if flt.agent_id is not None and flt.event_type is not None:
        return "by_type_agent", "tenant_type_agent", f"{flt.tenant_id}#{flt.event_type}#{flt.agent_id}"
    if flt.agent_id is not None:
        return "by_agent", "tenant_agent", f"{flt.tenant_id}#{flt.agent_id}"
    if flt.event_type is not None:
        return "by_type", "tenant_type", f"{flt.tenant_id}#{flt.event_type}"
    return None, "tenant_id", flt.tenant_id


def to_item(event: StoredEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": {"S": event.tenant_id},
        "event_id": {"S": event.event_id},
        "event_type": {"S": event.event_type},
        "severity": {"S": event.severity},
        "created_at": {"S": event.created_at},
        "payload": {"S": event.payload_json},
        "tenant_type": {"S": f"{event.tenant_id}#{event.event_type}"},
    }
    if event.agent_id is not None:
        item["agent_id"] = {"S": event.agent_id}
        item["tenant_agent"] = {"S": f"{event.tenant_id}#{event.agent_id}"}
        item["tenant_type_agent"] = {"S": f"{event.tenant_id}#{event.event_type}#{event.agent_id}"}
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
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _at(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class EventStore:
    def __init__(self, client: Any = None, table: str | None = None, counters_table: str | None = None,
                 tenants: TenantSettingsStore | None = None, clock: Callable[[], datetime] | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().events_table
        self.counters_table = counters_table or get_settings().counters_table
        self.tenants = tenants or TenantSettingsStore(self.client)
        self.clock = clock or (lambda: datetime.now(timezone.utc))  # tests move time to check retention

    # ---- writes ---------------------------------------------------------------------------------------

    def _with_expiry(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """The TTL comes from the tenant's retention (whole days), so an event and its buckets expire together."""
        policies: dict[str, Retention] = {}
        done = []
        for event in events:
            policy = policies.get(event.tenant_id) or policies.setdefault(event.tenant_id, self.tenants.retention(event.tenant_id))
            done.append(event.model_copy(update={"expires_at": policy.expires_at(_ms(parse_time(event.created_at)))}))
        return done

    def _operations(self, events: list[StoredEvent]) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = [{"Put": {
            "TableName": self.table, "Item": to_item(e), "ConditionExpression": "attribute_not_exists(event_id)",
        }} for e in events]
        return ops

    def _transact(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """Write events atomically; returns the events that were new.

        An event whose id is already stored (a retried write) is dropped and the rest retried, so counts never
        include an event twice. Conflicts with concurrent writers on a hot bucket are retried with jitter.
        """
        attempt = 0
        while events:
            try:
                self.client.transact_write_items(TransactItems=self._operations(events))
                return events
            except self.client.exceptions.TransactionCanceledException as err:
                reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
                duplicates = {i for i, code in enumerate(reasons[: len(events)]) if code == "ConditionalCheckFailed"}
                if duplicates:
                    events = [e for i, e in enumerate(events) if i not in duplicates]
                    continue
                if not set(reasons) & _RETRYABLE or attempt >= 9:
                    raise
            attempt += 1
            time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
        return events

    def put(self, event: StoredEvent) -> bool:
        """One write request of the event. False if the id was already stored."""
        return bool(self._transact(self._with_expiry([event])))

    def put_many(self, events: list[StoredEvent]) -> None:
        """Batch path: transactions of <= 100 events; already-stored ids are skipped (safe to retry the batch).
        """
        pending = self._with_expiry(events)
        for start in range(0, len(pending), TRANSACTION_MAX_ITEMS):
            self._transact(pending[start:start + TRANSACTION_MAX_ITEMS])

    # ---- reads ----------------------------------------------------------------------------------------
    # Every read is a key-condition Query per write shard of the tenant, merged newest first (event ids are
    # unique and time-ordered, so a keyset cursor on the id is exact across shards). Items are fetched
    # lazily, about (needed / shards) per shard and request, so a page reads ~ its own size whatever the shards.

    def _partitions(self, flt: EventFilter) -> list[tuple[str | None, str, str]]:
        """(index, partition-key attribute, its value) of every partition the filter's events may be in."""
        return [_index_for(flt)]

    def _window(self, flt: EventFilter) -> tuple[int, int | None]:
        """[low, high) in ms: the filter's inclusive from/to (ids have ms precision), cut at the retention horizon."""
        low = self.tenants.retention(flt.tenant_id).visible_from(_ms(self.clock()))
        if flt.time_from:
            low = max(low, -(-_micros(flt.time_from) // 1000))
        high = _micros(flt.time_to) // 1000 + 1 if flt.time_to else None
        return low, high

    def _query_args(self, part: tuple[str | None, str, str], low: int, high: int | None, ascending: bool = False) -> dict[str, Any]:
        index, key_attr, key_value = part
        top = highest_event_id(_at(high - 1)) if high is not None else EVENT_PREFIX + "\U0010ffff"
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND event_id BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": key_attr},
            "ExpressionAttributeValues": {":pk": {"S": key_value}, ":low": {"S": lowest_event_id(_at(low))}, ":high": {"S": top}},
            "ScanIndexForward": ascending,  # newest first unless asked
        }
        if index:
            args["IndexName"] = index
        else:
            args["ConsistentRead"] = True  # GSIs cannot; the base table gives read-after-write
        return args

    def _start_key(self, part: tuple[str | None, str, str], flt: EventFilter, event_id: str) -> dict[str, Any]:
        index, key_attr, key_value = part
        key = {"tenant_id": {"S": flt.tenant_id}, "event_id": {"S": event_id}}
        if index:
            key[key_attr] = {"S": key_value}
        return key

    def _items(self, flt: EventFilter, part: tuple[str | None, str, str], low: int, high: int | None, ascending: bool,
               after: str | None, page: int | None) -> Iterator[dict[str, Any]]:
        args = self._query_args(part, low, high, ascending)
        if after:
            args["ExclusiveStartKey"] = self._start_key(part, flt, after)
        if page:
            args["Limit"] = page
        while True:
            response = self.client.query(**args)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _merged(self, flt: EventFilter, low: int, high: int | None, ascending: bool = False, after: str | None = None,
                need: int | None = None) -> Iterator[dict[str, Any]]:
        """The matching items of every shard in [low, high) (strictly past `after`), in id order, fetched lazily."""
        parts = self._partitions(flt)
        page = None if need is None else (need if len(parts) == 1 else -(-need // len(parts)) + 1)
        streams = [self._items(flt, part, low, high, ascending, after, page) for part in parts]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda item: item["event_id"]["S"], reverse=not ascending)

    def _count_range(self, flt: EventFilter, low: int, high: int) -> int:
        total = 0
        for part in self._partitions(flt):
            args = {**self._query_args(part, low, high), "Select": "COUNT"}
            while True:
                response = self.client.query(**args)
                total += response["Count"]
                if "LastEvaluatedKey" not in response:
                    break
                args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return total

    def _reader(self, flt: EventFilter) -> counts.CountReader:
        return counts.CountReader(self.client, self.counters_table, flt.tenant_id,
                                  counts.dimension(flt.event_type, flt.agent_id),
                                  lambda low, high: self._count_range(flt, low, high))

    def count(self, flt: EventFilter) -> int:
        low, high = self._window(flt)
        if high is not None and low >= high:
            return 0
        return sum(b.count for b in self._reader(flt).buckets(low, high))

    def iterate(self, flt: EventFilter, after_event_id: str | None = None, page_size: int = 500) -> Iterator[StoredEvent]:
        """Every visible matching event, newest first, starting after `after_event_id`."""
        low, high = self._window(flt)
        if high is not None and low >= high:
            return
        for item in self._merged(flt, low, high, after=after_event_id, need=page_size):
            yield from_item(item)

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

    def page(self, flt: EventFilter, limit: int, offset: int = 0, next_token: str | None = None) -> Page:
        state = cursor.decode(next_token, flt.scope()) if next_token else None
        position = int(state["position"]) if state else offset
        low, high = self._window(flt)
        if high is not None and low >= high:
            return Page(events=[], total=0, offset=position, next_token=None)
        reader = self._reader(flt)
        buckets = reader.buckets(low, high)
        total = sum(b.count for b in buckets)
        if state:  # keyset: continue strictly after the last id served, whatever arrived meanwhile
            items = self._merged(flt, low, high, after=str(state["after"]), need=limit + 1)
        elif offset:
            items = self._at_offset(flt, reader, buckets, low, high, offset, limit)
        else:
            items = self._merged(flt, low, high, need=limit + 1)
        events, has_more = _take(items, limit)
        token = None
        if has_more and events:
            token = cursor.encode(flt.scope(), {"after": events[-1].event_id, "position": position + len(events)})
        return Page(events=events, total=total, offset=position, next_token=token)


PAGE_MAX_BYTES = 5_000_000  # Lambda answers at most 6 MB: a page stops before ~5 MB and continues with next_token
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ListedEvent(NamedTuple):
    """A listed event as the JSON text of its list item, built from the stored item without a model: the stored
    metadata text is spliced in as it is (it was stored canonical, see events.serialize_metadata)."""

    event_id: str
    json: str

    def list_item(self) -> dict[str, Any]:
        return json.loads(self.json)


def list_item_json(item: dict[str, Any]) -> str:
    def text(name: str) -> str:
        value = item.get(name)
        return _dumps(value["S"]) if value else "null"

    payload = item["payload"]["S"] if "payload" in item else "{}"
    return (f'{{"event_id":{text("event_id")},"event_type":{text("event_type")},"agent_id":{text("agent_id")},'
            f'"resource_id":{text("resource_id")},"severity":{text("severity")},"payload":{payload},"timestamp":{text("created_at")}}}')


def _take(items: Iterator[dict[str, Any]], limit: int) -> tuple[list[ListedEvent], bool]:
    """Up to `limit` listed events (fewer if the page would pass PAGE_MAX_BYTES) and whether more follow."""
    events: list[ListedEvent] = []
    size = 0
    for item in items:
        if len(events) == limit:
            return events, True
        text = list_item_json(item)
        size += len(text.encode("utf-8", "surrogatepass")) + 1
        if events and size > PAGE_MAX_BYTES:
            return events, True
        events.append(ListedEvent(item["event_id"]["S"], text))
    return events, False
