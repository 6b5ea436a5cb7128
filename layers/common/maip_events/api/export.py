"""GET /v1/observability/events/export (events:read): NDJSON export in OCSF or the list-item format."""
from __future__ import annotations

from typing import Annotated, Literal, Optional
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from maip_events import events
from maip_events.api.app import current_principal, reject_unknown_query
from maip_events.errors import InvalidRequest
from maip_events.models.errors import error_responses
from maip_events.models.formats import DATE_TIME_PATTERN
from maip_events.models.events import EventType
from maip_events.siem.export import export

router = Router()

PROOFS_DESCRIPTION = (
    "With format=jsonl: only sealed events, each line with its `leaf_index` and inclusion `proof`, expired events as "
    "placeholder lines, and a final trailer line with the checkpoint, the public key and the window's neighbour "
    "leaves (README \"Tamper-evident audit trail\"). Cannot be combined with filters other than from/to/order.")
# A filtered export skips leaves, so it could not prove that nothing was left out.
UNPROVABLE_WITH_PROOFS = ("agent_id", "event_type", "resource_id", "severity", "q")

PATH = "/v1/observability/events/export"
PARAMS = {"format", "agent_id", "event_type", "from", "to", "next_token", "proofs", "order"}
NDJSON = "application/x-ndjson"


@router.get(
    PATH,
    summary="Export events as NDJSON",
    description=(
        "Every event of the window, newest first, one JSON document per line: `format=jsonl` gives the list item "
        "of GET /v1/observability/events, `format=ocsf` the OCSF 1.7.0 record. A response holds at most about 4 MB; "
        "when more remain it carries `X-Next-Token` (and a `Link: <...>; rel=\"next\"` header): repeat the request "
        "with `next_token` until neither is present."
    ),
    tags=["Events"],
    responses={200: {"description": "NDJSON lines", "content": {NDJSON: {"schema": {"type": "string"}}}}, **error_responses(404)},
)
def export_events(
    fmt: Annotated[Literal["jsonl", "ocsf"], Query(alias="format", description="jsonl (list items, default) or ocsf")] = "jsonl",
    agent_id: Annotated[Optional[str], Query(min_length=1, max_length=256, description="Only this agent's events")] = None,
    event_type: Annotated[Optional[EventType], Query(description="Only this event type")] = None,
    time_from: Annotated[Optional[str], Query(alias="from", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive start, ISO 8601 (UTC if no offset)")] = None,
    time_to: Annotated[Optional[str], Query(alias="to", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive end, ISO 8601 (UTC if no offset)")] = None,
    next_token: Annotated[Optional[str], Query(max_length=4096, description="Continuation from a previous response")] = None,
    proofs: Annotated[bool, Query(description=PROOFS_DESCRIPTION)] = False,
    order: Annotated[Literal["desc", "asc"], Query(description="desc (newest first, default) or asc")] = "desc",
):
    principal = current_principal("events:read")
    reject_unknown_query(PARAMS)
    flt = events.event_filter(principal.tenant_id, agent_id, event_type, time_from, time_to)
    if proofs:
        return _export_with_proofs(flt, fmt, order, next_token)
    chunk = export(flt, fmt, next_token)
    headers = {"X-Export-Count": str(chunk.count)}
    if chunk.next_token:
        query = {k: v for k, v in {"format": fmt, "agent_id": agent_id, "event_type": event_type, "from": time_from,
                                   "to": time_to, "next_token": chunk.next_token}.items() if v is not None}
        headers["X-Next-Token"] = chunk.next_token
        headers["Link"] = f'<{PATH}?{urlencode(query)}>; rel="next"'
    return Response(status_code=200, content_type=NDJSON, body=chunk.body, headers=headers)


def _export_with_proofs(flt, fmt: str, order: str, next_token: Optional[str]) -> Response:
    from maip_events.integrity.export import export_with_proofs

    given = router.current_event.query_string_parameters or {}
    filters = [name for name in UNPROVABLE_WITH_PROOFS if name in given]
    if fmt != "jsonl" or filters:
        raise InvalidRequest("proofs=true needs format=jsonl and no filter but from/to/order: a filtered export "
                             "cannot be contiguous.", details=[{"field": n, "issue": "not allowed with proofs=true"}
                                                               for n in filters or ["format"]])
    chunk = export_with_proofs(flt.tenant_id, flt.time_from, flt.time_to, order, next_token)
    headers = {"X-Export-Count": str(chunk.count)}
    if chunk.next_token:
        query = {k: v for k, v in {"format": fmt, "from": given.get("from"), "to": given.get("to"), "order": order,
                                   "proofs": "true", "next_token": chunk.next_token}.items() if v is not None}
        headers["X-Next-Token"] = chunk.next_token
        headers["Link"] = f'<{PATH}?{urlencode(query)}>; rel="next"'
    return Response(status_code=200, content_type=NDJSON, body=chunk.body, headers=headers)
