"""EventsTable access. Every write is one transaction (event + its count buckets); every read is a key-condition Query.

Listing cost does not grow with a tenant's history: `total` is summed from count buckets (store/counts.py)
plus COUNT queries over at most two partial minutes, and a deep `offset` is found by walking bucket counts
down to one minute, so only that minute's newer events are read and skipped. See README "Listing at scale".
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

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
    events: list[StoredEvent]
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
        rows = ((e.tenant_id, e.event_type, e.agent_id, _ms(parse_time(e.created_at)), e.expires_at) for e in events)
        ops += [counts.update_op(self.counters_table, key, n, exp) for key, (n, exp) in counts.increments(rows).items()]
        return ops

    def _transact(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """Write events + aggregated bucket increments atomically; returns the events that were new.

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
        """One TransactWriteItems request: the event and its 3-12 bucket increments. False if the id was already stored."""
        return bool(self._transact(self._with_expiry([event])))

    def put_many(self, events: list[StoredEvent]) -> None:
        """Batch path: transactions of <= 100 items (events + their increments, aggregated per chunk).

        Each event is all-or-nothing with its counts; already-stored ids are skipped (safe to retry the batch).
        """
        pending = self._with_expiry(events)
        chunk: list[StoredEvent] = []
        keys: set[tuple[str, str]] = set()
        for event in pending:
            mine = {(counts.counter_id(event.tenant_id, code, dim), counts.label(code, _ms(parse_time(event.created_at))))
                    for dim in counts.dimensions(event.event_type, event.agent_id) for code, _, _ in counts.GRANULARITIES}
            if chunk and len(chunk) + 1 + len(keys | mine) > TRANSACTION_MAX_ITEMS:
                self._transact(chunk)
                chunk, keys = [], set()
            chunk.append(event)
            keys |= mine
        if chunk:
            self._transact(chunk)

    # ---- reads ----------------------------------------------------------------------------------------

    def _window(self, flt: EventFilter) -> tuple[int, int | None]:
        """[low, high) in ms: the filter's inclusive from/to (ids have ms precision), cut at the retention horizon."""
        low = self.tenants.retention(flt.tenant_id).visible_from(_ms(self.clock()))
        if flt.time_from:
            low = max(low, -(-_micros(flt.time_from) // 1000))
        high = _micros(flt.time_to) // 1000 + 1 if flt.time_to else None
        return low, high

    def _query_args(self, flt: EventFilter, low: int, high: int | None) -> dict[str, Any]:
        index, key_attr, key_value = _index_for(flt)
        top = highest_event_id(_at(high - 1)) if high is not None else EVENT_PREFIX + "\U0010ffff"
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND event_id BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": key_attr},
            "ExpressionAttributeValues": {":pk": {"S": key_value}, ":low": {"S": lowest_event_id(_at(low))}, ":high": {"S": top}},
            "ScanIndexForward": False,  # newest first
        }
        if index:
            args["IndexName"] = index
        else:
            args["ConsistentRead"] = True  # GSIs cannot; the base table gives read-after-write
        return args

    def _start_key(self, flt: EventFilter, event_id: str) -> dict[str, Any]:
        index, key_attr, key_value = _index_for(flt)
        key = {"tenant_id": {"S": flt.tenant_id}, "event_id": {"S": event_id}}
        if index:
            key[key_attr] = {"S": key_value}
        return key

    def _count_range(self, flt: EventFilter, low: int, high: int) -> int:
        total, args = 0, {**self._query_args(flt, low, high), "Select": "COUNT"}
        while True:
            response = self.client.query(**args)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _reader(self, flt: EventFilter) -> counts.CounterReader:
        return counts.CounterReader(self.client, self.counters_table, flt.tenant_id,
                                    counts.dimension(flt.event_type, flt.agent_id),
                                    lambda low, high: self._count_range(flt, low, high))

    def count(self, flt: EventFilter) -> int:
        low, high = self._window(flt)
        if high is not None and low >= high:
            return 0
        return sum(b.count for b in self._reader(flt).buckets(low, high))

    def _read(self, args: dict[str, Any], skip: int, limit: int) -> tuple[list[StoredEvent], bool]:
        """`limit` events after skipping `skip`; reads skip + limit + 1 items at most (the +1 tells if more follow)."""
        args = {**args, "Limit": skip + limit + 1}
        events: list[StoredEvent] = []
        while True:
            response = self.client.query(**args)
            for item in response["Items"]:
                if skip:
                    skip -= 1
                elif len(events) == limit:
                    return events, True
                else:
                    events.append(from_item(item))
            if "LastEvaluatedKey" not in response:
                return events, False
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            args["Limit"] = skip + limit + 1 - len(events)

    def iterate(self, flt: EventFilter, after_event_id: str | None = None, page_size: int = 500) -> Iterator[StoredEvent]:
        """Every visible matching event, newest first, starting after `after_event_id`."""
        low, high = self._window(flt)
        if high is not None and low >= high:
            return
        args = {**self._query_args(flt, low, high), "Limit": page_size}
        if after_event_id:
            args["ExclusiveStartKey"] = self._start_key(flt, after_event_id)
        while True:
            response = self.client.query(**args)
            for item in response["Items"]:
                yield from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def page(self, flt: EventFilter, limit: int, offset: int = 0, next_token: str | None = None) -> Page:
        state = cursor.decode(next_token, flt.scope()) if next_token else None
        low, high = self._window(flt)
        if high is not None and low >= high:
            return Page(events=[], total=0, offset=int(state["position"]) if state else offset, next_token=None)
        reader = self._reader(flt)
        buckets = reader.buckets(low, high)
        total = sum(b.count for b in buckets)
        events: list[StoredEvent] = []
        has_more = False
        if state:  # keyset: continue strictly after the last id served, whatever arrived meanwhile
            after, position = str(state["after"]), int(state["position"])
            args = self._query_args(flt, low, high)
            args["ExclusiveStartKey"] = self._start_key(flt, after)
            events, has_more = self._read(args, 0, limit)
        else:
            position = offset
            found = reader.locate(buckets, offset) if offset else None
            if offset == 0 or found:
                top, skip = (found[0].end if found else high), (found[1] if found else 0)
                events, has_more = self._read(self._query_args(flt, low, top), skip, limit)
        token = None
        if has_more and events:
            token = cursor.encode(flt.scope(), {"after": events[-1].event_id, "position": position + len(events)})
        return Page(events=events, total=total, offset=position, next_token=token)
