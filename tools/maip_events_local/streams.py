"""Feeds stream consumers locally the way Lambda's event source mappings do: DynamoDB Streams records and
SQS messages in Lambda-shaped batches, partial batch failures honoured, retries bounded, then on-failure.

One thread per event source, like Lambda's independent pollers: a slow consumer never delays the others. An
SQS source with ScalingConfig.MaximumConcurrency gets that many threads (at most LOCAL_MAX_CONCURRENCY), each
its own function instance, so one slow batch does not hold the queue.
Shard positions and undelivered records live in the poller object, so `stop()` then `start()` resumes
exactly where it left off (nothing is skipped, nothing re-delivered that was acknowledged)."""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from maip_events import aws
from maip_events_local import functions
from maip_events_local.template import Consumer, local_name, stream_consumers, table_logical_ids
from maip_events.settings import get_settings

log = logging.getLogger("maip_events_local.streams")

_MISSING = object()


# -- Lambda event filtering (the EventBridge pattern syntax Lambda filter criteria use) -----------------------
def matches(pattern: Any, value: Any = _MISSING) -> bool:
    """Does `value` (a record, or a field of it) match the filter `pattern`?"""
    if isinstance(pattern, dict):
        if value is _MISSING:
            value = {}  # {"a": {"b": [{"exists": false}]}} matches a record without "a"
        if not isinstance(value, dict):
            return False
        return all(matches(p, value.get(k, _MISSING)) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(_matches_option(option, value) for option in pattern)
    return value is not _MISSING and pattern == value


def _matches_option(option: Any, value: Any) -> bool:
    if isinstance(option, dict) and len(option) == 1:
        op, arg = next(iter(option.items()))
        if op == "exists":
            return (value is not _MISSING) == bool(arg)
        if value is _MISSING:
            return False
        if isinstance(value, list):  # a list field matches when any element does
            return any(_matches_option(option, v) for v in value)
        if op == "prefix":
            return isinstance(value, str) and isinstance(arg, str) and value.startswith(arg)
        if op == "suffix":
            return isinstance(value, str) and isinstance(arg, str) and value.endswith(arg)
        if op == "equals-ignore-case":
            return isinstance(value, str) and isinstance(arg, str) and value.lower() == arg.lower()
        if op == "anything-but":
            options = arg if isinstance(arg, list) else [arg]
            return not any(_matches_option(o, value) for o in options)
        if op == "numeric":
            return _numeric(arg, value)
        return False
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return option in value
    return option == value


def _numeric(conditions: list[Any], value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    checks = {"=": number.__eq__, "<": number.__lt__, "<=": number.__le__, ">": number.__gt__, ">=": number.__ge__}
    pairs = zip(conditions[::2], conditions[1::2])
    return all(op in checks and checks[op](float(bound)) for op, bound in pairs)


# -- Lambda event shapes ----------------------------------------------------------------------------------------
def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """A boto3-parsed attribute value back in DynamoDB JSON as Lambda sends it (binary as base64 text)."""
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode() if isinstance(inner, (bytes, bytearray)) else inner}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() if isinstance(b, (bytes, bytearray)) else b for b in inner]}
    if kind == "M":
        return {"M": {k: _wire_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_wire_value(v) for v in inner]}
    return {kind: inner}


def lambda_stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record -> the record Lambda puts in a DynamoDB Streams event."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):  # boto3 parses it; Lambda sends epoch seconds
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in dynamodb:
            dynamodb[image] = {name: _wire_value(v) for name, v in dynamodb[image].items()}
    converted = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # TTL deletions
        converted["userIdentity"] = record["userIdentity"]
    return converted


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message -> the record Lambda puts in an SQS event."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {name: _sqs_attribute(a) for name, a in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _sqs_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase shape Lambda passes to handlers (binary as base64 text)."""
    binary = attribute.get("BinaryValue")
    if isinstance(binary, (bytes, bytearray)):
        binary = base64.b64encode(binary).decode()
    return {"stringValue": attribute.get("StringValue"), "binaryValue": binary, "stringListValues": [],
            "binaryListValues": [], "dataType": attribute.get("DataType")}


# -- the poller -------------------------------------------------------------------------------------------------
@dataclass
class _Shard:
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)  # fetched, filtered, not yet acknowledged
    attempts: int = 0
    retry_at: float = 0.0
    first_seen: float = 0.0  # when the oldest pending record was fetched (the batching window runs from it)


@dataclass
class _Queue:
    url: str
    arn: str


@dataclass
class _Stream:
    arn: str | None = None
    shard_ids: list[str] = field(default_factory=list)
    checked_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


SHARD_REFRESH = 1.0  # seconds between looks for a new stream (table re-created) or new shards
LOCAL_MAX_CONCURRENCY = 4  # concurrent batches per SQS source locally (the machine is small)


