"""Event logic between the HTTP layer and the store: emit one event, list a page."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from maip_events.errors import ApiError, InvalidRequest, PayloadTooLarge
from maip_events.ids import new_event_id, parse_time
from maip_events.models.events import METADATA_MAX_BYTES, EmitEventRequest, StoredEvent
from maip_events.store.events import EventFilter, EventStore, Page
from maip_events.store.tenants import RETENTION_DAYS_DEFAULT  # the store sets the real TTL from the tenant's retention


def serialize_metadata(metadata: dict | None) -> str:
    """Canonical JSON text of the metadata; numbers keep their exact value (floats by shortest repr)."""
    text = json.dumps(metadata or {}, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if len(text.encode("utf-8", "surrogatepass")) > METADATA_MAX_BYTES:
        raise PayloadTooLarge(
            f"metadata exceeds {METADATA_MAX_BYTES} bytes when serialized.",
            details=[{"field": "metadata", "issue": f"at most {METADATA_MAX_BYTES} bytes"}],
        )
    return text


def build_event(tenant_id: str, request: EmitEventRequest, now: datetime | None = None) -> StoredEvent:
    event_id, created_at = new_event_id(now)
    created = parse_time(created_at)
    return StoredEvent(
        tenant_id=tenant_id,
        event_id=event_id,
        event_type=request.event_type,
        agent_id=request.agent_id,
        resource_id=request.resource_id,
        severity=request.severity,
        created_at=created_at,
        payload_json=serialize_metadata(request.metadata),
        expires_at=int(created.timestamp()) + RETENTION_DAYS_DEFAULT * 86400,
    )


def emit_event(tenant_id: str, request: EmitEventRequest, store: EventStore | None = None) -> StoredEvent:
    event = build_event(tenant_id, request)
    (store or EventStore()).put(event)
    return event


BATCH_MAX_EVENTS = 100


def _item_error(err: ApiError) -> dict[str, Any]:
    return {"status": err.status, "error": {"code": err.code, "message": err.message, "details": err.details}}


def _schema_error(err: ValidationError) -> ApiError:
    details = [{"field": ".".join(str(p) for p in e["loc"]) or None, "issue": e["msg"], "type": e["type"]}
               for e in err.errors(include_url=False, include_input=False)]
    return InvalidRequest("The event does not match the schema.", details=details)


def emit_batch(tenant_id: str, items: list[Any], store: EventStore | None = None) -> dict[str, Any]:
    """Each item validated on its own; the valid ones stored with one `put_many`; results in request order.

    An item's result is `{"status": 201, "event": <emit response>}` or `{"status": 4xx, "error": {...}}`.
    """
    results: list[dict[str, Any] | None] = []
    accepted: list[tuple[int, StoredEvent]] = []
    for index, item in enumerate(items):
        try:
            accepted.append((index, build_event(tenant_id, EmitEventRequest.model_validate(item))))
            results.append(None)
        except ValidationError as err:
            results.append(_item_error(_schema_error(err)))
        except ApiError as err:  # e.g. metadata over 16 KiB
            results.append(_item_error(err))
    if accepted:
        (store or EventStore()).put_many([event for _, event in accepted])
    for index, event in accepted:
        results[index] = {"status": 201, "event": event.created_response()}
    failed = len(items) - len(accepted)
    return {"results": results, "succeeded": len(accepted), "failed": failed}


def _parse_bound(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidRequest(
            f"`{name}` must be an ISO 8601 date-time, e.g. 2026-11-23T07:00:00Z.",
            details=[{"field": name, "issue": "not an ISO 8601 date-time"}],
        ) from None


def event_filter(tenant_id: str, agent_id: str | None, event_type: str | None, time_from: str | None, time_to: str | None) -> EventFilter:
    start, end = _parse_bound("from", time_from), _parse_bound("to", time_to)
    if start and end and start > end:
        raise InvalidRequest("`from` must not be after `to`.", details=[{"field": "from", "issue": "after `to`"}])
    return EventFilter(tenant_id=tenant_id, agent_id=agent_id, event_type=event_type, time_from=start, time_to=end)


def list_events(flt: EventFilter, limit: int, offset: int, next_token: str | None, store: EventStore | None = None) -> dict:
    page: Page = (store or EventStore()).page(flt, limit=limit, offset=offset, next_token=next_token)
    return {
        "items": [e.list_item() for e in page.events],
        "total": page.total,
        "limit": limit,
        "offset": page.offset,
        "next_token": page.next_token,
    }
