"""Delivery messages on SQS: one per (event, endpoint) attempt. SQS delays at most 15 minutes, so a
longer wait is a chain of delayed messages carrying the moment the attempt is due (`not_before`).

Two lanes, one consumer: live deliveries (from the dispatcher) and replays each have their own queue, so a
replay of thousands of events never sits in front of another tenant's live deliveries."""
from __future__ import annotations

import json
import math
import time
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
    replay: bool | None = None  # True: travels (and retries) on the replay lane

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


def send_entries(url: str, entries: list[dict[str, Any]]) -> set[str]:
    """SendMessageBatch in tens, each failed entry retried a few times; returns the Ids that stayed unsent."""
    sqs, unsent = aws.client("sqs"), set()
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        for _ in range(5):
            failed = sqs.send_message_batch(QueueUrl=url, Entries=chunk).get("Failed") or []
            if not failed:
                break
            ids = {f["Id"] for f in failed}
            chunk = [e for e in chunk if e["Id"] in ids]
        else:
            unsent |= {e["Id"] for e in chunk}
    return unsent


def _send(url: str, entries: list[dict[str, Any]]) -> None:
    unsent = send_entries(url, entries)
    if unsent:
        raise RuntimeError(f"{len(unsent)} delivery messages could not be queued")


def delay_seconds(delay: float, not_before: float | None, now: float) -> int:
    """SQS DelaySeconds for a message: the larger of `delay` and the wait until `not_before`, at most 15 minutes."""
    wait = max(delay, (not_before - now) if not_before else 0.0)
    return min(MAX_SQS_DELAY, max(0, math.ceil(wait)))


def enqueue(messages: Iterable[DeliveryMessage], delay: float = 0, replay: bool = False) -> int:
    """Queues the messages on the live lane (or the replay lane); a message with `not_before` waits until then."""
    now = time.time()
    entries = [
        {"Id": str(i), "MessageBody": m.body(), "DelaySeconds": delay_seconds(delay, m.not_before, now)}
        for i, m in enumerate(messages)
    ]
    if entries:
        settings = get_settings()
        _send(queue_url(settings.webhook_replay_queue if replay else settings.webhook_queue), entries)
    return len(entries)


def dead_letter(message: DeliveryMessage) -> None:
    _send(queue_url(get_settings().webhook_dlq), [{"Id": "0", "MessageBody": message.body()}])


def dead_letter_raw(body: str) -> None:
    _send(queue_url(get_settings().webhook_dlq), [{"Id": "0", "MessageBody": body[:200_000]}])


def parse(body: str) -> DeliveryMessage:
    return DeliveryMessage.model_validate(json.loads(body))
