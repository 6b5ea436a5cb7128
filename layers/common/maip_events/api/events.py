"""/v1/observability/events: emit (events:write) and list (events:read)."""
from __future__ import annotations

import json
from typing import Annotated, Literal, Optional

from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from maip_events import events, idempotency, query
from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.models.errors import error_responses
from maip_events.models.formats import DATE_TIME_PATTERN
from maip_events.models.events import EmitEventRequest, EventCreated, EventPage
from maip_events.query.grammar import EVENT_TYPE_LIST_PATTERN, Q_DESCRIPTION, Q_MAX_LENGTH, Q_PATTERN, SEVERITY_LIST_PATTERN
from maip_events.store.events import EventStore

router = Router()

LIST_PARAMS = {"agent_id", "event_type", "resource_id", "severity", "q", "order", "from", "to", "limit", "offset", "next_token"}

# Filter parameters shared with the export (api/export.py): one definition, so both document the same grammar.
AgentParam = Annotated[Optional[str], Query(min_length=1, max_length=256, description="Only this agent's events")]
EventTypeParam = Annotated[Optional[str], Query(
    max_length=2048, pattern=EVENT_TYPE_LIST_PATTERN,
    description="Only these event types: a catalog type, `namespace.*` (every type of the namespace) or a comma list "
                "of both, e.g. `agent.*,session.created`")]
ResourceParam = Annotated[Optional[str], Query(min_length=1, max_length=256, description="Only events of this resource")]
SeverityParam = Annotated[Optional[str], Query(
    max_length=64, pattern=SEVERITY_LIST_PATTERN, description="Only these severities: `info`, `warn`, `error` or a comma list, e.g. `warn,error`")]
OrderParam = Annotated[Literal["desc", "asc"], Query(
    description="`desc` (default) newest first, `asc` oldest first; a `next_token` keeps the order it was made with")]
FromParam = Annotated[Optional[str], Query(alias="from", max_length=64, pattern=DATE_TIME_PATTERN,
                                           description="Inclusive start, ISO 8601 (UTC if no offset)")]
ToParam = Annotated[Optional[str], Query(alias="to", max_length=64, pattern=DATE_TIME_PATTERN,
                                         description="Inclusive end, ISO 8601 (UTC if no offset)")]
# The grammar is checked by maip_events.query (so a 400 can say what is supported); the pattern documents it exactly.
QParam = Annotated[Optional[str], Query(max_length=Q_MAX_LENGTH, description=Q_DESCRIPTION, json_schema_extra={"pattern": Q_PATTERN})]


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
    description="Newest first (or oldest first with `order=asc`). Every filter parameter and every `q` term must hold. "
                "`total` counts every match, a just-stored event included (counts kept by the events stream, plus the "
                "newest events they do not hold yet); "
                "continue with `next_token` or `offset`. A page stops early, with `next_token`, before its body passes ~5 MB.",
    tags=["Events"],
    responses={200: {"description": "A page of events", "content": {"application/json": {"model": EventPage}}}, **error_responses()},
)
def list_events(
    agent_id: AgentParam = None,
    event_type: EventTypeParam = None,
    resource_id: ResourceParam = None,
    severity: SeverityParam = None,
    q: QParam = None,
    order: OrderParam = "desc",
    time_from: FromParam = None,
    time_to: ToParam = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Events to skip")] = 0,
    next_token: Annotated[Optional[str], Query(max_length=4096, description="Cursor from a previous page")] = None,
):
    principal = current_principal("events:read")
    reject_unknown_query(LIST_PARAMS)
    flt = query.build_filter(principal.tenant_id, agent_id=agent_id, event_type=event_type, resource_id=resource_id,
                             severity=severity, time_from=time_from, time_to=time_to, q=q)
    page = EventStore().page(flt, limit=limit, offset=offset, next_token=next_token, order=order)
    # The body is spliced from each item's JSON text (no per-item model); a page stops before ~5 MB.
    body = (f'{{"items":[{",".join([e.json for e in page.events])}],"total":{page.total},"limit":{limit},'
            f'"offset":{page.offset},"next_token":{json.dumps(page.next_token)}}}')
    return Response(status_code=200, content_type="application/json", body=body)
