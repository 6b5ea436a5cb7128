"""Log-stream batch messages on SQS: one message = one batch of events for ONE destination (stream), so a
destination that fails, hangs or is misconfigured only ever delays its own batches. The events travel inside
the message (no read of the events table on the delivery path); a batch is split so a message stays well
under SQS's size limit. First tries and retries use the same queue; a retry is the same message (same events,
same batch id) with `attempt` + 1 and a delay."""
from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.webhooks.queue import delay_seconds, queue_url, send_entries

MAX_MESSAGE_BYTES = 200 * 1024  # SQS takes 256 KiB (1 MiB since 2025); leave room for the envelope


class StreamBatchMessage(BaseModel):
    tenant_id: str
    stream_id: str
    event_ids: list[str]  # in order; what an operator sees in the dead-letter queue
    events: list[StoredEvent]
    attempt: int = 0  # retries already made (0 = first try, or a fresh schedule after a DLQ redrive)
    not_before: float | None = None  # epoch seconds; set when the tenant is over its fan-out rate
    last_error: str | None = None

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)


def batches(tenant_id: str, stream_id: str, events: list[StoredEvent], not_before: float | None = None) -> list[StreamBatchMessage]:
    """The events as one or more messages, each under MAX_MESSAGE_BYTES."""
    messages: list[StreamBatchMessage] = []
    current: list[StoredEvent] = []
    size = 0
    for event in events:
        cost = len(event.model_dump_json()) + len(event.event_id) + 8
        if current and size + cost > MAX_MESSAGE_BYTES:
            messages.append(_message(tenant_id, stream_id, current, not_before))
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        messages.append(_message(tenant_id, stream_id, current, not_before))
    return messages


def _message(tenant_id: str, stream_id: str, events: list[StoredEvent], not_before: float | None) -> StreamBatchMessage:
    return StreamBatchMessage(tenant_id=tenant_id, stream_id=stream_id, event_ids=[e.event_id for e in events],
                              events=events, not_before=not_before)


def entry(entry_id: str, message: StreamBatchMessage, delay: float = 0) -> dict[str, Any]:
    return {"Id": entry_id, "MessageBody": message.body(), "DelaySeconds": delay_seconds(delay, message.not_before, time.time())}


def enqueue(message: StreamBatchMessage, delay: float = 0) -> None:
    if send_entries(queue_url(get_settings().stream_queue), [entry("0", message, delay)]):
        raise RuntimeError("a log-stream batch could not be queued")


def dead_letter(message: StreamBatchMessage) -> None:
    if send_entries(queue_url(get_settings().stream_dlq), [entry("0", message)]):
        raise RuntimeError("a log-stream batch could not be dead-lettered")


def dead_letter_raw(body: str) -> None:
    send_entries(queue_url(get_settings().stream_dlq), [{"Id": "0", "MessageBody": body[:200_000]}])


def parse(body: str) -> StreamBatchMessage:
    return StreamBatchMessage.model_validate_json(body)
