"""Event logic between the HTTP layer and the store: emit one event or a batch (with Idempotency-Key), list a page."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from aws_lambda_powertools import Logger

from maip_events import idempotency
from maip_events.errors import ApiError, Conflict, Internal, InvalidRequest, PayloadTooLarge
from maip_events.ids import new_event_id, parse_time
from maip_events.models.events import METADATA_MAX_BYTES, EmitEventRequest, StoredEvent, unstorable_text
from maip_events.settings import get_settings
from maip_events.store.events import EventFilter, EventStore, Page
from maip_events.store.tenants import RETENTION_DAYS_DEFAULT  # the store sets the real TTL from the tenant's retention

logger = Logger(service="maip-events")


def serialize_metadata(metadata: dict | None) -> str:
    """Canonical JSON text of the metadata; numbers keep their exact value (floats by shortest repr)."""
    text = json.dumps(metadata or {}, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if len(text.encode("utf-8", "surrogatepass")) > METADATA_MAX_BYTES:
        raise PayloadTooLarge(
            f"metadata exceeds {METADATA_MAX_BYTES} bytes when serialized.",
            details=[{"field": "metadata", "issue": f"at most {METADATA_MAX_BYTES} bytes"}],
        )
    return text


def storable(request: EmitEventRequest, prefix: str = "") -> None:
    """400 naming every field holding text DynamoDB cannot store (e.g. a lone surrogate "\\udfff", which JSON
    and pydantic accept but UTF-8 cannot encode), before anything is written."""
    details = []
    for name in ("agent_id", "resource_id"):
        value = getattr(request, name)
        if value is not None:
            details += unstorable_text(value, prefix + name)
    if request.metadata is not None:
        details += unstorable_text(request.metadata, prefix + "metadata")
    if details:
        raise InvalidRequest("The event contains text that cannot be stored.", details=details)


def build_event(tenant_id: str, request: EmitEventRequest, now: datetime | None = None) -> StoredEvent:
    event_id, created_at = new_event_id(now)
    return _event(tenant_id, request, event_id, created_at)


def _event(tenant_id: str, request: EmitEventRequest, event_id: str, created_at: str, shard: int = 0,
           expires_at: int | None = None) -> StoredEvent:
    if expires_at is None:  # a provisional TTL; EventStore.prepare sets the tenant's
        expires_at = int(parse_time(created_at).timestamp()) + RETENTION_DAYS_DEFAULT * 86400
    return StoredEvent(
        tenant_id=tenant_id,
        event_id=event_id,
        event_type=request.event_type,
        agent_id=request.agent_id,
        resource_id=request.resource_id,
        severity=request.severity,
        created_at=created_at,
        payload_json=serialize_metadata(request.metadata),
        expires_at=expires_at,
        shard=shard,
    )


def emit_event(tenant_id: str, request: EmitEventRequest, store: EventStore | None = None, key: str | None = None,
               body: Any = None) -> tuple[dict[str, Any], bool]:
    """Stores one event; returns (the 201 document, replayed).

    Without a key: one PutItem of one item. With a key: one TransactWriteItems of the event and its idempotency
    record (holding the response), so a retry after a lost response finds the record and stores nothing new.
    """
    storable(request)
    store = store or EventStore()
    event = store.prepare([build_event(tenant_id, request)])[0]
    document = event.created_response()
    if key is None:
        if not store.put(event, prepared=True):  # a fresh ULID already stored: never claim it as this event
            raise Internal("The event id collided; retry.")
        return document, False
    record = idempotency.new_record("emit", tenant_id, key, body, idempotency.COMPLETE, response=document)
    existing = store.put_with(event, record.put_request(get_settings().idempotency_table))
    if existing is None:
        return document, False
    if not existing:  # an endpoint that does not return the conflicting item: read it
        from maip_events.store.idempotency import IdempotencyStore

        existing = IdempotencyStore(store.client).get(record.id) or {}
    if not existing:
        raise Internal("The idempotency record could not be read; retry.")
    found = idempotency.from_item(existing)
    idempotency.check_same_body(found, record)
    if found.response is None:  # cannot happen for emit records; never answer with a made-up document
        raise Conflict(f"The request with this {idempotency.HEADER} has no stored response.")
    return found.response, True


BATCH_MAX_EVENTS = 100


def _item_error(err: ApiError) -> dict[str, Any]:
    return {"status": err.status, "error": {"code": err.code, "message": err.message, "details": err.details}}


def _schema_error(err: ValidationError) -> ApiError:
    details = [{"field": ".".join(str(p) for p in e["loc"]) or None, "issue": e["msg"], "type": e["type"]}
               for e in err.errors(include_url=False, include_input=False)]
    return InvalidRequest("The event does not match the schema.", details=details)


_NOT_STORED = {"status": 500, "error": {
    "code": "internal",
    "message": "The event was not stored because of a storage error; retry it (with the same Idempotency-Key, "
               "only events not yet stored are written).",
    "details": [{"retryable": True}],
}}


def _validate(items: list[Any]) -> tuple[list[dict[str, Any] | None], dict[int, EmitEventRequest]]:
    """Every item fully checked (schema, size) before any write: (error results, valid requests)."""
    results: list[dict[str, Any] | None] = []
    valid: dict[int, EmitEventRequest] = {}
    for item in items:
        try:
            request = EmitEventRequest.model_validate(item)
            serialize_metadata(request.metadata)  # 413 over 16 KiB
            valid[len(results)] = request
            results.append(None)
        except ValidationError as err:
            results.append(_item_error(_schema_error(err)))
        except ApiError as err:
            results.append(_item_error(err))
    return results, valid


def emit_batch(tenant_id: str, items: list[Any], store: EventStore | None = None, key: str | None = None,
               records: Any = None) -> tuple[dict[str, Any], bool]:
    """Each item validated on its own; the valid ones stored; results in request order. Returns (document, replayed).

    An item's result is `{"status": 201, "event": ...}` when stored, its 4xx when invalid, or a retryable 500
    `internal` when a storage error left it unstored (the response is then 207, never a 500 after partial writes).
    With a key the plan (ids, shards, TTLs) is recorded as "pending" before any event is written; a retry re-drives
    the same plan, so nothing is stored twice, and once everything is stored the response is kept and replayed.
    """
    # Text that cannot be stored is a fault of the body's encoding, like invalid JSON: the whole request is a 400.
    unstorable = unstorable_text(items, "events")
    if unstorable:
        raise InvalidRequest("The batch contains text that cannot be stored; nothing was stored.", details=unstorable)
    store = store or EventStore()
    results, valid = _validate(items)
    planned = store.prepare([build_event(tenant_id, request) for request in valid.values()])
    plan = [{"i": i, "id": e.event_id, "at": e.created_at, "s": e.shard, "x": e.expires_at} for i, e in zip(valid, planned)]
    record = None
    if key is not None:
        from maip_events.store.idempotency import IdempotencyStore

        records = records or IdempotencyStore(store.client)
        record = idempotency.new_record("batch", tenant_id, key, items, idempotency.PENDING, plan=plan)
        existing = records.create(record)
        if existing is not None:
            idempotency.check_same_body(existing, record)
            if existing.status == idempotency.COMPLETE and existing.response is not None:
                return existing.response, True
            plan = existing.plan or []  # pending: re-drive exactly the first attempt's ids
    events = {p["i"]: _event(tenant_id, valid[p["i"]], p["id"], p["at"], p["s"], p["x"]) for p in plan if p["i"] in valid}
    outcome = store.put_many(list(events.values()), prepared=True)
    for index, event in events.items():
        if event.event_id in outcome.stored:
            results[index] = {"status": 201, "event": event.created_response()}
        else:
            results[index] = _NOT_STORED
    for index in range(len(results)):
        if results[index] is None:  # valid but absent from a re-driven plan (cannot happen: validation is deterministic)
            results[index] = _NOT_STORED
    succeeded = sum(1 for r in results if r["status"] == 201)
    document = {"results": results, "succeeded": succeeded, "failed": len(items) - succeeded}
    if outcome.failed:
        logger.warning("batch partly stored", extra={"not_stored": len(outcome.failed), "first_error": next(iter(outcome.failed.values()))})
    elif record is not None:
        try:  # only a fully written batch becomes final; else (or if this fails) a retry re-drives the same plan
            records.complete(record.id, document)
        except Exception:
            logger.exception("batch stored but its idempotency record stays pending")
    return document, False


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
