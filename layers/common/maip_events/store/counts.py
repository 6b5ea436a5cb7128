"""CountersTable: exact event counts per (tenant, dimension, granularity, time bucket).

Every accepted event increments, in the same transaction as its Put, one bucket per granularity
(minute, hour, UTC day) for each dimension it belongs to: the tenant (`all`), its type, and when it has an
agent, its agent and its (type, agent) pair. So a filter of the list endpoint always maps to one
dimension, and the count of any time window is the sum of whole buckets (coarsest that fit) plus a
key-condition COUNT of the events in the partial minutes at the two edges.

Item: counter_id = "<tenant>#<granularity>#<dimension>", bucket = UTC label ("2026-11-23",
"2026-11-23T07", "2026-11-23T07:36"; lexical order = time order), n = count, expires_at = the TTL of the
events of that day (see store/tenants.py), so buckets and their events expire together.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
# (granularity code, bucket length, label format), finest first
GRANULARITIES = (("m", MINUTE_MS, "%Y-%m-%dT%H:%M"), ("h", HOUR_MS, "%Y-%m-%dT%H"), ("d", DAY_MS, "%Y-%m-%d"))
_LENGTH = {code: length for code, length, _ in GRANULARITIES}
_FORMAT = {code: fmt for code, _, fmt in GRANULARITIES}
_FINER = {"d": "h", "h": "m"}
RAW = "raw"  # a partial-minute edge, counted from the events themselves


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def label(granularity: str, ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime(_FORMAT[granularity])


def label_start(granularity: str, text: str) -> int:
    moment = datetime.strptime(text, _FORMAT[granularity]).replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1000


def dimensions(event_type: str, agent_id: str | None) -> list[str]:
    dims = ["all", f"type:{event_type}"]
    if agent_id is not None:
        dims += [f"agent:{agent_id}", f"type_agent:{event_type}#{agent_id}"]
    return dims


def dimension(event_type: str | None, agent_id: str | None) -> str:
    """The one dimension whose buckets count exactly the events of a list filter."""
    if event_type is not None and agent_id is not None:
        return f"type_agent:{event_type}#{agent_id}"
    if agent_id is not None:
        return f"agent:{agent_id}"
    if event_type is not None:
        return f"type:{event_type}"
    return "all"


def counter_id(tenant_id: str, granularity: str, dim: str) -> str:
    return f"{tenant_id}#{granularity}#{dim}"  # tenant ids never contain '#': no key crosses tenants


def increments(events: Iterable[tuple[str, str, str | None, int, int]]) -> dict[tuple[str, str], list[int]]:
    """(tenant, type, agent, created_ms, expires_at) per event -> {(counter_id, bucket): [n, expires_at]}, aggregated."""
    found: dict[tuple[str, str], list[int]] = {}
    for tenant, event_type, agent, created_ms, expires_at in events:
        for dim in dimensions(event_type, agent):
            for code, _, _ in GRANULARITIES:
                key = (counter_id(tenant, code, dim), label(code, created_ms))
                entry = found.setdefault(key, [0, expires_at])
                entry[0] += 1
                entry[1] = max(entry[1], expires_at)
    return found


def update_op(table: str, key: tuple[str, str], n: int, expires_at: int) -> dict[str, Any]:
    """One TransactWriteItems Update: atomic ADD, so concurrent writers never lose an increment."""
    return {"Update": {
        "TableName": table,
        "Key": {"counter_id": {"S": key[0]}, "bucket": {"S": key[1]}},
        "UpdateExpression": "ADD n :n SET expires_at = :e",
        "ExpressionAttributeValues": {":n": {"N": str(n)}, ":e": {"N": str(expires_at)}},
    }}


@dataclass(frozen=True)
class Bucket:
    granularity: str  # m | h | d | raw
    start: int  # ms, inclusive
    end: int  # ms, exclusive
    count: int


def segments(low: int, high: int | None) -> list[tuple[str, int, int | None]]:
    """[low, high) (high None = open) split into the coarsest aligned pieces, oldest first.

    Each granularity contributes at most one run on each side, so the pieces are: partial minutes at the
    edges (RAW), then minute runs, hour runs, and one day run in the middle.
    """
    left: list[tuple[str, int, int | None]] = []
    right: list[tuple[str, int, int | None]] = []
    finer = RAW
    for code, length, _ in GRANULARITIES:
        up = -(-low // length) * length
        down = None if high is None else high // length * length
        if down is not None and up >= down:  # no whole bucket of this size fits: the rest stays at `finer`
            left.append((finer, low, high))
            return [s for s in left + right[::-1] if s[2] is None or s[1] < s[2]]
        if low < up:
            left.append((finer, low, up))
        if high is not None and down < high:
            right.append((finer, down, high))
        low, high, finer = up, down, code
    left.append(("d", low, high))
    return [s for s in left + right[::-1] if s[2] is None or s[1] < s[2]]


class CounterReader:
    """Reads the buckets of one dimension; every request is a key-condition Query on one counter partition."""

    def __init__(self, client: Any, table: str, tenant_id: str, dim: str, count_raw: Callable[[int, int], int]):
        self.client, self.table, self.tenant_id, self.dim, self.count_raw = client, table, tenant_id, dim, count_raw

    def buckets(self, low: int, high: int | None) -> list[Bucket]:
        """Non-empty buckets covering [low, high), newest first; their counts sum to the exact total."""
        found: list[Bucket] = []
        for code, start, end in segments(low, high):
            if code == RAW:
                assert end is not None
                n = self.count_raw(start, end)
                if n:
                    found.append(Bucket(RAW, start, end, n))
            else:
                found += self.query(code, start, end)
        return sorted(found, key=lambda b: b.start, reverse=True)

    def query(self, code: str, start: int, end: int | None) -> list[Bucket]:
        length = _LENGTH[code]
        args: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,  # a just-emitted event is in the next total
            "ExpressionAttributeValues": {":c": {"S": counter_id(self.tenant_id, code, self.dim)}, ":lo": {"S": label(code, start)}},
            "ProjectionExpression": "#b, n",
            "ExpressionAttributeNames": {"#b": "bucket"},  # BUCKET is a reserved word
        }
        if end is None:
            args["KeyConditionExpression"] = "counter_id = :c AND #b >= :lo"
        else:
            args["KeyConditionExpression"] = "counter_id = :c AND #b BETWEEN :lo AND :hi"
            args["ExpressionAttributeValues"][":hi"] = {"S": label(code, end - length)}
        found = []
        while True:
            response = self.client.query(**args)
            for item in response.get("Items", []):
                n = int(item["n"]["N"])
                if n:
                    begin = label_start(code, item["bucket"]["S"])
                    found.append(Bucket(code, begin, begin + length, n))
            if "LastEvaluatedKey" not in response:
                return found
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def locate(self, buckets: list[Bucket], offset: int) -> tuple[Bucket, int] | None:
        """The minute (or raw edge) bucket holding the `offset`-th newest event, and how many of its newer events to skip.

        Walks counts newest to oldest, then descends day -> hours -> minutes inside the bucket found, so only
        one bucket's events (at most a minute of them) are read and discarded.
        """
        while True:
            for bucket in buckets:
                if offset < bucket.count:
                    break
                offset -= bucket.count
            else:
                return None
            if bucket.granularity not in _FINER:
                return bucket, offset
            finer = self.query(_FINER[bucket.granularity], bucket.start, bucket.end)
            if not finer:  # counts out of step (should not happen): read from this bucket's end instead
                return bucket, offset
            buckets = sorted(finer, key=lambda b: b.start, reverse=True)
