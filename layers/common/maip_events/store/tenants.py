"""TenantSettingsTable: per-tenant retention, and the retention arithmetic shared by writes and reads.

Retention works on whole UTC days so that an event and every count bucket of its day expire together:
an event of day D gets `expires_at = end of D + ttl_days(D)`, where ttl_days(D) is the retention in force
at the start of D (a change applies to the TTL of events from the next UTC day on, so one day never mixes
two expiries). Visibility is computed in code, never left to DynamoDB's lazy TTL deletion: day D is
listed and counted only if D >= today - current retention days (a decrease hides older days at once)
and D has not expired under its own ttl_days(D) (an increase cannot resurrect deleted days).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from maip_events import aws
from maip_events.settings import get_settings

DAY_MS = 86_400_000
RETENTION_DAYS_DEFAULT = 365
RETENTION_DAYS_MAX = 3650


@dataclass(frozen=True)
class Retention:
    days: int = RETENTION_DAYS_DEFAULT  # current setting: decides visibility at once
    history: tuple[tuple[int, int], ...] = field(default=())  # (first UTC day start in ms, days) ascending

    def ttl_days(self, day_ms: int) -> int:
        days = RETENTION_DAYS_DEFAULT
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
        today = now_ms - now_ms % DAY_MS
        floor = today - self.days * DAY_MS
        day = today
        while day - DAY_MS >= floor and (day - DAY_MS) + DAY_MS + self.ttl_days(day - DAY_MS) * DAY_MS > now_ms:
            day -= DAY_MS
        return day

    def with_days(self, days: int, now_ms: int) -> "Retention":
        """The policy after setting `days` at `now_ms`: visible at once, TTL from the next UTC day."""
        tomorrow = now_ms - now_ms % DAY_MS + DAY_MS
        horizon = tomorrow - (RETENTION_DAYS_MAX + 2) * DAY_MS  # older entries can no longer matter
        kept = [(s, d) for s, d in self.history if s < tomorrow]
        while len(kept) > 1 and kept[1][0] <= horizon:
            kept.pop(0)
        return Retention(days=days, history=tuple(kept + [(tomorrow, days)]))


_cache: dict[tuple[str, str], tuple[float, Retention]] = {}


def clear_cache() -> None:
    _cache.clear()


class TenantSettingsStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().tenants_table

    def retention(self, tenant_id: str) -> Retention:
        """The tenant's policy; cached per process for MAIP_TENANT_SETTINGS_TTL seconds (0 = always read)."""
        ttl = get_settings().tenant_settings_ttl
        hit = _cache.get((self.table, tenant_id))
        if ttl > 0 and hit and hit[0] > time.monotonic():
            return hit[1]
        item = self.client.get_item(TableName=self.table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True).get("Item")
        policy = _from_item(item) if item else Retention()
        if ttl > 0:
            _cache[(self.table, tenant_id)] = (time.monotonic() + ttl, policy)
        return policy

    def set_retention(self, tenant_id: str, days: int, now: datetime | None = None) -> dict[str, Any]:
        if not isinstance(days, int) or not 1 <= days <= RETENTION_DAYS_MAX:
            raise ValueError(f"retention days must be an integer from 1 to {RETENTION_DAYS_MAX}")
        moment = now or datetime.now(timezone.utc)
        now_ms = int(moment.timestamp() * 1000)
        _cache.pop((self.table, tenant_id), None)
        policy = self.retention(tenant_id).with_days(days, now_ms)
        self.client.put_item(TableName=self.table, Item={
            "tenant_id": {"S": tenant_id},
            "retention_days": {"N": str(days)},
            "retention_history": {"L": [{"M": {"from": {"N": str(s)}, "days": {"N": str(d)}}} for s, d in policy.history]},
            "updated_at": {"S": moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")},
        })
        _cache.pop((self.table, tenant_id), None)
        return {"tenant_id": tenant_id, "retention_days": days,
                "ttl_applies_from": datetime.fromtimestamp(policy.history[-1][0] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _from_item(item: dict[str, Any]) -> Retention:
    history = tuple((int(e["M"]["from"]["N"]), int(e["M"]["days"]["N"])) for e in item.get("retention_history", {}).get("L", []))
    return Retention(days=int(item.get("retention_days", {}).get("N", RETENTION_DAYS_DEFAULT)), history=history)
