"""CountsTable: every count of events (list `total`, deep offsets, GET /v1/observability/metrics), written once
per closed block of time, never once per event.

Events are immutable, so the count of a closed block of time never changes. The closer (metrics/aggregate.py,
driven by the events stream) counts each closed UTC minute of a tenant from the events table, once, and writes:

- minute maps: pk `<tenant>#mc` (catalog dimensions: `all`, `t=<type>`, `s=<sev>`, `ts=<type>=<sev>`) and pk
  `<tenant>#mx` (agent dimensions: `a=<agent key>`, `ta=<type>=<agent key>`, plus `v`, the raw agent ids), sk
  `YYYY-MM-DDTHH:MM`; one attribute per dimension holding its count. One or two items a minute however many
  events and dimensions: this is what makes counting cheap at low rates. Kept for the hot tier.
- sub-minute maps of dense blocks (more than SPLIT events): pk `<tenant>#b<L>`, sk the first L characters of the
  ISO time (18: ten seconds, 19: a second, 21: 100 ms, 22: 10 ms), every dimension; what deep offsets descend.
- hour buckets, when an hour is closed: pk `<tenant>#h#<dimension>`, sk `YYYY-MM-DDTHH`, `n`; and the metrics
  buckets pk `<tenant>#m#<total|event_type|severity|agent_id>`, sk `<hour>#<value key>`, `n`, `value`. Kept for
  the archive tier, so totals stay exact for archived days. Written from the hour's minute maps, then
- the hour's marker, sk `YYYY-MM-DDTHH:~` in both minute partitions (it sorts after the hour's minutes): every
  hour up to a marker is in hour buckets.

Every item is a pure function of the closed block's events: a repeated or concurrent closer writes the same
items again (no transactions, no checkpoints). Items are written oldest first and the marker last, so a reader
that finds the newest minute map (or marker) knows that everything before its end is counted ("the cursor"):
a list counts only the newer events itself (read-your-writes, see EventStore.page). An event stored late into a
closed minute (an emit slower than the grace) makes the closer count that minute (and hour) again.

Dimension keys are bounded: tenant ids (<= 128, no '#'), catalog types and severities are plain; an agent id (up
to 256 characters of anything) enters keys only as a 128-bit SHA-256 prefix (`agent_key`). Resource ids and
agent+severity have no counts: such totals are counted from the events.
"""
from __future__ import annotations

import hashlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

HOUR, MINUTE = 13, 16  # lengths of the ISO time prefixes that name an hour and a minute
SUB_LEVELS = (18, 19, 21, 22)  # ten seconds, a second, 100 ms, 10 ms
RAW = 0  # a partial block at a window edge, counted from the events themselves
SPLIT = 64  # a closed block with more events than this also gets maps of its sub-blocks
UNIT_MS = {HOUR: 3_600_000, MINUTE: 60_000, 18: 10_000, 19: 1_000, 21: 100, 22: 10}
CHILD = {HOUR: MINUTE, MINUTE: 18, 18: 19, 19: 21, 21: 22}
MARKER = ":~"  # sk suffix of an hour's marker (after "HH:59")
MAP_MAX_BYTES = 300_000  # a minute map above this is split into chunks `<minute>#<k>` (DynamoDB items: 400 KB)
RESERVED = {"pk", "sk", "n", "v", "expires_at"}


def agent_key(agent_id: str) -> str:
    """What stands for an agent id inside keys: 32 hex chars, whatever the id holds ('#', emoji, controls)."""
    return hashlib.sha256(agent_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def dimensions(event_type: str, agent_id: str | None, severity: str) -> list[str]:
    """Every dimension an event is counted in: one per list filter (or pair) that has counts."""
    dims = ["all", f"t={event_type}", f"s={severity}", f"ts={event_type}={severity}"]
    if agent_id is not None:
        agent = agent_key(agent_id)
        dims += [f"a={agent}", f"ta={event_type}={agent}"]
    return dims


def dimension(event_type: str | None, agent_id: str | None, resource_id: str | None = None,
              severity: str | None = None) -> str | None:
    """The one dimension whose counts are exactly the events matching all the given values (None: none is kept,
    e.g. a resource, or an agent with a severity: such totals are counted from the events)."""
    if resource_id is not None or (agent_id is not None and severity is not None):
        return None
    if agent_id is not None:
        agent = agent_key(agent_id)
        return f"ta={event_type}={agent}" if event_type is not None else f"a={agent}"
    if event_type is not None:
        return f"ts={event_type}={severity}" if severity is not None else f"t={event_type}"
    return f"s={severity}" if severity is not None else "all"


def is_agent_dimension(dim: str) -> bool:
    return dim.startswith(("a=", "ta="))


# ---- time prefixes -------------------------------------------------------------------------------------------
def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}"


