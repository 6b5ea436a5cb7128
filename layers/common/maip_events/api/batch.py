"""POST /v1/observability/events:batch (events:write): up to 100 events, each validated and answered on its own."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from pydantic import BaseModel, ConfigDict, Field

from maip_events import events, idempotency
from maip_events.api.app import current_principal, json_response
from maip_events.models.errors import ErrorBody, error_responses
from maip_events.models.events import EventCreated

router = Router()

PATH = "/v1/observability/events:batch"


class EmitBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Items are plain objects here on purpose: each is validated as an emit body on its own, so one bad
    # event yields an error in its slot instead of rejecting the whole batch.
    events: list[dict[str, Any]] = Field(
        min_length=1, max_length=events.BATCH_MAX_EVENTS,
        description="1-100 objects, each a body of POST /v1/observability/events (EmitEventRequest)",
    )


class BatchItemResult(BaseModel):
    status: int = Field(description="201 stored, the 4xx this event alone would have got, or 500 if a storage "
                                    "error left it unstored (retryable)")
    event: Optional[EventCreated] = Field(default=None, description="Present when status is 201")
    error: Optional[ErrorBody] = Field(default=None, description="Present when status is not 201")


class EmitBatchResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="One per submitted event, in request order")
    succeeded: int
    failed: int


@router.post(
    PATH,
    summary="Emit up to 100 events",
    description=(
        "Each event is validated independently; valid ones are stored and the rest answered with their "
        "error, in request order. 200 when every event was stored, 207 when at least one was not (an event a "
        "storage error left unstored is a retryable 500 `internal` in its slot; retry with the same "
        "Idempotency-Key and only the missing events are written). Text that cannot be stored (e.g. a lone "
        "surrogate) anywhere is a 400 for the whole batch. The whole request must fit in 6 MB (Lambda's payload "
        "limit), else 413."
    ),
    tags=["Events"],
    responses={
        200: {"description": "Every event stored", "content": {"application/json": {"model": EmitBatchResponse}}},
        207: {"description": "Some or all events rejected (see each result)",
              "content": {"application/json": {"model": EmitBatchResponse}}},
        **error_responses(409, 413, 415),
    },
)
def emit_batch(
    body: Annotated[EmitBatchRequest, Body()],
    idempotency_key: Annotated[Optional[str], Header(
        alias="idempotency-key", pattern=idempotency.KEY_PATTERN,
        description="Retries of the whole batch with the same key within 24 h return the first response.")] = None,
):
    principal = current_principal("events:write")
    document, replayed = events.emit_batch(principal.tenant_id, body.events, key=idempotency.validate_key(idempotency_key))
    return json_response(200 if document["failed"] == 0 else 207, document,
                         {idempotency.REPLAYED_HEADER: "true"} if replayed else None)
