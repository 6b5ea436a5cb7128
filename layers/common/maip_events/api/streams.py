"""/v1/observability/streams: log-stream destinations to SIEMs and storage, with delivery status.

Reads need `streams:read`, changes `streams:write`. A stream sends events to a destination its creator
chooses, so creating one, or a PATCH of its `config` (but for a new token/api_key) or `event_types`, needs
`events:read` as well."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.models.errors import error_responses
from maip_events.siem import streams
from maip_events.siem.models import (
    CreateStreamRequest,
    DeliveryStatus,
    LogStreamDocument,
    LogStreamList,
    LogStreamWithSecret,
    UpdateStreamRequest,
)

router = Router()

BASE = "/v1/observability/streams"
TAGS = ["Log streams"]
SCOPE = "streams:write"
READ_SCOPE = "streams:read"  # an addition to the contract's list (`*` covers it); tokens are masked in reads
READS_EVENTS = "events:read"
CREDENTIAL_FIELDS = {"token", "api_key"}  # rotating a destination's credential sends nothing new anywhere
StreamId = Annotated[str, Path(max_length=64, description="maip-str:<ULID>")]


def _ok(status: int, model: type, description: str) -> dict:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


@router.post(BASE, summary="Create a log stream", tags=TAGS,
             description=("Streams every matching event of the tenant to Splunk HEC (`splunk_hec`), Datadog logs (`datadog`), "
                          "an https endpoint (`https`: NDJSON batches signed like Standard Webhooks; `secret` is returned "
                          "only here) or S3 (`s3`: gzip NDJSON objects partitioned by tenant/date/hour)."),
             responses={**_ok(201, LogStreamWithSecret, "Log stream created"), **error_responses(409, 415)})
def create_stream(body: Annotated[CreateStreamRequest, Body()]):
    principal = current_principal(SCOPE).require(READS_EVENTS)
    stream = streams.create(principal.tenant_id, body)
    return json_response(201, streams.public(stream, with_secret=stream.type == "https"))


@router.get(BASE, summary="List log streams", tags=TAGS, responses={**_ok(200, LogStreamList, "The tenant's log streams"), **error_responses()})
def list_streams():
    principal = current_principal(READ_SCOPE)
    reject_unknown_query(set())
    return json_response(200, {"items": [streams.public(s) for s in streams.list_all(principal.tenant_id)]})


@router.get(f"{BASE}/<stream_id>", summary="Get a log stream", tags=TAGS,
            responses={**_ok(200, LogStreamDocument, "The log stream, tokens masked"), **error_responses(404)})
def get_stream(stream_id: StreamId):
    principal = current_principal(READ_SCOPE)
    return json_response(200, streams.public(streams.get(principal.tenant_id, stream_id)))


@router.get(f"{BASE}/<stream_id>/status", summary="Delivery status of a log stream", tags=TAGS,
            description="Delivered events and batches, failed attempts, dead-lettered events, last success and last error.",
            responses={**_ok(200, DeliveryStatus, "Delivery status"), **error_responses(404)})
def stream_status(stream_id: StreamId):
    principal = current_principal(READ_SCOPE)
    return json_response(200, streams.public(streams.get(principal.tenant_id, stream_id))["delivery"])


@router.patch(f"{BASE}/<stream_id>", summary="Update a log stream", tags=TAGS,
              description="Change config fields (others kept, e.g. send only a new token), event_types, format, description or status.",
              responses={**_ok(200, LogStreamDocument, "The updated log stream"), **error_responses(404, 409, 415)})
def update_stream(stream_id: StreamId, body: Annotated[UpdateStreamRequest, Body()]):
    principal = current_principal(SCOPE)
    # Changing where events go (any config field but a credential) or which events go there is a read of events
    if body.event_types is not None or set(body.config or {}) - CREDENTIAL_FIELDS:
        principal.require(READS_EVENTS)
    return json_response(200, streams.public(streams.update(principal.tenant_id, stream_id, body)))


@router.delete(f"{BASE}/<stream_id>", summary="Delete a log stream", tags=TAGS,
               description="Delivery stops at once, pending retries included.",
               responses={204: {"description": "Deleted"}, **error_responses(404)})
def delete_stream(stream_id: StreamId):
    principal = current_principal(SCOPE)
    streams.delete(principal.tenant_id, stream_id)
    return Response(status_code=204, body="")
