"""Archive messages on SQS: the dispatcher queues, per stream batch and tenant, the batch's events of that
tenant (several messages when large: each stays under SQS's 256 KiB), and the archive writer turns them into
Parquet parts. Kept apart from the writer so the dispatcher never imports pyarrow."""
from __future__ import annotations

from pydantic import BaseModel

from maip_events.models.events import StoredEvent

MAX_MESSAGE_BYTES = 200 * 1024  # SQS takes 256 KiB; room for the envelope


class ArchiveMessage(BaseModel):
    tenant_id: str
    events: list[StoredEvent]

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)


def messages(tenant_id: str, events: list[StoredEvent]) -> list[ArchiveMessage]:
    """The events as one or more messages, each body under MAX_MESSAGE_BYTES."""
    found: list[ArchiveMessage] = []
    current: list[StoredEvent] = []
    size = 0
    for event in events:
        cost = len(event.model_dump_json(exclude_none=True)) + 1
        if current and size + cost > MAX_MESSAGE_BYTES:
            found.append(ArchiveMessage(tenant_id=tenant_id, events=current))
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        found.append(ArchiveMessage(tenant_id=tenant_id, events=current))
    return found


def parse(body: str) -> ArchiveMessage:
    return ArchiveMessage.model_validate_json(body)
