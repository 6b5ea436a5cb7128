"""/v1/observability/webhooks: subscriptions (webhooks:write / webhooks:read), their delivery log and replay.

A webhook sends events to a URL its creator chooses, so whatever points events at a URL (create, a PATCH of
`url` or `event_types`, replay) is a read of events too and needs `events:read` besides `webhooks:write`."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.models.errors import error_responses
from maip_events.quota.replay import replay_allowance
from maip_events.webhooks import subscriptions
from maip_events.webhooks.models import (
    CreateWebhookRequest,
    DeliveryPage,
    ReplayAccepted,
    ReplayRequest,
    UpdateWebhookRequest,
    Webhook,
    WebhookList,
    WebhookWithSecret,
)

router = Router()

BASE = "/v1/observability/webhooks"
TAGS = ["Webhooks"]
READS_EVENTS = "events:read"
WebhookId = Annotated[str, Path(max_length=64, description="maip-whk:<ULID>")]


def _ok(status: int, model: type, description: str) -> dict:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


@router.post(BASE, summary="Create a webhook", tags=TAGS,
             description="Subscribes a URL to event types. The `secret` (Standard Webhooks `whsec_`) is returned here and by rotate-secret only.",
             responses={**_ok(201, WebhookWithSecret, "Webhook created"), **error_responses(409, 415)})
def create_webhook(body: Annotated[CreateWebhookRequest, Body()]):
    principal = current_principal("webhooks:write").require(READS_EVENTS)
    return json_response(201, subscriptions.create(principal.tenant_id, body).public(with_secret=True))


@router.get(BASE, summary="List webhooks", tags=TAGS, responses={**_ok(200, WebhookList, "The tenant's webhooks"), **error_responses()})
def list_webhooks():
    principal = current_principal("webhooks:read")
    reject_unknown_query(set())
    return json_response(200, {"items": [s.public() for s in subscriptions.list_all(principal.tenant_id)]})


@router.get(f"{BASE}/<webhook_id>", summary="Get a webhook", tags=TAGS, responses={**_ok(200, Webhook, "The webhook"), **error_responses(404)})
def get_webhook(webhook_id: WebhookId):
    principal = current_principal("webhooks:read")
    return json_response(200, subscriptions.get(principal.tenant_id, webhook_id).public())


@router.patch(f"{BASE}/<webhook_id>", summary="Update a webhook", tags=TAGS,
              description="Change url, event_types, description or status; `status: enabled` re-enables an auto-disabled endpoint.",
              responses={**_ok(200, Webhook, "The updated webhook"), **error_responses(404, 415)})
def update_webhook(webhook_id: WebhookId, body: Annotated[UpdateWebhookRequest, Body()]):
    principal = current_principal("webhooks:write")
    if body.url is not None or body.event_types is not None:  # redirects or widens what the URL receives
        principal.require(READS_EVENTS)
    return json_response(200, subscriptions.update(principal.tenant_id, webhook_id, body).public())


@router.delete(f"{BASE}/<webhook_id>", summary="Delete a webhook", tags=TAGS,
               description="Deliveries stop at once, including pending retries.",
               responses={204: {"description": "Deleted"}, **error_responses(404)})
def delete_webhook(webhook_id: WebhookId):
    principal = current_principal("webhooks:write")
    subscriptions.delete(principal.tenant_id, webhook_id)
    return Response(status_code=204, body="")


@router.post(f"{BASE}/<webhook_id>/rotate-secret", summary="Rotate the signing secret", tags=TAGS,
             description="Returns the new secret; for 24 hours deliveries carry signatures by both the new and the old secret.",
             responses={**_ok(200, WebhookWithSecret, "The webhook with its new secret"), **error_responses(404)})
def rotate_secret(webhook_id: WebhookId):
    principal = current_principal("webhooks:write")
    return json_response(200, subscriptions.rotate_secret(principal.tenant_id, webhook_id).public(with_secret=True))


@router.get(f"{BASE}/<webhook_id>/deliveries", summary="List delivery attempts", tags=TAGS,
            description="Every attempt, newest first: status code, latency, error and the next retry.",
            responses={**_ok(200, DeliveryPage, "A page of attempts"), **error_responses(404)})
def list_deliveries(
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    next_token: Annotated[Optional[str], Query(max_length=4096, description="Cursor from a previous page")] = None,
    event_id: Annotated[Optional[str], Query(max_length=64, description="Only attempts for this event")] = None,
    status: Annotated[Optional[Literal["succeeded", "retrying", "dead_lettered"]], Query(description="Only attempts with this outcome")] = None,
):
    principal = current_principal("webhooks:read")
    reject_unknown_query({"limit", "next_token", "event_id", "status"})
    return json_response(200, subscriptions.deliveries(principal.tenant_id, webhook_id, limit, next_token, event_id, status))


@router.post(f"{BASE}/<webhook_id>/replay", summary="Replay stored events", tags=TAGS,
             description=("Queues a new delivery of every stored event in [from, to] that the webhook matches: a window of at "
                          "most 7 days, at most 1,000 events per call (`truncated` when the window held more), one running "
                          "replay per webhook and a per-tenant budget of replayed events (429 `rate_limited` with Retry-After)."),
             responses={**_ok(202, ReplayAccepted, "Replay queued"), **error_responses(404, 409, 415, 429)})
def replay(webhook_id: WebhookId, body: Annotated[ReplayRequest, Body()]):
    principal = current_principal("webhooks:write").require(READS_EVENTS)
    with replay_allowance(principal.tenant_id, webhook_id, body.time_from, body.time_to) as allowance:
        accepted = subscriptions.replay(principal.tenant_id, webhook_id, body, max_events=allowance.max_events)
        allowance.used = accepted["count"]
    return json_response(202, accepted)
