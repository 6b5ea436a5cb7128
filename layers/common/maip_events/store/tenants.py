"""TenantSettingsTable: per-tenant tiers (hot retention, archive days) and write shards, and the retention
arithmetic shared by writes and reads.

Tiers: the hot tier (`retention_days`, 1-365, default MAIP_HOT_DAYS_DEFAULT = 30) is what DynamoDB keeps (the
events' TTL) and what lists read from the table; the archive (`archive_days`, hot days..3,653, default
MAIP_ARCHIVE_DAYS_DEFAULT = 365) holds every event in S3 (maip_events.archive) and decides what is listed at all.
Lowering the hot days loses nothing (the events are in the archive); raising the archive days keeps what is
still there; lowering them hides older days at once and lets compaction delete them (archive/compact.py).

Retention works on whole UTC days so that an event and every count bucket of its day expire together:
an event of day D gets `expires_at = end of D + ttl_days(D)`, where ttl_days(D) is the retention in force
at the start of D (a change applies to the TTL of events from the next UTC day on, so one day never mixes
two expiries). Visibility is computed in code, never left to DynamoDB's lazy TTL deletion: day D is
listed and counted only if D >= today - current retention days (a decrease hides older days at once)
and D has not expired under its own ttl_days(D) (an increase cannot resurrect deleted days).

Write shards (README "Listing at scale"): `write_shards` (1..64) is how many partition keys new events of a tenant are spread
over; `read_shards` is the most ever set, so readers always query every shard that may hold events and
lowering the count never hides any. Settings are cached per Lambda for MAIP_TENANT_SETTINGS_TTL seconds, so
a raised count takes effect for writers only `SHARD_SWITCH_DELAY` seconds later (the item keeps the
previous count until then): by that time every reader's cache knows the new `read_shards`, so no reader
misses an event written to a new shard.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any

from maip_events import aws, freshness
from maip_events.settings import get_settings

DAY_MS = 86_400_000
RETENTION_DAYS_DEFAULT = 30  # the hot tier's default when MAIP_HOT_DAYS_DEFAULT is unset
HOT_DAYS_MAX = 365
RETENTION_DAYS_MAX = 3650  # longest hot retention ever allowed (before the archive): bounds the history kept
WRITE_SHARDS_MAX = 64


@dataclass(frozen=True)
class Retention:
    days: int = RETENTION_DAYS_DEFAULT  # current setting: decides visibility at once
    history: tuple[tuple[int, int], ...] = field(default=())  # (first UTC day start in ms, days) ascending
    default: int = RETENTION_DAYS_DEFAULT  # the TTL days of days before the first setting (the deployment's default)

    def ttl_days(self, day_ms: int) -> int:
        days = self.default
        for start, value in self.history:
            if start <= day_ms:
                days = value
        return days

    def expires_at(self, created_ms: int) -> int:
        """Epoch seconds of the TTL of an event created at `created_ms` (and of its count buckets)."""
        day = created_ms - created_ms % DAY_MS
        return (day + DAY_MS + self.ttl_days(day) * DAY_MS) // 1000

    def visible_from(self, now_ms: int) -> int:
        """Start (ms) of the oldest visible day: the newest unbroken run of unexpired days within `days`."""
        return _visible_from(self, now_ms - now_ms % DAY_MS)

    def with_days(self, days: int, now_ms: int) -> "Retention":
        """The policy after setting `days` at `now_ms`: visible at once, TTL from the next UTC day."""
        tomorrow = now_ms - now_ms % DAY_MS + DAY_MS
        horizon = tomorrow - (RETENTION_DAYS_MAX + 2) * DAY_MS  # older entries can no longer matter
        kept = [(s, d) for s, d in self.history if s < tomorrow]
        while len(kept) > 1 and kept[1][0] <= horizon:
            kept.pop(0)
        return Retention(days=days, history=tuple(kept + [(tomorrow, days)]), default=self.default)


@lru_cache(maxsize=256)
def _visible_from(retention: Retention, today: int) -> int:
    """Retention.visible_from for any moment of the day starting at `today`: expiries fall on day starts, so
    `expiry > now` is `expiry > today` all day long. Cached: walking up to 3,650 days on every list request cost
    about as much as a DynamoDB call (bench/ingest_read.py)."""
    floor = today - retention.days * DAY_MS
    day = today
    while day - DAY_MS >= floor and (day - DAY_MS) + DAY_MS + retention.ttl_days(day - DAY_MS) * DAY_MS > today:
        day -= DAY_MS
    return day


ARCHIVE_DAYS_DEFAULT = 365
ARCHIVE_DAYS_MAX = 3653


@dataclass(frozen=True)
class Tiers:
    """Where a tenant's events live: `hot` (DynamoDB: its TTL, and the days read from the table) and the S3
    archive, which holds every event for `archive_days` (what is listed at all). Both on whole UTC days."""

    hot: Retention = Retention()
    archive_days: int = ARCHIVE_DAYS_DEFAULT

    def hot_from(self, now_ms: int) -> int:
        """Start (ms) of the oldest day read from DynamoDB; older visible days are read from the archive."""
        return max(self.hot.visible_from(now_ms), self.visible_from(now_ms))

    def visible_from(self, now_ms: int) -> int:
        """Start (ms) of the oldest day listed at all (a decrease hides older days at once)."""
        today = now_ms - now_ms % DAY_MS
        return today - self.archive_days * DAY_MS

    def archive_expires_at(self, created_ms: int) -> int:
        """Epoch seconds after which the archive (and every count kept for it) drops the event's day."""
        day = created_ms - created_ms % DAY_MS
        return (day + DAY_MS + self.archive_days * DAY_MS) // 1000


