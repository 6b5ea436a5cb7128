"""Feeds stream consumers locally the way Lambda's event source mappings do: DynamoDB Streams records and
SQS messages in Lambda-shaped batches, partial batch failures honoured, retries bounded, then on-failure."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from maip_events import aws
from maip_events.local import functions
from maip_events.local.template import Consumer, stream_consumers, table_logical_ids

log = logging.getLogger("maip_events.local.streams")


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge-style filter patterns, the subset Lambda filter criteria use here."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict) and "prefix" in option:
                if isinstance(value, str) and value.startswith(option["prefix"]):
                    return True
            elif isinstance(option, dict) and "exists" in option:
                return bool(option["exists"])
            elif option == value:
                return True
        return False
    return pattern == value


@dataclass
class _Shard:
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    retry_at: float = 0.0


class StreamPoller:
    def __init__(self, interval: float = 0.2, consumers: list[Consumer] | None = None):
        self.interval = interval
        self.consumers = consumers if consumers is not None else stream_consumers()
        self._shards: dict[tuple[str, str], _Shard] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self._thread = None

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            for consumer in self.consumers:
                try:
                    busy |= self.poll(consumer)
                except Exception:  # keep polling: a broken consumer must not stop the others
                    log.exception("polling %s failed", consumer.function.logical_id)
            if not busy:
                self._stop.wait(self.interval)

    def poll(self, consumer: Consumer) -> bool:
        return self._poll_stream(consumer) if consumer.kind == "DynamoDB" else self._poll_queue(consumer)

    # -- DynamoDB Streams --------------------------------------------------------------------------
    def _poll_stream(self, consumer: Consumer) -> bool:
        table = table_logical_ids()[consumer.source]
        streams = aws.client("dynamodbstreams")
        arn = aws.dynamodb().describe_table(TableName=table)["Table"].get("LatestStreamArn")
        if not arn:
            return False
        busy = False
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            key = (consumer.function.logical_id, shard["ShardId"])
            state = self._shards.get(key)
            if state is None:
                iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
                state = self._shards[key] = _Shard(iterator["ShardIterator"])
            if not state.pending and state.iterator:
                response = streams.get_records(ShardIterator=state.iterator, Limit=1000)
                state.iterator = response.get("NextShardIterator")
                state.pending = [{**r, "eventSourceARN": arn} for r in response.get("Records", [])]
                state.pending = [r for r in state.pending if not consumer.filters or any(matches(f, r) for f in consumer.filters)]
            if state.pending and time.monotonic() >= state.retry_at:
                busy = True
                self._deliver_stream_batch(consumer, state)
        return busy

    def _deliver_stream_batch(self, consumer: Consumer, state: _Shard) -> None:
        batch = state.pending[: consumer.batch_size]
        try:
            response = functions.invoke(consumer.function, {"Records": batch})
            failures = (response or {}).get("batchItemFailures", []) if consumer.report_failures else []
            failed_from = None
            if failures:
                ids = {f.get("itemIdentifier") for f in failures}
                failed_from = next((i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in ids), 0)
        except Exception:
            log.exception("%s failed on a batch of %d records", consumer.function.logical_id, len(batch))
            failed_from = 0
        if failed_from is None:
            state.pending = state.pending[len(batch):]
            state.attempts = 0
            return
        # Like Lambda: retry from the first failed record, with backoff, up to MaximumRetryAttempts.
        done = batch[:failed_from]
        state.pending = state.pending[len(done):]
        state.attempts += 1
        if state.attempts > consumer.max_retries:
            failed = state.pending[: len(batch) - len(done)]
            self._on_failure(consumer, failed)
            state.pending = state.pending[len(failed):]
            state.attempts = 0
        else:
            state.retry_at = time.monotonic() + min(0.5 * 2 ** (state.attempts - 1), 5.0)

    def _on_failure(self, consumer: Consumer, records: list[dict[str, Any]]) -> None:
        log.error("%s gave up on %d records after %d retries", consumer.function.logical_id, len(records), consumer.max_retries)
        if not consumer.on_failure:
            return
        from maip_events.local.template import local_name

        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=local_name(consumer.on_failure))["QueueUrl"]
        first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": consumer.function.logical_id},
            "DDBStreamBatchInfo": {"startSequenceNumber": first, "endSequenceNumber": last, "batchSize": len(records),
                                   "streamArn": records[0].get("eventSourceARN")},
        }))

    # -- SQS ---------------------------------------------------------------------------------------
    def _poll_queue(self, consumer: Consumer) -> bool:
        from maip_events.local.template import local_name

        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=local_name(consumer.source))["QueueUrl"]
        arn = f"arn:aws:sqs:us-east-1:000000000000:{local_name(consumer.source)}"
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(consumer.batch_size, 10), WaitTimeSeconds=0,
                                       AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return False
        records = [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": _lambda_attributes(m.get("MessageAttributes", {})),
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1",
        } for m in messages]
        try:
            response = functions.invoke(consumer.function, {"Records": records})
            failed = {f.get("itemIdentifier") for f in (response or {}).get("batchItemFailures", [])} if consumer.report_failures else set()
        except Exception:
            log.exception("%s failed on %d messages", consumer.function.logical_id, len(records))
            return True  # nothing deleted: the messages come back after the visibility timeout
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)])
        return True


def _lambda_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes -> the camelCase shape Lambda passes to handlers."""
    return {name: {"stringValue": a.get("StringValue"), "binaryValue": a.get("BinaryValue"), "stringListValues": [],
                   "binaryListValues": [], "dataType": a.get("DataType")} for name, a in attributes.items()}
