"""Shapes of events: what clients send, what they get back, and what is stored."""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from maip_events.catalog import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Severity = Literal["info", "warn", "error"]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]

METADATA_MAX_BYTES = 16 * 1024


class EmitEventRequest(BaseModel):
    """Body of POST /v1/observability/events."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_type: EventType = Field(description="Dot-separated event type from the catalog, e.g. agent.registered")
    agent_id: Optional[Identifier] = Field(default=None, description="MAIP agent identifier, if applicable")
    resource_id: Optional[Identifier] = Field(default=None, description="Identifier of the affected resource")
    metadata: Optional[dict[str, Any]] = Field(default=None, description="Arbitrary JSON object, at most 16 KiB serialized")
    severity: Severity = Field(default="info", description="info, warn or error")


def unstorable_text(value: Any, path: str) -> list[dict[str, str]]:
    """Strings (values or object keys) DynamoDB cannot store, e.g. a lone surrogate "\\udfff" that JSON allows
    but UTF-8 cannot encode; one detail per field, named by its dotted path (`metadata.note`)."""
    found: list[dict[str, str]] = []

    def bad(text: str) -> bool:
        try:
            text.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True

    def walk(node: Any, where: str) -> None:
        if isinstance(node, str):
            if bad(node):
                found.append({"field": where, "issue": "contains text that cannot be stored (e.g. a lone UTF-16 surrogate)"})
        elif isinstance(node, dict):
            for key, child in node.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and bad(key):
                    found.append({"field": name.encode("utf-8", "backslashreplace").decode("utf-8"),
                                  "issue": "key contains text that cannot be stored (e.g. a lone UTF-16 surrogate)"})
                    continue
                walk(child, name)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}.{index}" if where else str(index))

    walk(value, path)
    return found


class EventCreated(BaseModel):
    """201 response of POST /v1/observability/events."""

    id: str = Field(description="maip-evt:<ULID>", examples=["maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9V"])
    event_type: EventType
    agent_id: Optional[str]
    resource_id: Optional[str]
    severity: Severity
    created_at: str = Field(description="UTC ISO 8601 with milliseconds", examples=["2026-11-23T07:36:56.123Z"])


class EventItem(BaseModel):
    """One event in a list page, an export, or a webhook's `data`."""

    event_id: str
    event_type: EventType
    agent_id: Optional[str]
    resource_id: Optional[str]
    severity: Severity
    payload: dict[str, Any]
    timestamp: str


class EventPage(BaseModel):
    """200 response of GET /v1/observability/events."""

    items: list[EventItem]
    total: int = Field(description="Count of all events matching the filters")
    limit: int
    offset: int
    next_token: Optional[str] = Field(description="Send back as `next_token` to continue; null on the last page")


class StoredEvent(BaseModel):
    """An event as it lives in EventsTable (metadata kept as JSON text so it round-trips exactly)."""

    tenant_id: str
    event_id: str
    event_type: str
    agent_id: Optional[str] = None
    resource_id: Optional[str] = None
    severity: str
    created_at: str
    payload_json: str = "{}"
    expires_at: Optional[int] = None
    shard: int = 0  # write shard of the tenant's partition (store.events.shard_of), part of every key


    def created_response(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "event_type": self.event_type,
            "agent_id": self.agent_id,
            "resource_id": self.resource_id,
            "severity": self.severity,
            "created_at": self.created_at,
        }

    def list_item(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "agent_id": self.agent_id,
            "resource_id": self.resource_id,
            "severity": self.severity,
            "payload": json.loads(self.payload_json),
            "timestamp": self.created_at,
        }
