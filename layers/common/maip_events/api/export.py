"""GET /v1/observability/events/export (events:read): NDJSON export in OCSF or the list-item format."""
from __future__ import annotations

from typing import Annotated, Literal, Optional
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from maip_events import query
from maip_events.api.app import current_principal, reject_unknown_query
from maip_events.api.events import (AgentParam, EventTypeParam, FromParam, OrderParam, QParam, ResourceParam, SeverityParam,
                                    ToParam)
from maip_events.errors import InvalidRequest
from maip_events.models.errors import error_responses
from maip_events.siem.export import export

router = Router()

PROOFS_DESCRIPTION = (
    "With format=jsonl: only sealed events, each line with its `leaf_index` and inclusion `proof`, expired events as "
    "placeholder lines, and a final trailer line with the checkpoint, the public key and the window's neighbour "
    "leaves (README \"Tamper-evident audit trail\"). Cannot be combined with filters other than from/to/order.")
# A filtered export skips leaves, so it could not prove that nothing was left out.
UNPROVABLE_WITH_PROOFS = ("agent_id", "event_type", "resource_id", "severity", "q")

PATH = "/v1/observability/events/export"
FILTER_PARAMS = ("agent_id", "event_type", "resource_id", "severity", "q", "order", "from", "to")
PARAMS = {"format", *FILTER_PARAMS, "next_token", "proofs"}
NDJSON = "application/x-ndjson"


@router.get(
    PATH,
    summary="Export events as NDJSON",
    description=(
        "Every event of the window matching the filters (as in GET /v1/observability/events, `q` included), newest "
        "first (`order=asc`: oldest first), one JSON document per line: `format=jsonl` gives the list item "
        "of GET /v1/observability/events, `format=ocsf` the OCSF 1.7.0 record. A response holds at most about 4 MB; "
        "when more remain it carries `X-Next-Token` (and a `Link: <...>; rel=\"next\"` header): repeat the request "
        "with `next_token` until neither is present."
    ),
    tags=["Events"],
    responses={200: {"description": "NDJSON lines", "content": {NDJSON: {"schema": {"type": "string"}}}}, **error_responses(404)},
)
def export_events(
    fmt: Annotated[Literal["jsonl", "ocsf"], Query(alias="format", description="jsonl (list items, default) or ocsf")] = "jsonl",
    agent_id: AgentParam = None,
    event_type: EventTypeParam = None,
    resource_id: ResourceParam = None,
    severity: SeverityParam = None,
    q: QParam = None,
    order: OrderParam = "desc",
    proofs: Annotated[bool, Query(description=PROOFS_DESCRIPTION)] = False,
    time_from: FromParam = None,
    time_to: ToParam = None,
    next_token: Annotated[Optional[str], Query(max_length=4096, description="Continuation from a previous response")] = None,
):
    principal = current_principal("events:read")
    reject_unknown_query(PARAMS)
    filters = {"agent_id": agent_id, "event_type": event_type, "resource_id": resource_id, "severity": severity,
               "q": q, "from": time_from, "to": time_to}
    flt = _filter(principal.tenant_id, filters)
    if proofs:
        return _export_with_proofs(flt, fmt, order, next_token)
    return _response(export(flt, fmt, next_token, order=order), fmt, filters, order)


def _response(chunk, fmt: str, filters: dict[str, Optional[str]], order: str) -> Response:
    """One export response: its lines, their count and, when more remain, the continuation headers."""
    headers = {"X-Export-Count": str(chunk.count)}
    if chunk.next_token:
        headers["X-Next-Token"] = chunk.next_token
        headers["Link"] = f'<{PATH}?{urlencode(_next_query(fmt, filters, order, chunk.next_token))}>; rel="next"'
    return Response(status_code=200, content_type=NDJSON, body=chunk.body, headers=headers)


def _filter(tenant_id: str, filters: dict[str, Optional[str]]):
    """The list filters (agent, types, resource, severity, q, window) as one store filter."""
    return query.build_filter(tenant_id, agent_id=filters["agent_id"], event_type=filters["event_type"],
                              resource_id=filters["resource_id"], severity=filters["severity"], q=filters["q"],
                              time_from=filters["from"], time_to=filters["to"])


def _next_query(fmt: str, filters: dict[str, Optional[str]], order: str, next_token: str) -> dict[str, str]:
    """The query string of the next response: the same filters and order, and the continuation."""
    found = {"format": fmt, **{k: v for k, v in filters.items() if v is not None}}
    if order != "desc":
        found["order"] = order
    return {**found, "next_token": next_token}


def _export_with_proofs(flt, fmt: str, order: str, next_token: Optional[str]) -> Response:
    from maip_events.integrity.export import export_with_proofs

    given = router.current_event.query_string_parameters or {}
    filters = [name for name in UNPROVABLE_WITH_PROOFS if name in given]
    if fmt != "jsonl" or filters:
        raise InvalidRequest("proofs=true needs format=jsonl and no filter but from/to/order: a filtered export "
                             "cannot be contiguous.", details=[{"field": n, "issue": "not allowed with proofs=true"}
                                                               for n in filters or ["format"]])
    chunk = export_with_proofs(flt.tenant_id, flt.time_from, flt.time_to, order, next_token)
    return _response(chunk, fmt, {"from": given.get("from"), "to": given.get("to"), "proofs": "true"}, order)