@dataclass(frozen=True)
class Shards:
    write: int = 1  # shards new events go to
    read: int = 1  # shards readers query and merge (>= every write count ever used)


def hot_days_default() -> int:
    return get_settings().hot_days_default


def archive_days_default() -> int:
    return get_settings().archive_days_default


def _default_settings() -> "_Settings":
    hot = hot_days_default()
    return _Settings(Retention(days=hot, default=hot), archive_days=archive_days_default())


@dataclass(frozen=True)
class _Settings:
    retention: Retention
    archive_days: int = ARCHIVE_DAYS_DEFAULT
    write_shards: int = 1
    previous_write_shards: int = 1
    write_shards_from: int = 0  # epoch ms from which `write_shards` applies (before: previous_write_shards)
    read_shards: int = 1

    def shards(self, now_ms: int) -> Shards:
        write = self.write_shards if now_ms >= self.write_shards_from else self.previous_write_shards
        return Shards(write=write, read=max(self.read_shards, write, 1))


_cache: dict[tuple[str, str], tuple[float, int | None, _Settings]] = {}


def clear_cache() -> None:
    _cache.clear()


def shard_switch_delay() -> float:
    """Seconds before a new write-shard count is used: longer than the Lambdas' settings cache (30 s); 0 locally."""
    settings = get_settings()
    return 0.0 if settings.local else float(os.environ.get("MAIP_SHARD_SWITCH_DELAY", "35"))


class TenantSettingsStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().tenants_table

    def _settings(self, tenant_id: str) -> _Settings:
        """One GetItem per tenant, cached per process for MAIP_TENANT_SETTINGS_TTL seconds (0 = always read)."""
        deadline = freshness.expiry(get_settings().tenant_settings_ttl)  # locally: until the table changes
        hit = _cache.get((self.table, tenant_id)) if deadline is not None else None
        if hit and freshness.fresh(hit[0], hit[1]):
            return hit[2]
        stamped = freshness.stamp()
        item = self.client.get_item(TableName=self.table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True).get("Item")
        found = _from_item(item) if item else _default_settings()
        if deadline is not None:
            if len(_cache) > 10_000:  # bounded: a Lambda serves few tenants, the local stack many
                _cache.clear()
            _cache[(self.table, tenant_id)] = (deadline, stamped, found)
        return found

    def policy(self, tenant_id: str) -> tuple[Retention, Shards]:
        """Retention and shards from one (cached) read: what a write needs."""
        found = self._settings(tenant_id)
        return found.retention, found.shards(int(time.time() * 1000))

    def retention(self, tenant_id: str) -> Retention:
        """The tenant's retention policy (cached, see `_settings`)."""
        return self._settings(tenant_id).retention

    def tiers(self, tenant_id: str) -> Tiers:
        """The tenant's hot tier (its retention) and archive days (cached, see `_settings`)."""
        found = self._settings(tenant_id)
        return Tiers(hot=found.retention, archive_days=found.archive_days)

    def shards(self, tenant_id: str) -> Shards:
        """The tenant's write and read shard counts now (cached, see `_settings`)."""
        return self._settings(tenant_id).shards(int(time.time() * 1000))

    def set_write_shards(self, tenant_id: str, shards: int, now: datetime | None = None) -> dict[str, Any]:
        """Spread new events over `shards` partition keys; `read_shards` only ever grows (nothing hidden)."""
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= WRITE_SHARDS_MAX:
            raise ValueError(f"write shards must be an integer from 1 to {WRITE_SHARDS_MAX}")
        moment = now or datetime.now(timezone.utc)
        now_ms = int(moment.timestamp() * 1000)
        _cache.pop((self.table, tenant_id), None)
        current = self._settings(tenant_id)
        in_use = current.shards(now_ms).write
        applies = now_ms + int(shard_switch_delay() * 1000) if shards > in_use else now_ms  # fewer: safe at once
        read = max(current.read_shards, in_use, shards)
        self.client.update_item(
            TableName=self.table, Key={"tenant_id": {"S": tenant_id}},
            UpdateExpression="SET write_shards = :w, previous_write_shards = :p, write_shards_from = :f, read_shards = :r, updated_at = :u",
            # read_shards never shrinks, even if two operators race
            ConditionExpression="attribute_not_exists(read_shards) OR read_shards <= :r",
            ExpressionAttributeValues={":w": {"N": str(shards)}, ":p": {"N": str(in_use)}, ":f": {"N": str(applies)},
                                       ":r": {"N": str(read)}, ":u": {"S": _stamp(moment)}},
        )
        _cache.pop((self.table, tenant_id), None)
        return {"tenant_id": tenant_id, "write_shards": shards, "read_shards": read,
                "write_shards_from": datetime.fromtimestamp(applies / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}

    def set_retention(self, tenant_id: str, days: int, now: datetime | None = None) -> dict[str, Any]:
        """The hot tier only (kept for callers of the single-tier API)."""
        return self.set_tiers(tenant_id, hot_days=days, now=now)

    def set_tiers(self, tenant_id: str, hot_days: int | None = None, archive_days: int | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
        """Sets the hot days (TTL from the next UTC day, visibility at once), the archive days, or both."""
        if hot_days is None and archive_days is None:
            raise ValueError("give the hot days, the archive days or both")
        for name, value, high in (("hot days", hot_days, HOT_DAYS_MAX), ("archive days", archive_days, ARCHIVE_DAYS_MAX)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high):
                raise ValueError(f"{name} must be an integer from 1 to {high}")
        moment = now or datetime.now(timezone.utc)
        now_ms = int(moment.timestamp() * 1000)
        _cache.pop((self.table, tenant_id), None)
        current = self._settings(tenant_id)
        hot = current.retention.days if hot_days is None else hot_days
        archive = current.archive_days if archive_days is None else archive_days
        if archive < hot:
            raise ValueError(f"archive days ({archive}) must be at least the hot days ({hot}): every hot event is also archived")
        # Only what is given is stored: a tier never set keeps following the deployment's default.
        sets, values = ["updated_at = :u"], {":u": {"S": _stamp(moment)}}
        if archive_days is not None:
            sets.append("archive_days = :a")
            values[":a"] = {"N": str(archive_days)}
        policy = current.retention
        if hot_days is not None:
            policy = policy.with_days(hot_days, now_ms)
            sets += ["retention_days = :d", "retention_history = :h"]
            values[":d"] = {"N": str(hot_days)}
            values[":h"] = {"L": [{"M": {"from": {"N": str(s)}, "days": {"N": str(d)}}} for s, d in policy.history]}
        # An update, not a put: the item also holds the shard settings.
        self.client.update_item(TableName=self.table, Key={"tenant_id": {"S": tenant_id}},
                                UpdateExpression="SET " + ", ".join(sets), ExpressionAttributeValues=values)
        _cache.pop((self.table, tenant_id), None)
        doc: dict[str, Any] = {"tenant_id": tenant_id, "hot_days": policy.days, "archive_days": archive,
                               "retention_days": policy.days}  # retention_days: the hot days' old name
        if hot_days is not None:
            doc["ttl_applies_from"] = datetime.fromtimestamp(policy.history[-1][0] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return doc


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_item(item: dict[str, Any]) -> _Settings:
    def number(name: str, default: int) -> int:
        return int(item[name]["N"]) if name in item else default

    history = tuple((int(e["M"]["from"]["N"]), int(e["M"]["days"]["N"])) for e in item.get("retention_history", {}).get("L", []))
    hot = hot_days_default()
    return _Settings(
        retention=Retention(days=number("retention_days", hot), history=history, default=hot),
        archive_days=number("archive_days", archive_days_default()),
        write_shards=number("write_shards", 1),
        previous_write_shards=number("previous_write_shards", 1),
        write_shards_from=number("write_shards_from", 0),
        read_shards=number("read_shards", 1),
    )
