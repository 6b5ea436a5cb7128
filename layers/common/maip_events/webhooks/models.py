"""Request and response shapes of /v1/observability/webhooks."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from maip_events.models.formats import DATE_TIME_PATTERN, EventTypePattern, WebhookUrl

Url = WebhookUrl
Pattern = EventTypePattern
Description = Annotated[str, StringConstraints(max_length=512)]


class CreateWebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url = Field(description="https URL that receives the POSTs (http and loopback only in the local stack)")
    event_types: list[Pattern] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=64,
        description="Catalog types, `namespace.*` or `*` (the default)", examples=[["agent.*", "session.created"]],
    )
    description: Optional[Description] = None


class UpdateWebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url = None  # absent = kept; null is refused (a webhook always has a URL and at least one type)
    event_types: list[Pattern] = Field(default=None, min_length=1, max_length=64)
    description: Optional[Description] = None
    status: Optional[Literal["enabled", "disabled"]] = Field(default=None, description="`enabled` re-enables an auto-disabled endpoint")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    time_from: str = Field(alias="from", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive start, ISO 8601 (UTC if no offset)")
    time_to: Optional[str] = Field(default=None, alias="to", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive end; default now")


class Webhook(BaseModel):
    id: str = Field(examples=["maip-whk:01JD8X0Q6W1T3F4N5P6R7S8T9V"])
    url: str
    event_types: list[str]
    description: Optional[str]
    status: Literal["enabled", "disabled"]
    disabled_reason: Optional[str] = Field(description="Why the endpoint was disabled automatically, if it was")
    created_at: str
    updated_at: str


class WebhookWithSecret(Webhook):
    secret: str = Field(description="whsec_<base64>: verify `webhook-signature` with it (Standard Webhooks)")


class WebhookList(BaseModel):
    items: list[Webhook]


class DeliveryAttempt(BaseModel):
    id: str = Field(description="maip-att:<ULID>")
    delivery_id: str = Field(description="maip-dlv:<ULID>, shared by the attempts of one delivery")
    event_id: str = Field(description="The event, also sent as `webhook-id`")
    event_type: str
    attempt: int = Field(description="1 for the first try")
    status: Literal["succeeded", "retrying", "dead_lettered"]
    status_code: Optional[int]
    latency_ms: Optional[int]
    error: Optional[str]
    response_body: Optional[str] = Field(description="First KiB of the receiver's response")
    attempted_at: str
    next_retry_at: Optional[str] = Field(description="When the next attempt is due (status `retrying`)")


class DeliveryPage(BaseModel):
    items: list[DeliveryAttempt]
    next_token: Optional[str]


class ReplayAccepted(BaseModel):
    id: str = Field(description="The webhook")
    count: int = Field(description="Events queued for delivery")
    truncated: bool = Field(description="True when the window held more events than one replay sends")
    time_from: str = Field(alias="from")
    time_to: str = Field(alias="to")
