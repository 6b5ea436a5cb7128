"""List/export parameters and `q` terms -> one EventFilter (every condition ANDed).

Types are resolved against the catalog, so `namespace.*` and negations become plain sets of exact types (the
store serves a set by merging per-type index queries); severities likewise. Conditions that cannot all hold
(`agent_id=a` with `agent:b`, `type:x -type:x`) give a filter marked empty: an empty page, not an error.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from maip_events.catalog import EVENT_TYPE_SET, EVENT_TYPES, NAMESPACES, SEVERITIES
from maip_events.errors import InvalidRequest
from maip_events.ids import parse_time
from maip_events.query.grammar import invalid, parse
from maip_events.store.events import EventFilter

ALL_TYPES = frozenset(EVENT_TYPES)
ALL_SEVERITIES = frozenset(SEVERITIES)
_MICRO = timedelta(microseconds=1)


def _bad_param(field: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"`{field}` is invalid: {problem}.", details=[{"field": field, "issue": problem}])


def type_set(text: str, field: str) -> frozenset[str]:
    """`agent.registered,session.*` -> the exact catalog types it names."""
    found: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        if part.endswith(".*") and part[:-2] in NAMESPACES:
            found.update(t for t in EVENT_TYPES if t.startswith(part[:-1]))
        elif part in EVENT_TYPE_SET:
            found.add(part)
        else:
            problem = f"`{part}` is neither a catalog event type nor a namespace.* of one"
            raise invalid(problem) if field == "q" else _bad_param(field, problem)
    return frozenset(found)


def severity_set(text: str, field: str) -> frozenset[str]:
    found = {part.strip() for part in text.split(",")}
    unknown = sorted(found - ALL_SEVERITIES)
    if unknown:
        problem = f"`{unknown[0]}` is not one of info, warn, error"
        raise invalid(problem) if field == "q" else _bad_param(field, problem)
    return frozenset(found)


def _time(text: str, field: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        problem = f"`{text}` is not an ISO 8601 date or date-time"
        raise invalid(problem) if field == "q" else InvalidRequest(
            f"`{field}` must be an ISO 8601 date-time, e.g. 2026-11-23T07:00:00Z.",
            details=[{"field": field, "issue": "not an ISO 8601 date-time"}]) from None


def _span(text: str) -> tuple[datetime, datetime]:
    """[start, end) a `created` value stands for: a whole UTC day for a date, one instant for a date-time."""
    start = _time(text, "q")
    is_date = len(text.strip()) <= 10 and "T" not in text.upper()
    return start, start + (timedelta(days=1) if is_date else _MICRO)


def created_bounds(value: str) -> tuple[datetime | None, datetime | None]:
    """(inclusive from, inclusive to) of a `created:` value."""
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            start, end = _span(value[len(op):])
            return {">=": (start, None), ">": (end, None), "<": (None, start - _MICRO), "<=": (None, end - _MICRO)}[op]
    if ".." in value:
        low, _, high = value.partition("..")
        if not low or not high:
            raise invalid("a created range needs both sides (use * for an open side)")
        return (None if low == "*" else _span(low)[0]), (None if high == "*" else _span(high)[1] - _MICRO)
    start, end = _span(value)
    return start, end - _MICRO


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _same(current: str | None, value: str) -> tuple[str, bool]:
    """AND of two equality conditions on one field: (the value, whether both can hold)."""
    return value, current is None or current == value


def build_filter(tenant_id: str, *, agent_id: str | None = None, event_type: str | None = None,
                 resource_id: str | None = None, severity: str | None = None, time_from: str | None = None,
                 time_to: str | None = None, q: str | None = None) -> EventFilter:
    start, end = (_time(time_from, "from") if time_from else None), (_time(time_to, "to") if time_to else None)
    if start and end and start > end:
        raise InvalidRequest("`from` must not be after `to`.", details=[{"field": "from", "issue": "after `to`"}])
    types = type_set(event_type, "event_type") if event_type is not None else None
    severities = severity_set(severity, "severity") if severity is not None else None
    possible = True
    not_agents: set[str] = set()
    not_resources: set[str] = set()
    for term in parse(q) if q else []:
        if term.qualifier == "type":
            chosen = type_set(term.value, "q")
            chosen = ALL_TYPES - chosen if term.negated else chosen
            types = chosen if types is None else types & chosen
        elif term.qualifier == "severity":
            chosen = severity_set(term.value, "q")
            chosen = ALL_SEVERITIES - chosen if term.negated else chosen
            severities = chosen if severities is None else severities & chosen
        elif term.qualifier == "agent":
            if term.negated:
                not_agents.add(term.value)
            else:
                agent_id, ok = _same(agent_id, term.value)
                possible &= ok
        elif term.qualifier == "resource":
            if term.negated:
                not_resources.add(term.value)
            else:
                resource_id, ok = _same(resource_id, term.value)
                possible &= ok
        else:  # created
            low, high = created_bounds(term.value)
            start, end = _later(start, low), _earlier(end, high)
    if types == ALL_TYPES:
        types = None  # every type: no condition (and the cheapest plan)
    if severities == ALL_SEVERITIES:
        severities = None
    if agent_id is not None and agent_id in not_agents or resource_id is not None and resource_id in not_resources:
        possible = False
    if agent_id is not None:
        not_agents.clear()  # implied by the equality
    if resource_id is not None:
        not_resources.clear()
    if start and end and start > end:
        possible = False
    if types is not None and not types or severities is not None and not severities:
        possible = False
    return EventFilter(tenant_id=tenant_id, agent_id=agent_id, time_from=start, time_to=end, resource_id=resource_id,
                       types=types, severities=severities, not_agents=frozenset(not_agents),
                       not_resources=frozenset(not_resources), empty=not possible)
