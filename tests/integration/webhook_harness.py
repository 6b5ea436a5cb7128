"""Drives the webhook pipeline the way Lambda's event source mappings would, against in-process moto:
stream records from the EventsTable stream into the fanout handler, queue messages into the delivery handler."""
from __future__ import annotations

import time
from typing import Any

from maip_events import aws
from maip_events.settings import get_settings
from support import Ctx


class Pipeline:
    def __init__(self) -> None:
        self._iterators: dict[str, str] = {}

    def stream_records(self) -> list[dict[str, Any]]:
        """New records of the EventsTable stream since the last call (Lambda-shaped)."""
        streams = aws.client("dynamodbstreams")
        arn = aws.dynamodb().describe_table(TableName=get_settings().events_table)["Table"]["LatestStreamArn"]
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = self._iterators.get(shard["ShardId"]) or streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            response = streams.get_records(ShardIterator=iterator)
            self._iterators[shard["ShardId"]] = response["NextShardIterator"]
            records += [{**r, "eventSourceARN": arn} for r in response["Records"]]
        return records

    def fan_out(self) -> dict[str, Any]:
        from functions.webhook_fanout.app import lambda_handler

        return lambda_handler({"Records": self.stream_records()}, Ctx())

    def queue_url(self, dead_letters: bool = False) -> str:
        from maip_events.webhooks.queue import queue_url

        return queue_url(get_settings().webhook_dlq if dead_letters else get_settings().webhook_queue)

    def receive(self, dead_letters: bool = False, wait: float = 0.0) -> list[dict[str, Any]]:
        """Every visible message (waiting up to `wait` seconds for the first), deleted from the queue."""
        sqs, url = aws.client("sqs"), self.queue_url(dead_letters)
        deadline, messages = time.monotonic() + wait, []
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            messages += batch
            if batch:
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
                continue
            if messages or time.monotonic() >= deadline:
                return messages
            time.sleep(0.1)

    def deliver(self, wait: float = 0.0) -> dict[str, Any]:
        """One delivery-function invocation with every message now visible on the delivery queue."""
        from functions.webhook_delivery.app import lambda_handler

        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {},
                    "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                    "awsRegion": "us-east-1"} for m in self.receive(wait=wait)]
        return {"count": len(records), **lambda_handler({"Records": records}, Ctx())}


def create_queues() -> None:
    from maip_events_local.template import queue_definitions

    sqs = aws.client("sqs")
    for queue in queue_definitions():
        sqs.create_queue(QueueName=queue["QueueName"], Attributes=queue["Attributes"])
