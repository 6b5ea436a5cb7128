"""Which event types a subscription receives: exact catalog types, `namespace.*`, or `*`."""
from __future__ import annotations

from maip_events.catalog import EVENT_TYPE_SET, NAMESPACES
from maip_events.errors import InvalidRequest

MAX_PATTERNS = 64


def validate_patterns(patterns: list[str]) -> list[str]:
    """The patterns, de-duplicated in their given order; 400 for anything that could never match."""
    if not patterns:
        raise InvalidRequest("`event_types` needs at least one entry.", details=[{"field": "event_types", "issue": "empty"}])
    if len(patterns) > MAX_PATTERNS:
        raise InvalidRequest(f"`event_types` takes at most {MAX_PATTERNS} entries.", details=[{"field": "event_types", "issue": "too many"}])
    unknown = [p for p in patterns if not _valid(p)]
    if unknown:
        raise InvalidRequest(
            f"Unknown event type(s): {', '.join(unknown)}. Use catalog types, `namespace.*` or `*`.",
            details=[{"field": "event_types", "issue": f"unknown event type {p!r}"} for p in unknown],
        )
    return list(dict.fromkeys(patterns))


def _valid(pattern: str) -> bool:
    if pattern == "*" or pattern in EVENT_TYPE_SET:
        return True
    return pattern.endswith(".*") and pattern[:-2] in NAMESPACES


def matches(event_type: str, patterns: list[str]) -> bool:
    namespace = event_type.split(".", 1)[0]
    return any(p == "*" or p == event_type or p == f"{namespace}.*" for p in patterns)