def prefix(ms: int, level: int) -> str:
    return iso(ms)[:level]


def floor(ms: int, level: int) -> int:
    return ms - ms % UNIT_MS[level]


def ceil(ms: int, level: int) -> int:
    return -(-ms // UNIT_MS[level]) * UNIT_MS[level]


def prefix_start(text: str) -> int:
    """Start (ms) of the block an ISO time prefix names ("2026-11-23T07", "2026-11-23T07:36:5", ...)."""
    full = text + "0000-01-01T00:00:00.000"[len(text):]
    moment = datetime.strptime(full[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1000 + int(full[20:23])


def event_ms(event_id: str) -> int:
    from maip_events.ids import EVENT_PREFIX, ULID_ALPHABET

    ms = 0
    for char in event_id[len(EVENT_PREFIX):len(EVENT_PREFIX) + 10]:
        ms = ms * 32 + ULID_ALPHABET.index(char)
    return ms


def mark_of(cursor: int) -> str:
    """The per-shard mark readers compare ids with: the largest id before `cursor` (ids above it are uncounted)."""
    from maip_events.ids import highest_event_id_ms

    return highest_event_id_ms(cursor - 1)


def mark_end(mark: str) -> int:
    """The cursor a mark stands for (inverse of `mark_of`)."""
    return event_ms(mark) + 1


# ---- keys ----------------------------------------------------------------------------------------------------
def minute_pk(tenant_id: str, agents: bool) -> str:
    return f"{tenant_id}#{'mx' if agents else 'mc'}"  # tenant ids never contain '#': no key crosses tenants


def sub_pk(tenant_id: str, level: int) -> str:
    return f"{tenant_id}#b{level}"


def hour_pk(tenant_id: str, dim: str) -> str:
    return f"{tenant_id}#h#{dim}"


METRIC_DIMENSIONS = ("total", "event_type", "severity", "agent_id")


def metric_pk(tenant_id: str, dimension_name: str) -> str:
    return f"{tenant_id}#m#{dimension_name}"


def hour_of(created_at: str) -> str:
    return created_at[:HOUR]  # "2026-11-23T07" of "2026-11-23T07:36:56.123Z"


# ---- counting one block ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockCounts:
    """What a block of events adds to each dimension, and the raw agent ids behind the agent keys."""

    counts: Counter
    agents: dict[str, str]

    @classmethod
    def of(cls, events: Iterable[Any]) -> "BlockCounts":
        counts: Counter = Counter()
        agents: dict[str, str] = {}
        for event in events:
            counts.update(dimensions(event.event_type, event.agent_id, event.severity))
            if event.agent_id is not None:
                agents[agent_key(event.agent_id)] = event.agent_id
        return cls(counts, agents)


def _number(value: int) -> dict[str, str]:
    return {"N": str(value)}


class CountWriter:
    """Writes the items of closed blocks (see the module docstring); every write is an idempotent put."""

    def __init__(self, client: Any, table: str, tenant_id: str):
        self.client, self.table, self.tenant_id = client, table, tenant_id

    def minute(self, start: int, events: list[Any], expires_at: int) -> None:
        """The maps of one closed minute (and of its dense sub-blocks), sub-blocks first."""
        self._sub_blocks(MINUTE, start, events, expires_at)
        counted = BlockCounts.of(events)
        catalog = {d: n for d, n in counted.counts.items() if not is_agent_dimension(d)}
        agents = {d: n for d, n in counted.counts.items() if is_agent_dimension(d)}
        sk = prefix(start, MINUTE)
        if agents:
            for number, chunk in enumerate(_chunks(agents, counted.agents)):
                item = self._map_item(minute_pk(self.tenant_id, True), sk if number == 0 else f"{sk}#{number}",
                                      chunk[0], expires_at)
                item["v"] = {"M": {k: {"S": v} for k, v in chunk[1].items()}}
                self.client.put_item(TableName=self.table, Item=item)
        item = self._map_item(minute_pk(self.tenant_id, False), sk, catalog, expires_at)
        item["n"] = _number(len(events))
        self.client.put_item(TableName=self.table, Item=item)  # last: the catalog map is the cursor

    def _sub_blocks(self, level: int, start: int, events: list[Any], expires_at: int) -> None:
        if len(events) <= SPLIT or level not in CHILD or CHILD[level] not in UNIT_MS:
            return
        child = CHILD[level]
        groups: dict[int, list[Any]] = defaultdict(list)
        for event in events:
            groups[floor(event_ms(event.event_id), child)].append(event)
        for child_start, members in sorted(groups.items()):
            self._sub_blocks(child, child_start, members, expires_at)
            item = self._map_item(sub_pk(self.tenant_id, child), prefix(child_start, child), BlockCounts.of(members).counts,
                                  expires_at)
            item["n"] = _number(len(members))
            self.client.put_item(TableName=self.table, Item=item)

    def _map_item(self, pk: str, sk: str, counts: dict[str, int], expires_at: int) -> dict[str, Any]:
        item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, "expires_at": _number(expires_at)}
        item.update({dim: _number(n) for dim, n in counts.items()})
        return item

    def hour(self, start: int, expires_at: int) -> None:
        """Closes an hour: its buckets (per dimension, and for metrics) summed from its minute maps, then its markers."""
        total: Counter = Counter()
        agents: dict[str, str] = {}
        reader = CountReader(self.client, self.table, self.tenant_id, "all", lambda low, high: 0)
        for kind in (False, True):
            for item in reader.minute_items(kind, start, start + UNIT_MS[HOUR]):
                total.update({k: int(v["N"]) for k, v in item.items() if k not in RESERVED})
                agents.update({k: v["S"] for k, v in item.get("v", {}).get("M", {}).items()})
        if not total:
            return  # an hour without events has nothing to close
        hour = prefix(start, HOUR)
        items = [{"pk": {"S": hour_pk(self.tenant_id, dim)}, "sk": {"S": hour}, "n": _number(n),
                  "expires_at": _number(expires_at)} for dim, n in total.items() if n]
        metrics = {("total", ""): (total["all"], None)}
        for dim, n in total.items():
            kind, _, value = dim.partition("=")
            if kind == "t":
                metrics[("event_type", value)] = (n, value)
            elif kind == "s":
                metrics[("severity", value)] = (n, value)
            elif kind == "a":
                metrics[("agent_id", value)] = (n, agents.get(value))
        without_agent = total["all"] - sum(n for d, n in total.items() if d.startswith("a="))
        if without_agent:
            metrics[("agent_id", "")] = (without_agent, None)
        for (name, key), (n, raw) in metrics.items():
            if n:
                item = {"pk": {"S": metric_pk(self.tenant_id, name)}, "sk": {"S": f"{hour}#{key}"}, "n": _number(n),
                        "expires_at": _number(expires_at)}
                if raw is not None:
                    item["value"] = {"S": raw}
                items.append(item)
        self._batch_put(items)
        for kind in (True, False):  # markers last: the hour is then read from its buckets
            self.client.put_item(TableName=self.table, Item={
                "pk": {"S": minute_pk(self.tenant_id, kind)}, "sk": {"S": hour + MARKER}, "expires_at": _number(expires_at)})

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            request = {self.table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
            for attempt in range(10):
                request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
            else:
                raise RuntimeError("count buckets stayed unprocessed")


def _chunks(agents: dict[str, int], raw: dict[str, str]) -> Iterator[tuple[dict[str, int], dict[str, str]]]:
    """Agent dimensions split into items below MAP_MAX_BYTES (each with the raw ids of its agent keys)."""
    chunk: dict[str, int] = {}
    names: dict[str, str] = {}
    size = 0
    for dim, n in sorted(agents.items()):
        key = dim.rsplit("=", 1)[1]
        grow = len(dim) + 12 + (len(key) + len(raw.get(key, "")) * 4 if key not in names else 0)
        if chunk and size + grow > MAP_MAX_BYTES:
            yield chunk, names
            chunk, names, size = {}, {}, 0
        chunk[dim] = n
        if key in raw:
            names[key] = raw[key]
        size += grow
    if chunk:
        yield chunk, names


# ---- reads ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    level: int  # HOUR, MINUTE, a SUB_LEVELS value, or RAW
    start: int  # ms, inclusive
    end: int  # ms, exclusive
    count: int


class CountReader:
    """Reads one dimension's counts: hour buckets, minute maps, sub-minute maps (key-condition Queries only)."""

    def __init__(self, client: Any, table: str, tenant_id: str, dim: str, count_raw: Callable[[int, int], int]):
        self.client, self.table, self.tenant_id, self.dim, self.count_raw = client, table, tenant_id, dim, count_raw
        self.cursor: int | None = None  # everything before it is in the counts read (None: nothing read yet)
        self.newest_rate = 0  # the dimension's count in the newest minute map read (how fast it grows)

    # -- the window's cover --------------------------------------------------------------------------------------
    def buckets(self, low: int, high: int | None, now: int | None = None) -> list[Bucket]:
        """Non-empty buckets covering [low, min(high, cursor)), newest first; their counts sum to the exact number
        of matching events there. Sets `cursor`: the newest events after it are not counted here (the caller
        counts them from the events). An open window costs two requests: the minute maps since the newest closed
        hour (which also give the cursor) and the dimension's hour buckets."""
        end = high if high is not None else (now if now is not None else 2**47)
        recent, frontier, cursor = self._recent(low, end)
        self.cursor = cursor
        stop = min(end, cursor)
        found: list[Bucket] = []
        # Closed hours [low, min(frontier, stop)): hour buckets; a partial hour from its minute maps (or raw).
        closed_to = min(frontier, stop)
        if low < closed_to:
            first, last = floor(low, HOUR), ceil(closed_to, HOUR)
            hours = {b.start: b for b in self._hours(first, last)}
            for start in range(first, last, UNIT_MS[HOUR]):
                lo, hi = max(low, start), min(closed_to, start + UNIT_MS[HOUR])
                whole = hours.get(start)
                if lo == start and hi == start + UNIT_MS[HOUR]:
                    if whole is not None and whole.count:
                        found.append(whole)
                elif whole is not None:  # an hour without a bucket holds nothing of the dimension
                    found += self._partial_hour(whole, lo, hi)
        # The open region [max(low, frontier), stop): whole minutes from their maps (none: empty), edges raw.
        lo = max(low, frontier)
        if lo < stop:
            found += self._within(lo, stop, [b for b in recent if b.start >= frontier])
        return sorted(found, key=lambda b: b.start, reverse=True)

    def _partial_hour(self, hour: Bucket, low: int, high: int) -> list[Bucket]:
        minutes = self._minutes(hour.start, hour.end)
        if sum(b.count for b in minutes) != hour.count:  # its minute maps expired with the hot tier
            return self._raw(low, high)
        return self._within(low, high, minutes)

    def _within(self, low: int, high: int, minutes: list[Bucket]) -> list[Bucket]:
        """[low, high) where `minutes` are all the non-empty minutes: whole ones from them, partial ones raw."""
        start, end = ceil(low, MINUTE), floor(high, MINUTE)
        if start >= end:
            return self._raw(low, high)
        return [b for b in minutes if b.start >= start and b.end <= end and b.count] + self._raw(low, start) + self._raw(end, high)

    def _raw(self, low: int, high: int) -> list[Bucket]:
        if low >= high:
            return []
        n = self.count_raw(low, high)
        return [Bucket(RAW, low, high, n)] if n else []

    def _recent(self, low: int, end: int) -> tuple[list[Bucket], int, int]:
        """Minute maps newest first from the hour of `end` back to the newest closed hour's marker (or past `low`):
        (their buckets, the end of that closed hour, the cursor). Hours before the marker are in hour buckets."""
        counts: Counter = Counter()
        cursor: int | None = None
        for item in self._newest_first(is_agent_dimension(self.dim), end, "sk, #d"):
            sk = item["sk"]["S"]
            if sk.endswith(MARKER):
                frontier = prefix_start(sk[:HOUR]) + UNIT_MS[HOUR]
                break
            start = prefix_start(sk[:MINUTE])
            if start + UNIT_MS[MINUTE] <= low:  # past the window: nothing older is needed
                frontier = start + UNIT_MS[MINUTE]
                break
            if cursor is None:
                cursor = start + UNIT_MS[MINUTE]
                self.newest_rate = int(item.get(self.dim, {"N": "0"})["N"])
            counts[start] += int(item.get(self.dim, {"N": "0"})["N"])
        else:
            frontier = min(counts, default=low)  # nothing older is counted
        recent = [Bucket(MINUTE, start, start + UNIT_MS[MINUTE], n) for start, n in counts.items()]
        return recent, frontier, max(cursor or frontier, frontier)

    def _newest_first(self, agents: bool, end: int, projection: str | None = None) -> Iterator[dict[str, Any]]:
        """The minute partition's items (maps and hour markers) newest first from the hour of `end`, fetched a few
        at a time: readers stop at the first marker, usually within the first page."""
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True, "ScanIndexForward": False, "Limit": 16,
            "KeyConditionExpression": "pk = :p AND sk <= :hi",
            "ExpressionAttributeValues": {":p": {"S": minute_pk(self.tenant_id, agents)}, ":hi": {"S": prefix(end - 1, HOUR) + MARKER}},
        }
        if projection:
            args["ProjectionExpression"] = projection
            args["ExpressionAttributeNames"] = {"#d": self.dim}
        while True:
            response = self.client.query(**args)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            args["Limit"] = 64

    def _hours(self, low: int, high: int) -> list[Bucket]:
        """The dimension's hour buckets of [low, high) (both hour-aligned)."""
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": hour_pk(self.tenant_id, self.dim)}, ":lo": {"S": prefix(low, HOUR)},
                                          ":hi": {"S": prefix(high - 1, HOUR)}},
            "ProjectionExpression": "sk, n",
        }
        found = []
        for item in _query(self.client, args):
            start = prefix_start(item["sk"]["S"])
            found.append(Bucket(HOUR, start, start + UNIT_MS[HOUR], int(item["n"]["N"])))
        return found

    def minute_items(self, agents: bool, low: int, high: int, projection: str | None = None) -> Iterator[dict[str, Any]]:
        """The minute maps (chunks included, markers excluded) of [low, high), oldest first."""
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": minute_pk(self.tenant_id, agents)}, ":lo": {"S": prefix(low, MINUTE)},
                                          ":hi": {"S": prefix(high - 1, MINUTE) + "#~"}},
        }
        if projection:
            args["ProjectionExpression"] = projection
            args["ExpressionAttributeNames"] = {"#d": self.dim}
        for item in _query(self.client, args):
            if not item["sk"]["S"].endswith(MARKER):
                yield item

    def _minutes(self, low: int, high: int) -> list[Bucket]:
        counts: Counter = Counter()
        for item in self.minute_items(is_agent_dimension(self.dim), low, high, "sk, #d"):
            counts[prefix_start(item["sk"]["S"][:MINUTE])] += int(item.get(self.dim, {"N": "0"})["N"])
        return [Bucket(MINUTE, s, s + UNIT_MS[MINUTE], n) for s, n in sorted(counts.items())]

    def _children(self, bucket: Bucket) -> list[Bucket]:
        """The counted sub-blocks of a bucket, oldest first ([] when it has none: too few events, or expired)."""
        if bucket.level == HOUR:
            return self._minutes(bucket.start, bucket.end)
        level = CHILD.get(bucket.level)
        if level is None or bucket.count <= SPLIT:
            return []
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": sub_pk(self.tenant_id, level)}, ":lo": {"S": prefix(bucket.start, level)},
                                          ":hi": {"S": prefix(bucket.end - 1, level)}},
            "ProjectionExpression": "sk, #d", "ExpressionAttributeNames": {"#d": self.dim},
        }
        found = []
        for item in _query(self.client, args):
            start = prefix_start(item["sk"]["S"])
            n = int(item.get(self.dim, {"N": "0"})["N"])
            if n:
                found.append(Bucket(level, start, start + UNIT_MS[level], n))
        return found

    def counted_through(self, shards: Iterable[int]) -> dict[int, str] | None:
        """Per shard, the largest event id the buckets read have counted everything up to (see `mark_of`)."""
        if self.cursor is None:
            return None
        mark = mark_of(self.cursor)
        return {shard: mark for shard in shards}

    def locate(self, buckets: list[Bucket], offset: int) -> tuple[Bucket, int] | None:
        """The block holding the `offset`-th newest event and how many of its newer events precede it: descends
        into sub-blocks while the position is more than a few events from both ends of a block, so what is then
        skipped over is at most half a block of <= SPLIT events (or half of a block whose maps have expired)."""
        for bucket in buckets:
            if offset < bucket.count:
                break
            offset -= bucket.count
        else:
            return None
        while bucket.level != RAW and min(offset, bucket.count - 1 - offset) > 2:
            children = self._children(bucket)
            if sum(c.count for c in children) != bucket.count:  # none kept (or a partial hour): skip within it
                return bucket, offset
            for child in reversed(children):  # newest first
                if offset < child.count:
                    break
                offset -= child.count
            bucket = child
        return bucket, offset

    # -- metrics -------------------------------------------------------------------------------------------------
    def metric_counters(self, dimension_name: str, first_hour: str, last_hour: str) -> Iterator[tuple[str, str | None, int]]:
        """(hour, raw value, count) of every closed hour's metrics bucket of the dimension in [first_hour, last_hour]."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": metric_pk(self.tenant_id, dimension_name)}, ":lo": {"S": f"{first_hour}#"},
                                          ":hi": {"S": f"{last_hour}#\U0010ffff"}},
            "ExpressionAttributeNames": {"#v": "value"},
            "ProjectionExpression": "sk, n, #v",
        }
        for item in _query(self.client, args):
            yield item["sk"]["S"].split("#", 1)[0], item.get("value", {}).get("S"), int(item["n"]["N"])

    def recent_maps(self, agents: bool, end: int) -> tuple[list[dict[str, Any]], int, int]:
        """The minute maps (whole items) after the newest closed hour before `end`, the cursor, and the end of that
        hour (0: none closed yet)."""
        items: list[dict[str, Any]] = []
        cursor = 0
        for item in self._newest_first(agents, end):
            sk = item["sk"]["S"]
            if sk.endswith(MARKER):
                frontier = prefix_start(sk[:HOUR]) + UNIT_MS[HOUR]
                return items, max(cursor, frontier), frontier
            cursor = cursor or prefix_start(sk[:MINUTE]) + UNIT_MS[MINUTE]
            items.append(item)
        return items, cursor, 0


def _query(client: Any, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        response = client.query(**args)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        args["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def cursor_of(client: Any, table: str, tenant_id: str) -> int | None:
    """A tenant's cursor (everything before it is counted), from its newest catalog minute map or hour marker; None
    when nothing is counted yet."""
    response = client.query(TableName=table, ConsistentRead=True, ScanIndexForward=False, Limit=1,
                            KeyConditionExpression="pk = :p", ProjectionExpression="sk",
                            ExpressionAttributeValues={":p": {"S": minute_pk(tenant_id, False)}})
    items = response.get("Items", [])
    if not items:
        return None
    sk = items[0]["sk"]["S"]
    if sk.endswith(MARKER):
        return prefix_start(sk[:HOUR]) + UNIT_MS[HOUR]
    return prefix_start(sk[:MINUTE]) + UNIT_MS[MINUTE]
