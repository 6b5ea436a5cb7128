"""Local stack throughput (issue 11, "Local stack concurrency"), measured side by side in one run:

- HTTP: 16 concurrent clients POST /v1/observability/events to `maip-events serve` (keep-alive connections);
- raw: 16 threads call `put_item` directly on the same embedded DynamoDB (a table with the events table's keys and
  indexes, so moto does the same indexing work; no stream, so no consumer runs on it).

Prints events/s for both and the ratio (the target: HTTP >= 0.5 x raw). Rounds alternate to even out noise;
the best round of each is kept.

Run: .venv/bin/python bench/local_throughput.py   (MAIP_BENCH_CLIENTS, MAIP_BENCH_REQUESTS per client, MAIP_BENCH_ROUNDS)
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tools"), str(ROOT / "tests")]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled")

CLIENTS = int(os.environ.get("MAIP_BENCH_CLIENTS", "16"))
REQUESTS = int(os.environ.get("MAIP_BENCH_REQUESTS", "40"))  # per client and round
ROUNDS = int(os.environ.get("MAIP_BENCH_ROUNDS", "2"))
BODY = json.dumps({"event_type": "agent.registered", "agent_id": "agent-1", "resource_id": "res-1",
                   "metadata": {"region": "eu-west-1", "note": "x" * 600}})


def _parallel(clients: int, work) -> float:
    """Runs work(i) on `clients` threads started together; operations per second over the slowest thread."""
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return clients * REQUESTS / elapsed


def _http_round(url: str, headers: dict[str, str]) -> float:
    parts = urlsplit(url)

    def client(_: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            for _ in range(REQUESTS):
                conn.request("POST", "/v1/observability/events", body=BODY,
                             headers={**headers, "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 201:
                    raise RuntimeError(f"emit answered {response.status}")
        finally:
            conn.close()

    return _parallel(CLIENTS, client)


def _raw_table(dynamodb, source: str) -> tuple[str, list[dict]]:
    """A copy of the events table's keys and indexes (no stream): raw writes index exactly like emits do."""
    table = dynamodb.describe_table(TableName=source)["Table"]
    name = "bench-raw-put-item"
    indexes = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
               for i in table.get("GlobalSecondaryIndexes", [])]
    dynamodb.create_table(TableName=name, KeySchema=table["KeySchema"], AttributeDefinitions=table["AttributeDefinitions"],
                          BillingMode="PAY_PER_REQUEST", **({"GlobalSecondaryIndexes": indexes} if indexes else {}))
    return name, table["AttributeDefinitions"]


def _raw_round(endpoint: str, table: str, attributes: list[dict]) -> float:
    import boto3

    session = boto3.session.Session()
    clients = [session.client("dynamodb", endpoint_url=endpoint) for _ in range(CLIENTS)]

    def writer(i: int) -> None:
        for n in range(REQUESTS):
            unique = f"{i}-{n}-{time.perf_counter_ns()}"
            item = {a["AttributeName"]: ({"S": f"{a['AttributeName']}-{unique}"} if a["AttributeType"] == "S" else {"N": str(n)})
                    for a in attributes}
            item["payload"] = {"S": BODY}
            clients[i].put_item(TableName=table, Item=item)

    return _parallel(CLIENTS, writer)


@contextmanager
def _stack_log_on_failure(stack) -> Iterator[None]:
    """A failed round shows why: the stack's own log lines (not the 201s) go to stderr before the error."""
    try:
        yield
    except BaseException:
        lines = [line for line in stack.logs().splitlines() if line.strip() and " 201 " not in line]
        print("\n".join(lines[-60:]), file=sys.stderr)
        raise


def measure() -> list[tuple[str, str, str]]:
    from served_stack import served

    with served(MAIP_LOCAL_PREWARM="16", POWERTOOLS_LOG_LEVEL="WARNING") as stack, _stack_log_on_failure(stack):
        import boto3

        from maip_events.settings import get_settings

        dynamodb = boto3.client("dynamodb", endpoint_url=stack.dynamodb_endpoint)
        events_table = os.environ.get("MAIP_EVENTS_TABLE") or get_settings().events_table
        table, attributes = _raw_table(dynamodb, events_table)
        _http_round(stack.url, stack.headers)  # warm every worker's caches (API key, settings, clients)
        http_rates, raw_rates = [], []
        for _ in range(ROUNDS):
            raw_rates.append(_raw_round(stack.dynamodb_endpoint, table, attributes))
            http_rates.append(_http_round(stack.url, stack.headers))
        # Diagnostic: the same HTTP round with the stream poller paused (its consumers share the parent process,
        # and so the GIL, with the embedded DynamoDB and the gateway).
        stack.signal(signal.SIGUSR1)
        time.sleep(1)
        paused = _http_round(stack.url, stack.headers)
        stack.signal(signal.SIGUSR2)
        workers = stack.env.get("MAIP_LOCAL_WORKERS") or "4 (default)"
    http_best, raw_best = max(http_rates), max(raw_rates)
    return [
        ("local HTTP emits/s", f"{http_best:.0f}", f"{CLIENTS} keep-alive clients, best of {ROUNDS} rounds, {workers} worker processes"),
        ("raw put_item/s", f"{raw_best:.0f}", f"{CLIENTS} threads on the same embedded DynamoDB, best of {ROUNDS} rounds"),
        ("HTTP / raw", f"{http_best / raw_best:.2f}", "target >= 0.5"),
        ("HTTP emits/s, poller paused", f"{paused:.0f}", "diagnostic: stream consumers off during the round"),
        ("rounds (HTTP, raw)", ", ".join(f"{h:.0f}/{r:.0f}" for h, r in zip(http_rates, raw_rates)), "events/s per round"),
    ]


def main() -> None:
    rows = measure()
    width = max(len(r[0]) for r in rows)
    for figure, value, note in rows:
        print(f"{figure:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
