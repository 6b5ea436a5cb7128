"""Delivery messages on SQS: one per (event, endpoint) attempt. SQS delays at most 15 minutes, so a
longer wait is a chain of delayed messages carrying the moment the attempt is due (`not_before`)."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any, Iterable

from pydantic import BaseModel

from maip_events import aws
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings

MAX_SQS_DELAY = 900


class DeliveryMessage(BaseModel):
    delivery_id: str  # maip-dlv:<ULID>, one per (event, endpoint); replays start a new one
    tenant_id: str
    webhook_id: str
    event: StoredEvent
    attempt: int = 1  # the attempt this message is for
    not_before: float | None = None  # epoch seconds; earlier receipts are re-delayed
    dead_letter_reason: str | None = None  # set on messages sent to the dead-letter queue

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)


def queue_url(name_or_url: str) -> str:
    """Deployed the env holds the URL (!Ref); locally a name, resolved against the embedded endpoint."""
    if name_or_url.startswith(("https://", "http://")):
        return name_or_url
    return _resolve(name_or_url, get_settings().dynamodb_endpoint)


@lru_cache(maxsize=16)
def _resolve(name: str, endpoint: str | None) -> str:
    return aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _send(url: str, entries: list[dict[str, Any]]) -> None:
    sqs = aws.client("sqs")
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        for _ in range(5):
            failed = sqs.send_message_batch(QueueUrl=url, Entries=chunk).get("Failed") or []
            if not failed:
                break
            ids = {f["Id"] for f in failed}
            chunk = [e for e in chunk if e["Id"] in ids]
        else:
            raise RuntimeError(f"{len(chunk)} delivery messages could not be queued")


def enqueue(messages: Iterable[DeliveryMessage], delay: float = 0) -> int:
    entries = [
        {"Id": str(i), "MessageBody": m.body(), "DelaySeconds": min(MAX_SQS_DELAY, max(0, math.ceil(delay)))}
        for i, m in enumerate(messages)
    ]
    if entries:
        _send(queue_url(get_settings().webhook_queue), entries)
    return len(entries)


def dead_letter(message: DeliveryMessage) -> None:
    _send(queue_url(get_settings().webhook_dlq), [{"Id": "0", "MessageBody": message.body()}])


def parse(body: str) -> DeliveryMessage:
    return DeliveryMessage.model_validate(json.loads(body))
