"""The embedded SQS (moto, patched by maip_events_local.moto_patches) hands each message to one receiver only,
as SQS does, however many poller instances receive from the queue at once (the poller runs MaximumConcurrency
instances per SQS source). Without the patch two concurrent receives could both take one message, and a
webhook was delivered twice (tests/e2e/test_chaos.py)."""
from __future__ import annotations

import sys
import threading
from collections import Counter

import boto3
from moto import mock_aws

from maip_events_local import moto_patches

MESSAGES = 300
RECEIVERS = 8


def test_concurrent_receivers_never_get_the_same_message():
    moto_patches.install()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="deliveries", Attributes={"VisibilityTimeout": "360"})["QueueUrl"]
        # Given a queue of 300 messages
        for start in range(0, MESSAGES, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)])
        received: list[str] = []
        lock = threading.Lock()

        def receive(client) -> None:
            while True:
                got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                if not got:
                    return
                with lock:
                    received.extend(m["Body"] for m in got)

        # When 8 receivers take them at once (frequent thread switches make any race show; each has its own client,
        # built before: building one is slow and racy only in botocore, not in the receive path under test)
        clients = [boto3.client("sqs", region_name="us-east-1") for _ in range(RECEIVERS)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            threads = [threading.Thread(target=receive, args=(client,)) for client in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(interval)

        # Then every message was received exactly once
        twice = {body: n for body, n in Counter(received).items() if n > 1}
        assert twice == {}
        assert len(received) == MESSAGES


def test_a_long_poll_returns_a_message_sent_while_it_waits():
    moto_patches.install()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="deliveries")["QueueUrl"]
        # Given a receiver long-polling an empty queue
        timer = threading.Timer(0.3, lambda: boto3.client("sqs", region_name="us-east-1").send_message(QueueUrl=url, MessageBody="late"))
        timer.start()
        # When a message is sent while it waits, Then the long poll returns it
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
        timer.join()
        assert [m["Body"] for m in got] == ["late"]
