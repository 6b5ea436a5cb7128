"""Webhook delivery throughput to a receiver that takes 50 ms per request, measured side by side in one run:

1. strictly serial delivery: one signed POST after another (no bookkeeping at all), the floor a naive
   consumer would reach;
2. the real delivery handler (functions/webhook_delivery) with MAIP_WEBHOOK_CONCURRENCY=1;
3. the real delivery handler as configured (concurrent POSTs within each SQS batch of 50), recording
   every attempt in DeliveriesTable.

DynamoDB/SQS is a moto server (tables and queues from template.yaml) and the receiver a threaded HTTP server
on 127.0.0.1, each in its own process.
Run: .venv/bin/python bench/webhook_throughput.py [deliveries]
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tests")]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="WARNING", MAIP_LOCAL="1")

BATCH = 50  # the template's BatchSize for the delivery function
RECEIVER_DELAY = 0.05
WARMUP = 5


RECEIVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from webhook_receiver import Receiver, Reply
with Receiver(Reply(200, delay=float(sys.argv[2]))) as receiver:
    print(receiver.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(len(receiver.requests), flush=True)
"""


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    # Receiver and DynamoDB/SQS run in their own processes, as they would for a deployed function: the
    # handler's process only pays for its own work.
    receiver = _spawn(["-c", RECEIVER, str(ROOT / "tests"), str(RECEIVER_DELAY)])
    port = _free_port()
    moto = _spawn(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    try:
        url = receiver.stdout.readline().strip()
        os.environ["MAIP_DYNAMODB_ENDPOINT"] = f"http://127.0.0.1:{port}"
        _wait_for_port(port)
        serial, one, ours = _run(url, total)
        receiver.stdin.close()
        received = int(receiver.stdout.readline())
    finally:
        for process in (receiver, moto):
            process.terminate()
            process.wait(timeout=10)
    assert received == 3 * total + 2 * WARMUP, received
    print(f"deliveries: {total}, receiver latency {RECEIVER_DELAY * 1000:.0f} ms, SQS batch {BATCH}")
    print(f"strictly serial POSTs          : {serial:8.1f} deliveries/s")
    print(f"delivery handler, 1 worker     : {one:8.1f} deliveries/s  ({one / serial:.2f}x serial)")
    print(f"delivery handler, concurrent   : {ours:8.1f} deliveries/s  ({ours / serial:.1f}x serial)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


def _run(url: str, total: int) -> tuple[float, float, float]:
    from maip_events import settings
    from maip_events_local.server import create_resources

    settings.reset()
    create_resources()

    from functions.webhook_delivery.app import lambda_handler
    from maip_events.events import build_event
    from maip_events.models.events import EmitEventRequest
    from maip_events.store.webhooks import DeliveryStore
    from maip_events.http import client as sender, signing
    from maip_events.webhooks import subscriptions
    from maip_events.webhooks.delivery import payload
    from maip_events.webhooks.models import CreateWebhookRequest
    from maip_events.webhooks.queue import DeliveryMessage
    from support import Ctx

    sub = subscriptions.create("bench", CreateWebhookRequest(url=url, event_types=["*"]))
    events = [build_event("bench", EmitEventRequest(event_type="agent.registered", agent_id=f"a-{i}", metadata={"i": i}))
              for i in range(total)]

    def records(offset: int) -> list[dict]:
        return [{"messageId": f"m{offset + i}", "receiptHandle": "r", "body": DeliveryMessage(
            delivery_id=f"maip-dlv:{offset + i}", tenant_id="bench", webhook_id=sub.webhook_id, event=e).body(),
            "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
            for i, e in enumerate(events)]

    # 1. strictly serial: sign and POST one after another
    started = time.perf_counter()
    for event in events:
        body = payload(event)
        result = sender.post(url, signing.headers([sub.secret], event.event_id, int(time.time()), body), body, 10)
        assert result.ok, result
    serial = total / (time.perf_counter() - started)

    def handler_rate(concurrency: int, offset: int) -> float:
        os.environ["MAIP_WEBHOOK_CONCURRENCY"] = str(concurrency)
        settings.reset()
        batch_records = records(offset)
        lambda_handler({"Records": records(offset + total)[:WARMUP]}, Ctx())  # a warm container: clients built
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            response = lambda_handler({"Records": batch_records[start : start + BATCH]}, Ctx())
            assert response == {"batchItemFailures": []}, response
        return total / (time.perf_counter() - started)

    configured = int(os.environ.get("BENCH_CONCURRENCY", "0")) or settings.get_settings().webhook_concurrency
    one = handler_rate(1, total)
    ours = handler_rate(configured, 3 * total)
    attempts, _ = DeliveryStore().page(sub.webhook_id, 4 * total, status="succeeded")
    assert len(attempts) == 2 * (total + WARMUP), len(attempts)  # every delivery of the handler runs succeeded and was recorded
    return serial, one, ours


if __name__ == "__main__":
    main()
