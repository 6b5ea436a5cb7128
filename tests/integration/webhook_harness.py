"""Drives the webhook pipeline the way Lambda's event source mappings would, against in-process moto:
stream records from the EventsTable stream into the dispatcher, queue messages (live and replay lanes) into the
delivery handler."""
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
        from functions.dispatch.app import lambda_handler

        return lambda_handler({"Records": self.stream_records()}, Ctx())

    def queue_urls(self, dead_letters: bool = False) -> list[str]:
        from maip_events.webhooks.queue import queue_url

        settings = get_settings()
        names = [settings.webhook_dlq] if dead_letters else [settings.webhook_queue, settings.webhook_replay_queue]
        return [queue_url(name) for name in names]

    def receive(self, dead_letters: bool = False, wait: float = 0.0) -> list[dict[str, Any]]:
        """Every visible message of the lanes (waiting up to `wait` seconds for the first), deleted from the queues."""
        sqs = aws.client("sqs")
        deadline, messages = time.monotonic() + wait, []
        while True:
            got = False
            for url in self.queue_urls(dead_letters):
                batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                messages += batch
                if batch:
                    got = True
                    sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
            if got:
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
