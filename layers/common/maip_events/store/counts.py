"""CountsTable: every count of events — list `total`, deep offsets and GET /v1/observability/metrics.

One stream aggregation (metrics/aggregate.py, `AggregateFunction`) keeps it; the write path writes no counter.
Items (`pk`, `sk`), each with `n` (ADDed) and `expires_at` (the TTL of the newest event counted in it, so a
bucket expires with its events):

- list buckets: pk `<tenant>#n<L>#<dim>`, sk = the first L characters of the events' ULID. The ULID starts
  with its millisecond time in base 32, so a prefix is an aligned time block: L = 3..9 are ~397 days, 12.4
  days, 9.3 hours, 17.5 minutes, 33 s, 1 s and 32 ms, each holding 32 blocks of the next level. A window
  is the sum of whole blocks (coarsest that fit, found top down) plus partial 32 ms edges counted from the
  events; a deep offset descends block by block only while skipping inside the block would read more than a few events.
- metrics buckets: pk `<tenant>#m#<dimension>`, sk `<YYYY-MM-DDTHH>#<value key>`, raw `value` kept as an
  attribute (dimension = total | event_type | severity | agent_id).
- marks: every list bucket the aggregation writes also gets `w<shard>` = the newest event id of its events
  partition `<tenant>#<shard>` that has been counted in that group (never lowered), so a reader knows which
  events a bucket's `n` already holds and counts the newer ones from the events themselves (read-your-writes
  `total`, see EventStore.page).
- checkpoints: pk `<events partition key>#cp#<group>`, sk `-`, `seq` = the last stream sequence number applied
  for that events partition and group, `through` = the group's mark (a dimension: `all`, `t=<type>`, `a=<agent>`, `ta=<type>=<agent>`,
  `s=<severity>`, `ts=<type>=<severity>`, `as=<severity>=<agent>`, `r=<resource>`);
  written in the same transaction as the group's ADDs and conditioned on being below their first sequence
  number, so a retried or replayed chunk adds nothing. Per group, so many agents in a batch never split the
  tenant-wide buckets into many writes.

Key bytes are bounded: tenant ids (<= 128, no '#'), catalog event types and severities are plain; an agent id
or resource id (up to 1,024 bytes of anything) only enters keys as a 128-bit SHA-256 prefix (`agent_key`).
"""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from maip_events.ids import EVENT_PREFIX, ULID_ALPHABET, ulid_time

LEVELS = (3, 4, 5, 6, 7, 8, 9)  # ULID prefix lengths kept, coarsest first
LEAF = LEVELS[-1]
RAW = 0  # a partial leaf block at a window edge, counted from the events themselves
FANOUT = 32  # blocks of the next level in a block
TRANSACTION_MAX_ITEMS = 100
CHECKPOINT_TTL_SECONDS = 3 * 86400  # beyond the stream's 24 h: a replay can never bring older records
_RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


def block_ms(level: int) -> int:
    return 32 ** (10 - level)


def prefix(ms: int, level: int) -> str:
    return ulid_time(ms)[:level]


def prefix_start(text: str) -> int:
    ms = 0
    for char in text.ljust(10, "0"):
        ms = ms * 32 + ULID_ALPHABET.index(char)
    return ms


def event_prefix(event_id: str, level: int) -> str:
    return event_id[len(EVENT_PREFIX):len(EVENT_PREFIX) + level]