@dataclass
class _Run:
    """One start() .. stop() of the poller: its own stop flag, so a quick restart never revives old threads."""
    stop: threading.Event
    threads: list[threading.Thread]


class StreamPoller:
    def __init__(self, interval: float = 0.2, consumers: list[Consumer] | None = None,
                 invoke: Callable[..., Any] | None = None):
        self.interval = interval
        # How a batch reaches its function: in this process by default (tests, benches); `maip-events serve` passes
        # its worker pool, so consumers run in worker processes like Lambda and their CPU stays off the process
        # that serves the embedded DynamoDB and the gateway.
        self._invoke = invoke or functions.invoke
        self.consumers = consumers if consumers is not None else stream_consumers()
        self._shards: dict[tuple[str, str, str], _Shard] = {}
        self._queues: dict[str, _Queue] = {}
        self._streams: dict[str, _Stream] = {}  # by table (logical id), shared by its consumers
        # (consumer, instance) pairs: one per stream source, MaximumConcurrency (capped) per SQS source.
        self._slots = [(consumer, instance) for consumer in self.consumers
                       for instance in range(min(max(consumer.max_concurrency, 1), LOCAL_MAX_CONCURRENCY))]
        # One lock per slot: a thread of a stopping run and one of the next never poll the same slot at once.
        self._source_locks = [threading.Lock() for _ in self._slots]
        self._lifecycle = threading.Lock()
        self._run_state: _Run | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts polling (idempotent); safe to call while a stop() is still finishing a batch."""
        with self._lifecycle:
            if self.running:
                return
            stop = threading.Event()
            threads = [threading.Thread(target=self._run, args=(i, stop), daemon=True,
                                        name=f"poller-{c.function.logical_id}-{c.kind}-{c.source}-{n}")
                       for i, (c, n) in enumerate(self._slots)]
            self._run_state = _Run(stop, threads)
            for thread in threads:
                thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops polling; a batch being delivered finishes first (its outcome is recorded, not lost)."""
        with self._lifecycle:
            run = self._run_state
            if run is None:
                return
            run.stop.set()
        deadline = time.monotonic() + timeout
        for thread in run.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        run = self._run_state
        return run is not None and not run.stop.is_set() and any(t.is_alive() for t in run.threads)

    def _run(self, index: int, stop: threading.Event) -> None:
        (consumer, instance), lock = self._slots[index], self._source_locks[index]
        last_error = None
        while not stop.is_set():
            try:
                with lock:
                    if stop.is_set():
                        break
                    busy = self.poll(consumer, instance)
                last_error = None
            except Exception as error:  # keep polling: a broken source must not stop the stack
                if repr(error) != last_error:  # log a persistent error once, not every interval
                    log.exception("polling %s (%s %s) failed", consumer.function.logical_id, consumer.kind, consumer.source)
                    last_error = repr(error)
                stop.wait(1.0)
                continue
            if not busy:
                stop.wait(self.interval)

    def poll(self, consumer: Consumer, instance: int = 0) -> bool:
        """One pass over one event source; True when it delivered something (poll again at once)."""
        return self._poll_stream(consumer) if consumer.kind == "DynamoDB" else self._poll_queue(consumer, instance)

    # -- DynamoDB Streams --------------------------------------------------------------------------
    def _stream(self, consumer: Consumer) -> _Stream:
        """The table's current stream and shards, looked up again at most every SHARD_REFRESH seconds (one lookup
        for every consumer of the table: DescribeTable is one of the embedded DynamoDB's costlier answers)."""
        stream = self._streams.setdefault(consumer.source, _Stream())
        with stream.lock:
            if time.monotonic() - stream.checked_at >= SHARD_REFRESH:
                self._refresh(consumer.source, stream)
            return _Stream(stream.arn, list(stream.shard_ids), stream.checked_at)

    def _refresh(self, source: str, stream: _Stream) -> None:
        table = table_logical_ids()[source]
        stream.arn = aws.dynamodb().describe_table(TableName=table)["Table"].get("LatestStreamArn")
        stream.shard_ids = [shard["ShardId"] for shard in aws.client("dynamodbstreams").describe_stream(
            StreamArn=stream.arn)["StreamDescription"]["Shards"]] if stream.arn else []
        stream.checked_at = time.monotonic()

    def _poll_stream(self, consumer: Consumer) -> bool:
        stream = self._stream(consumer)
        if not stream.arn:
            return False
        streams = aws.client("dynamodbstreams")
        region = get_settings().region
        busy = False
        for shard_id in stream.shard_ids:
            key = (consumer.function.logical_id, consumer.source, shard_id)
            state = self._shards.get(key)
            if state is None:  # the tables are created by `serve`: from the start of a shard misses nothing
                iterator = streams.get_shard_iterator(StreamArn=stream.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
                state = self._shards[key] = _Shard(iterator["ShardIterator"])
            if state.iterator and not state.attempts and len(state.pending) < consumer.batch_size:
                response = streams.get_records(ShardIterator=state.iterator, Limit=1000)
                state.iterator = response.get("NextShardIterator")  # None once a closed shard is read to its end
                records = [lambda_stream_record(r, stream.arn, region) for r in response.get("Records", [])]
                if records and not state.pending:
                    state.first_seen = time.monotonic()
                state.pending += [r for r in records if not consumer.filters or any(matches(f, r) for f in consumer.filters)]
            # Like Lambda's MaximumBatchingWindowInSeconds: invoke when the batch is full or the window has passed.
            window_open = (len(state.pending) < consumer.batch_size and not state.attempts
                           and time.monotonic() - state.first_seen < consumer.batching_window)
            if state.pending and not window_open and time.monotonic() >= state.retry_at:
                busy = True
                self._deliver_stream_batch(consumer, state, shard_id)
        return busy

    def _deliver_stream_batch(self, consumer: Consumer, state: _Shard, shard_id: str) -> None:
        batch = state.pending[: consumer.batch_size]
        failed_from: int | None = None
        try:
            response = self._invoke(consumer.function, {"Records": batch})
            if consumer.report_failures:
                failures = (response or {}).get("batchItemFailures") or []
                if failures:
                    ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
                    # An identifier that names no record of the batch fails the whole batch, as on Lambda.
                    failed_from = next((i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in ids), 0)
        except Exception:
            log.exception("%s failed on a batch of %d records", consumer.function.logical_id, len(batch))
            failed_from = 0
        if failed_from is None:
            state.pending = state.pending[len(batch):]
            state.attempts = 0
            state.first_seen = time.monotonic()  # what is left waits for a window of its own
            return
        # Like Lambda: checkpoint before the first failed record, retry from it with backoff, bounded.
        state.pending = state.pending[failed_from:]
        state.attempts += 1
        if state.attempts > consumer.max_retries:
            failed = state.pending[: len(batch) - failed_from]
            self._on_failure(consumer, failed, shard_id, state.attempts)
            state.pending = state.pending[len(failed):]
            state.attempts = 0
            state.retry_at = 0.0
        else:
            state.retry_at = time.monotonic() + min(0.5 * 2 ** (state.attempts - 1), 5.0)

    def _on_failure(self, consumer: Consumer, records: list[dict[str, Any]], shard_id: str, attempts: int) -> None:
        """Records that exhausted their retries: an on-failure destination message, as Lambda sends it."""
        log.error("%s gave up on %d records after %d retries; on-failure destination: %s",
                  consumer.function.logical_id, len(records), consumer.max_retries, consumer.on_failure or "none")
        if not consumer.on_failure or not records:
            return
        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=local_name(consumer.on_failure))["QueueUrl"]
        first, last = records[0], records[-1]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": consumer.function.logical_id,
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first["dynamodb"].get("ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": last["dynamodb"].get("ApproximateCreationDateTime"),
                "batchSize": len(records),
                "streamArn": first.get("eventSourceARN"),
            },
        }))

    # -- SQS ---------------------------------------------------------------------------------------
    def _queue(self, logical_id: str) -> _Queue:
        if logical_id not in self._queues:
            sqs = aws.client("sqs")
            url = sqs.get_queue_url(QueueName=local_name(logical_id))["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self._queues[logical_id] = _Queue(url, arn)
        return self._queues[logical_id]

    def _poll_queue(self, consumer: Consumer, instance: int = 0) -> bool:
        sqs = aws.client("sqs")
        queue = self._queue(consumer.source)
        messages: list[dict[str, Any]] = []
        while len(messages) < consumer.batch_size:  # SQS hands out at most 10 per call; Lambda batches up to BatchSize
            wanted = min(10, consumer.batch_size - len(messages))
            # Long-poll (1 s) while idle: a message is picked up as soon as it is sent, without busy polling.
            got = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=wanted, WaitTimeSeconds=0 if messages else 1,
                                      AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            messages += got
            if len(got) < wanted:
                break
        if not messages:
            return False
        region = get_settings().region
        records = [lambda_sqs_record(m, queue.arn, region) for m in messages]
        try:
            response = self._invoke(consumer.function, {"Records": records}, instance=f"{consumer.source}#{instance}")
        except Exception:
            log.exception("%s failed on %d messages", consumer.function.logical_id, len(records))
            return True  # nothing deleted: the messages come back after the visibility timeout
        failed: set[str] = set()
        if consumer.report_failures:
            failed = {f.get("itemIdentifier") for f in (response or {}).get("batchItemFailures") or [] if isinstance(f, dict)}
            if failed - {r["messageId"] for r in records}:
                return True  # an unknown identifier fails the whole batch, as on Lambda
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start:start + 10]
            sqs.delete_message_batch(QueueUrl=queue.url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)])
        return True
