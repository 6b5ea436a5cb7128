"""/v1/observability/events: emit (events:write) and list (events:read)."""
from __future__ import annotations

import json
from typing import Annotated, Optional

from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from maip_events import events, idempotency
from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.models.errors import error_responses
from maip_events.models.formats import DATE_TIME_PATTERN
from maip_events.models.events import EmitEventRequest, EventCreated, EventPage, EventType
from maip_events.store.events import EventStore

router = Router()

LIST_PARAMS = {"agent_id", "event_type", "from", "to", "limit", "offset", "next_token"}


@router.post(
    "/v1/observability/events",
    summary="Emit an event",
    description="Stores one event for the caller's tenant; it is then listed, delivered to webhooks and exported.",
    tags=["Events"],
    responses={201: {"description": "Event stored (or, for a repeated Idempotency-Key, the first response again)",
                      "content": {"application/json": {"model": EventCreated}}}, **error_responses(409, 413, 415)},
)
def emit_event(
    body: Annotated[EmitEventRequest, Body()],
    idempotency_key: Annotated[Optional[str], Header(
        alias="idempotency-key", pattern=idempotency.KEY_PATTERN,
        description="Retries with the same key within 24 h return the first response and store nothing new; "
                    "the same key with a different body is a 409 `conflict`.")] = None,
):
    principal = current_principal("events:write")
    key = idempotency.validate_key(idempotency_key)
    # The body is dumped only for the idempotency record (compared on retries); without a key nothing reads it.
    document, replayed = events.emit_event(principal.tenant_id, body, key=key,
                                           body=body.model_dump(mode="json") if key is not None else None)
    return json_response(201, document, {idempotency.REPLAYED_HEADER: "true"} if replayed else None)


@router.get(
    "/v1/observability/events",
    summary="List events",
    description="Newest first. `total` counts every match (from counts kept by the events stream, within ~2 s of a write); "
                "continue with `next_token` or `offset`. A page stops early, with `next_token`, before its body passes ~5 MB.",
    tags=["Events"],
    responses={200: {"description": "A page of events", "content": {"application/json": {"model": EventPage}}}, **error_responses()},
)
def list_events(
    agent_id: Annotated[Optional[str], Query(min_length=1, max_length=256, description="Only this agent's events")] = None,
    event_type: Annotated[Optional[EventType], Query(description="Only this event type")] = None,
    time_from: Annotated[Optional[str], Query(alias="from", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive start, ISO 8601 (UTC if no offset)")] = None,
    time_to: Annotated[Optional[str], Query(alias="to", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive end, ISO 8601 (UTC if no offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Events to skip")] = 0,
    next_token: Annotated[Optional[str], Query(max_length=4096, description="Cursor from a previous page")] = None,
):
    principal = current_principal("events:read")
    reject_unknown_query(LIST_PARAMS)
    flt = events.event_filter(principal.tenant_id, agent_id, event_type, time_from, time_to)
    page = EventStore().page(flt, limit=limit, offset=offset, next_token=next_token)
    # The body is spliced from each item's JSON text (no per-item model); a page stops before ~5 MB.
    body = (f'{{"items":[{",".join(e.json for e in page.events)}],"total":{page.total},"limit":{limit},'
            f'"offset":{page.offset},"next_token":{json.dumps(page.next_token)}}}')
    return Response(status_code=200, content_type="application/json", body=body)