def agent_key(agent_id: str) -> str:
    """What stands for an agent id inside keys: 32 hex chars, whatever the id holds ('#', emoji, controls)."""
    return hashlib.sha256(agent_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def dimensions(event_type: str, agent_id: str | None, resource_id: str | None = None, severity: str | None = None) -> list[str]:
    """Every dimension an event is counted in: one per list filter (or pair) served from counts."""
    dims = ["all", f"t={event_type}"]
    if agent_id is not None:
        agent = agent_key(agent_id)
        dims += [f"a={agent}", f"ta={event_type}={agent}"]
    if severity is not None:
        dims += [f"s={severity}", f"ts={event_type}={severity}"]
        if agent_id is not None:
            dims.append(f"as={severity}={agent_key(agent_id)}")
    if resource_id is not None:
        dims.append(f"r={agent_key(resource_id)}")
    return dims


def dimension(event_type: str | None, agent_id: str | None, resource_id: str | None = None,
              severity: str | None = None) -> str | None:
    """The one dimension whose buckets count exactly the events matching all the given values (None: no such
    dimension is kept, e.g. resource + type: such a count is read from the events)."""
    given = tuple(name for name, value in (("t", event_type), ("a", agent_id), ("r", resource_id), ("s", severity))
                  if value is not None)
    agent = agent_key(agent_id) if agent_id is not None else ""
    return {
        (): "all",
        ("t",): f"t={event_type}",
        ("a",): f"a={agent}",
        ("r",): f"r={agent_key(resource_id)}" if resource_id is not None else "",
        ("s",): f"s={severity}",
        ("t", "a"): f"ta={event_type}={agent}",
        ("t", "s"): f"ts={event_type}={severity}",
        ("a", "s"): f"as={severity}={agent}",
    }.get(given)


def bucket_pk(tenant_id: str, level: int, dim: str) -> str:
    return f"{tenant_id}#n{level}#{dim}"  # tenant ids never contain '#': no key crosses tenants


def is_list_bucket(pk: str) -> bool:
    return pk.split("#", 2)[1][:1] == "n"


def mark_attribute(shard: int) -> str:
    return f"w{shard}"  # the bucket's mark for events partition `<tenant>#<shard>`


# ---- metrics buckets ---------------------------------------------------------------------------------------
METRIC_DIMENSIONS = ("total", "event_type", "severity", "agent_id")


def hour_of(created_at: str) -> str:
    return created_at[:13]  # "2026-11-23T07" of "2026-11-23T07:36:56.123Z"


def metric_pk(tenant_id: str, dimension_name: str) -> str:
    return f"{tenant_id}#m#{dimension_name}"


def metric_values(event_type: str, severity: str, agent_id: str | None) -> list[tuple[str, str, str | None]]:
    """(dimension, value key, raw value) of every metrics bucket an event feeds; '' / None = no value."""
    return [("total", "", None), ("event_type", event_type, event_type), ("severity", severity, severity),
            ("agent_id", agent_key(agent_id) if agent_id is not None else "", agent_id)]


# ---- aggregation (writes) ----------------------------------------------------------------------------------
@dataclass
class Update:
    n: int
    expires_at: int
    value: str | None = None


def groups_of(event: Any) -> list[str]:
    """The checkpoint groups an event is counted in: its dimensions (metrics buckets join the one they count)."""
    return dimensions(event.event_type, event.agent_id, event.resource_id, event.severity)


def grouped_updates(event: Any) -> dict[str, dict[tuple[str, str], Update]]:
    """The buckets one event feeds, by checkpoint group: its dimension (`all`, `t=..`, `a=..`, `ta=..`), the
    metrics buckets joining the dimension they count. Groups are applied (and checkpointed) independently, so
    a batch with many agents still writes each tenant-wide bucket once."""
    expires = event.expires_at or 0
    groups: dict[str, dict[tuple[str, str], Update]] = {}
    for dim in groups_of(event):
        groups[dim] = {(bucket_pk(event.tenant_id, level, dim), event_prefix(event.event_id, level)): Update(1, expires)
                       for level in LEVELS}
    hour = hour_of(event.created_at)
    for name, key, raw in metric_values(event.event_type, event.severity, event.agent_id):
        group = {"event_type": f"t={event.event_type}", "agent_id": f"a={key}" if key else "all"}.get(name, "all")
        groups[group][(metric_pk(event.tenant_id, name), f"{hour}#{key}")] = Update(1, expires, raw)
    return groups


def _merge(into: dict[tuple[str, str], Update], more: dict[tuple[str, str], Update]) -> None:
    for key, update in more.items():
        entry = into.get(key)
        if entry is None:
            into[key] = Update(update.n, update.expires_at, update.value)
        else:
            entry.n += update.n
            entry.expires_at = max(entry.expires_at, update.expires_at)


def bucket_updates(events: Iterable[Any]) -> dict[tuple[str, str], Update]:
    """StoredEvents -> one coalesced ADD per distinct bucket: {(pk, sk): Update}."""
    found: dict[tuple[str, str], Update] = {}
    for event in events:
        for updates in grouped_updates(event).values():
            _merge(found, updates)
    return found


def _seq(sequence_number: str) -> str:
    return sequence_number.zfill(40)  # stream sequence numbers are 21-40 digits: padded, text order = number order


@dataclass
class _Unit:
    """Consecutive records of one checkpoint group whose coalesced ADDs fit one transaction with the checkpoint."""

    group: str
    records: list[tuple[str, dict[tuple[str, str], Update]]]  # (sequence number, the record's updates in this group)
    through: str = ""  # the group's mark once this unit is counted: the newest event id of it and all before

    def updates(self) -> dict[tuple[str, str], Update]:
        found: dict[tuple[str, str], Update] = {}
        for _, updates in self.records:
            _merge(found, updates)
        return found


class CountStore:
    def __init__(self, client: Any = None, table: str | None = None):
        from maip_events import aws
        from maip_events.settings import get_settings

        self.client = client or aws.dynamodb()
        self.table = table or get_settings().counters_table

    def apply(self, partition: str, records: list[tuple[str, Any]], marks: dict[tuple[str, str], str] | None = None) -> None:
        """Counts `records` ((sequence number, StoredEvent) of one events partition, in stream order) exactly once.

        Per checkpoint group, consecutive records are coalesced into units of <= 99 ADDs + the group's checkpoint;
        units of different groups share transactions (<= 100 items), never two of one group. `marks`: the
        groups' current marks when the caller read them already (for every partition of a batch at once)."""
        by_group: dict[str, list[tuple[str, dict[tuple[str, str], Update], str]]] = {}
        for seq, event in records:
            for group, updates in grouped_updates(event).items():
                by_group.setdefault(group, []).append((seq, updates, event.event_id))
        if marks is None:
            marks = self.marks([(partition, group) for group in by_group])
        units: list[_Unit] = []
        for group, rows in by_group.items():
            through = marks.get((partition, group), "")
            unit, keys = _Unit(group, [], through), set()
            for seq, updates, event_id in rows:
                if unit.records and len(keys | set(updates)) + 1 > TRANSACTION_MAX_ITEMS:
                    units.append(unit)
                    unit, keys = _Unit(group, [], through), set()
                unit.records.append((seq, updates))
                keys |= set(updates)
                # A mark only grows: an event written late with an older id must not lower it (a reader would
                # then count the newer, already counted events twice).
                through = unit.through = max(through, event_id)
            units.append(unit)
        while units:
            batch, groups, size, rest = [], set(), 0, []
            for unit in units:
                needed = len(unit.updates()) + 1
                if unit.group in groups or size + needed > TRANSACTION_MAX_ITEMS:
                    rest.append(unit)
                    groups.add(unit.group)  # a group's units stay in stream order: none may overtake this one
                else:
                    batch.append(unit)
                    groups.add(unit.group)
                    size += needed
            self._apply_units(partition, batch)
            units = rest

    def marks(self, groups: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The current mark of each (events partition, group), 100 per request (consistent reads: the stream hands
        one partition's records to one invocation at a time, so nothing moves them meanwhile)."""
        keys = sorted(set(groups))
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(keys), 100):
            request = {self.table: {"Keys": [{"pk": {"S": f"{p}#cp#{g}"}, "sk": {"S": "-"}} for p, g in keys[start:start + 100]],
                                    "ConsistentRead": True, "ProjectionExpression": "pk, through"}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    if "through" in item:
                        partition, group = item["pk"]["S"].rsplit("#cp#", 1)
                        found[(partition, group)] = item["through"]["S"]
                request = response.get("UnprocessedKeys") or None
        return found

    def checkpoint(self, partition: str, group: str) -> str | None:
        item = self.client.get_item(TableName=self.table, Key={"pk": {"S": f"{partition}#cp#{group}"}, "sk": {"S": "-"}},
                                    ConsistentRead=True).get("Item")
        return item["seq"]["S"] if item else None

    def _operations(self, partition: str, unit: _Unit) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = [{"Update": {
            "TableName": self.table,
            "Key": {"pk": {"S": f"{partition}#cp#{unit.group}"}, "sk": {"S": "-"}},
            "UpdateExpression": "SET seq = :last, expires_at = :e, through = :t",
            "ConditionExpression": "attribute_not_exists(seq) OR seq < :first",
            "ExpressionAttributeValues": {":last": {"S": _seq(unit.records[-1][0])}, ":first": {"S": _seq(unit.records[0][0])},
                                          ":e": {"N": str(int(time.time()) + CHECKPOINT_TTL_SECONDS)}, ":t": {"S": unit.through}},
        }}]
        mark = mark_attribute(int(partition.rsplit("#", 1)[1]))
        for (pk, sk), update in sorted(unit.updates().items()):
            values: dict[str, Any] = {":n": {"N": str(update.n)}, ":e": {"N": str(update.expires_at)}}
            expression = "ADD n :n SET expires_at = :e"
            if is_list_bucket(pk):
                expression += f", {mark} = :t"
                values[":t"] = {"S": unit.through}
            if update.value is not None:
                expression += ", #v = :v"
                values[":v"] = {"S": update.value}
            op: dict[str, Any] = {"TableName": self.table, "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
                                  "UpdateExpression": expression, "ExpressionAttributeValues": values}
            if update.value is not None:
                op["ExpressionAttributeNames"] = {"#v": "value"}  # VALUE is a reserved word
            ops.append({"Update": op})
        return ops

    def _apply_units(self, partition: str, units: list[_Unit]) -> None:
        attempt = 0
        while units:
            ops, owner = [], []
            for unit in units:
                mine = self._operations(partition, unit)
                ops += mine
                owner += [unit] * len(mine)
            try:
                self.client.transact_write_items(TransactItems=ops)
                return
            except self.client.exceptions.TransactionCanceledException as err:
                reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
                behind = {id(owner[i]) for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"}
                if behind:
                    # Already applied (a retried or replayed batch): keep only the records past each checkpoint.
                    kept = []
                    for unit in units:
                        if id(unit) in behind:
                            done = self.checkpoint(partition, unit.group) or ""
                            unit = _Unit(unit.group, [r for r in unit.records if _seq(r[0]) > done], unit.through)
                        if unit.records:
                            kept.append(unit)
                    units = kept
                    continue
                if not set(reasons) & _RETRYABLE or attempt >= 9:
                    raise
            attempt += 1
            time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))  # another shard's batch on a shared bucket


# ---- reads -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    level: int  # a LEVELS value, or RAW
    start: int  # ms, inclusive
    end: int  # ms, exclusive
    count: int


class CountReader:
    """Reads one dimension's buckets; every request is a key-condition Query on one bucket partition."""

    def __init__(self, client: Any, table: str, tenant_id: str, dim: str, count_raw: Callable[[int, int], int]):
        self.client, self.table, self.tenant_id, self.dim, self.count_raw = client, table, tenant_id, dim, count_raw
        self.marks: dict[int, str] = {}  # shard -> the newest mark of the buckets read (see "marks" above)
        self.unmarked = False  # a bucket read holds counts but no mark: written before marks existed

    def buckets(self, low: int, high: int | None, now: int | None = None) -> list[Bucket]:
        """Non-empty buckets covering [low, high), newest first; their counts sum to the exact total.

        Top down: the blocks meeting the window at the finest level where it spans at most FANOUT blocks (up
        to `now` for an open window; a year is ~30 blocks of 12.4 days), then, only inside an edge block that
        holds events, its children meeting the window, and so on; partial 32 ms edge blocks are counted from
        the events. A window edge with no events near it costs no request (the retention horizon of an open
        list, usually), so an open list costs one counts Query."""
        found: list[Bucket] = []
        end = high if high is not None else now
        first = LEVELS[0]
        if end is not None:
            first = next((level for level in reversed(LEVELS)
                          if (end - 1) // block_ms(level) - low // block_ms(level) + 1 <= FANOUT), LEVELS[0])

        def cover(level: int, start: int, end: int | None) -> None:
            for block in self.run(level, start - start % block_ms(level), end):
                if block.start >= start and (end is None or block.end <= end):
                    found.append(block)
                    continue
                lo, hi = max(block.start, start), block.end if end is None else min(block.end, end)
                if level == LEAF:
                    n = self.count_raw(lo, hi)
                    if n:
                        found.append(Bucket(RAW, lo, hi, n))
                else:
                    cover(LEVELS[LEVELS.index(level) + 1], lo, hi)

        cover(first, low, high)
        return sorted(found, key=lambda b: b.start, reverse=True)

    def run(self, level: int, start: int, end: int | None, oldest_first: bool = True, page: int | None = None) -> Iterator[Bucket]:
        """The non-empty blocks of `level` in [start, end), fetched `page` at a time, doubling (None = all at once)."""
        length = block_ms(level)
        args: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "ExpressionAttributeValues": {":p": {"S": bucket_pk(self.tenant_id, level, self.dim)}, ":lo": {"S": prefix(start, level)}},
            "ScanIndexForward": oldest_first,
        }
        if end is None:
            args["KeyConditionExpression"] = "pk = :p AND sk >= :lo"
        else:
            args["KeyConditionExpression"] = "pk = :p AND sk BETWEEN :lo AND :hi"
            args["ExpressionAttributeValues"][":hi"] = {"S": prefix(end - 1, level)}
        if page:
            args["Limit"] = page
        while True:
            response = self.client.query(**args)
            for item in response.get("Items", []):
                marked = False
                for name, value in item.items():
                    if name[0] == "w" and name[1:].isdigit():
                        shard, marked = int(name[1:]), True
                        self.marks[shard] = max(self.marks.get(shard, ""), value["S"])
                n = int(item["n"]["N"])
                self.unmarked = self.unmarked or (n > 0 and not marked)
                if n:
                    begin = prefix_start(item["sk"]["S"])
                    yield Bucket(level, begin, begin + length, n)
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            if page:
                args["Limit"] = page = min(2 * page, 64)

    def counted_through(self, shards: Iterable[int]) -> dict[int, str] | None:
        """Per shard, the newest event id the buckets read so far have counted ('' = none of that shard: no
        bucket read holds any of its events); None when a bucket predates marks (nothing can be said)."""
        if self.unmarked:
            return None
        return {shard: self.marks.get(shard, "") for shard in shards}

    def locate(self, buckets: list[Bucket], offset: int) -> tuple[Bucket, int] | None:
        """The block holding the `offset`-th newest event and how many of its newer events precede it.

        Descends into a block's children (read from the nearer end, a few at a time) only where that reads
        fewer items than skipping events would: while the position is more than a few events from both ends
        of a block that holds at least two events per child on average. So neither the children read nor the
        events skipped grow with density; the skip is at most half a block of < 2 * FANOUT events, or half a
        32 ms leaf block."""
        for bucket in buckets:
            if offset < bucket.count:
                break
            offset -= bucket.count
        else:
            return None
        while bucket.level not in (RAW, LEAF) and bucket.count >= 2 * FANOUT and min(offset, bucket.count - 1 - offset) > 2:
            from_oldest = offset > bucket.count - 1 - offset
            rank = bucket.count - 1 - offset if from_oldest else offset
            finer = LEVELS[LEVELS.index(bucket.level) + 1]
            # About rank / (count / FANOUT) children come before the one holding the position: read that many first.
            page = max(2, min(64, rank * FANOUT // bucket.count + 2))
            for child in self.run(finer, bucket.start, bucket.end, oldest_first=from_oldest, page=page):
                if rank < child.count:
                    break
                rank -= child.count
            else:  # counts out of step with the events (a batch not yet counted): read from this block
                return bucket, offset
            bucket, offset = child, (child.count - 1 - rank if from_oldest else rank)
        return bucket, offset

    def metric_counters(self, dimension_name: str, first_hour: str, last_hour: str) -> Iterator[tuple[str, str | None, int]]:
        """(hour, raw value, count) of every metrics bucket of the dimension for hours in [first_hour, last_hour]."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": metric_pk(self.tenant_id, dimension_name)}, ":lo": {"S": f"{first_hour}#"},
                                          ":hi": {"S": f"{last_hour}#\U0010ffff"}},
            "ExpressionAttributeNames": {"#v": "value"},
            "ProjectionExpression": "sk, n, #v",
        }
        while True:
            response = self.client.query(**args)
            for item in response.get("Items", []):
                yield item["sk"]["S"].split("#", 1)[0], item.get("value", {}).get("S"), int(item["n"]["N"])
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
