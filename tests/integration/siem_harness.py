"""Helpers for the SIEM / metrics / export integration tests: stored events and Lambda-shaped batches."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3

from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest, StoredEvent
from maip_events.store.events import EventStore, to_item
from support import Ctx

T0 = datetime(2026, 11, 23, 7, 0, 0, tzinfo=timezone.utc)


def make_events(tenant: str, mix: list[tuple[str, str, str | None]], start: datetime = T0, step=timedelta(seconds=1)) -> list[StoredEvent]:
    """Stores events of (event_type, severity, agent_id) in order, one `step` apart from `start`."""
    events = [build_event(tenant, EmitEventRequest(event_type=t, severity=s, agent_id=a, resource_id="res-1",
                                                   metadata={"i": i, "text": "ü"}), now=start + i * step)
              for i, (t, s, a) in enumerate(mix)]
    EventStore().put_many(events)
    return events


def stream_batch(events: list[StoredEvent], first_sequence: int = 1000) -> dict:
    """A DynamoDB Streams batch as Lambda hands it to a consumer."""
    return {"Records": [{
        "eventID": f"id{i}", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"tenant_id": {"S": e.tenant_id}, "event_id": {"S": e.event_id}}, "NewImage": to_item(e),
                     "SequenceNumber": str(first_sequence + i), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/maip-events/stream/2026-11-23T00:00:00.000",
    } for i, e in enumerate(events)]}


def create_queues() -> dict[str, str]:
    """Every queue of template.yaml, by local name."""
    from maip_events_local.template import queue_definitions

    sqs = boto3.client("sqs", region_name="us-east-1")
    return {q["QueueName"]: sqs.create_queue(QueueName=q["QueueName"])["QueueUrl"] for q in queue_definitions()}


def dispatch_and_deliver(batch: dict, queues: dict[str, str]) -> dict:
    """The events stream batch through the dispatcher, then the log-stream delivery queue (retries included)
    through the SIEM consumer; returns the dispatcher's response."""
    from functions.dispatch.app import lambda_handler as dispatch
    from functions.siem_stream.app import lambda_handler as siem

    response = dispatch(batch, Ctx())
    drain(queues["maip-stream-deliveries"], siem)
    return response


def drain(queue_url: str, handler) -> int:
    """Feeds every visible message of the queue to `handler` as SQS batches; deletes the ones it accepted."""
    sqs, handled = boto3.client("sqs", region_name="us-east-1"), 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return handled
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:maip-stream-deliveries"} for m in messages]
        failed = {f["itemIdentifier"] for f in handler({"Records": records}, Ctx())["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        handled += len(messages)


def messages(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    found = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]
