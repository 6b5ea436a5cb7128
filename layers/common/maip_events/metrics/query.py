"""GET /v1/observability/metrics: time series from the hourly counters.

Counters are hour-granular, so the window is aligned outwards to whole intervals: `from` down to the start
of its hour (or UTC day), `to` up to the last millisecond of its hour (or day). The response echoes the
aligned window, and its totals equal what GET /v1/observability/events counts for exactly that window."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from maip_events.errors import InvalidRequest
from maip_events.ids import format_time, parse_time, utc_now
from maip_events.store.metrics import MetricsStore
from maip_events.store.tenants import TenantSettingsStore

MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=366)}
DEFAULT_SPAN = timedelta(hours=24)


def _bound(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidRequest(f"`{name}` must be an ISO 8601 date-time, e.g. 2026-11-23T07:00:00Z.",
                             details=[{"field": name, "issue": "not an ISO 8601 date-time"}]) from None


def _floor(moment: datetime, interval: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if interval == "day" else moment


def aligned_window(time_from: str | None, time_to: str | None, interval: str) -> tuple[datetime, datetime]:
    end = _bound("to", time_to) or utc_now()
    start = _bound("from", time_from) or end - DEFAULT_SPAN
    if start > end:
        raise InvalidRequest("`from` must not be after `to`.", details=[{"field": "from", "issue": "after `to`"}])
    step = timedelta(days=1) if interval == "day" else timedelta(hours=1)
    start, end = _floor(start, interval), _floor(end, interval) + step - timedelta(milliseconds=1)
    if end - start > MAX_SPAN[interval]:
        raise InvalidRequest(f"The window may span at most {MAX_SPAN[interval].days} days with interval={interval}.",
                             details=[{"field": "from", "issue": "window too long"}])
    return start, end


def _bucket(hour: str, interval: str) -> str:
    start = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)
    return format_time(_floor(start, interval))


def query(tenant_id: str, time_from: str | None, time_to: str | None, group_by: str | None, interval: str,
          store: MetricsStore | None = None) -> dict[str, Any]:
    start, end = aligned_window(time_from, time_to, interval)
    dimension = group_by or "total"
    # Days past the tenant's archive are not counted, exactly as the list endpoint does not show them.
    visible = datetime.fromtimestamp(TenantSettingsStore().tiers(tenant_id).visible_from(int(utc_now().timestamp() * 1000)) / 1000,
                                     timezone.utc).strftime("%Y-%m-%dT%H")
    points: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first = max(start.strftime("%Y-%m-%dT%H"), visible)
    for counter in (store or MetricsStore()).counters(tenant_id, dimension, first, end.strftime("%Y-%m-%dT%H")):
        if counter.count:
            key = counter.value if group_by and counter.value else None
            points[key][_bucket(counter.hour, interval)] += counter.count
    series = [{"key": key, "total": sum(by_time.values()),
               "points": [{"timestamp": t, "count": c} for t, c in sorted(by_time.items())]}
              for key, by_time in points.items()]
    series.sort(key=lambda s: (-s["total"], s["key"] or ""))
    return {
        "from": format_time(start),
        "to": format_time(end),
        "interval": interval,
        "group_by": group_by,
        "total": sum(s["total"] for s in series),
        "series": series,
    }
