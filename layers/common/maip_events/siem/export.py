"""GET /v1/observability/events/export: the whole window as NDJSON, newest first.

API Gateway HTTP APIs cannot stream and a Lambda response is at most 6 MB, so one response carries at
most `MAIP_EXPORT_MAX_BYTES` (measured as the JSON-escaped size the Lambda envelope will have) and
`MAIP_EXPORT_MAX_EVENTS`; when the window holds more, the response names a signed continuation
(`X-Next-Token` header and a `Link: <...>; rel="next"` header) and the client repeats the request with
`next_token` until no continuation comes back."""
from __future__ import annotations

import json
from dataclasses import dataclass

from maip_events.settings import get_settings
from maip_events.siem.records import line
from maip_events.store import cursor
from maip_events.store.events import EventFilter, EventStore


@dataclass
class ExportChunk:
    body: str
    count: int
    next_token: str | None


def _scope(flt: EventFilter, fmt: str) -> dict:
    return {**flt.scope(), "export": fmt}


def export(flt: EventFilter, fmt: str, next_token: str | None = None, store: EventStore | None = None,
           order: str = "desc") -> ExportChunk:
    settings = get_settings()
    state = cursor.decode(next_token, _scope(flt, fmt)) if next_token else {}
    after = str(state["after"]) if state else None
    ascending = state.get("order", order) == "asc" if state else order == "asc"  # a continuation keeps its order
    lines: list[str] = []
    size, last_id, more = 0, None, False
    for event in (store or EventStore()).iterate(flt, after, page_size=500, ascending=ascending):
        text = line(event, fmt)
        # Lambda returns the body inside a JSON envelope: count the escaped size, plus the newline.
        cost = len(json.dumps(text)) + 2
        if len(lines) >= settings.export_max_events or (lines and size + cost > settings.export_max_bytes):
            more = True
            break
        lines.append(text)
        size += cost
        last_id = event.event_id
    place = {"after": last_id, **({"order": "asc"} if ascending else {})}
    token = cursor.encode(_scope(flt, fmt), place) if more and last_id else None
    return ExportChunk(body="".join(f"{t}\n" for t in lines), count=len(lines), next_token=token)
