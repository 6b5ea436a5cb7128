"""Issue 3 benchmarks, measured side by side in one run (ratios, not absolute times):

1. cold start: import the emit handler and serve its first request, vs `import boto3; boto3.client("dynamodb")`
2. DynamoDB requests per accepted POST, per rejected POST, per GET page
3. warm handler time per POST vs a raw stubbed put_item, per GET vs a raw stubbed query

Run: .venv/bin/python bench/foundation.py
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common"), str(ROOT / "tests")]
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_LOG_LEVEL="WARNING")

COLD_HANDLER = """
import time, json, sys
t0 = time.perf_counter()
import functions.emit.app as m
from support import http_event, Ctx
r = m.lambda_handler(http_event("POST", "/v1/observability/events", headers=json.loads(sys.argv[1]),
                                body={"event_type": "agent.registered"}), Ctx())
assert r["statusCode"] == 201, r
print(time.perf_counter() - t0)
"""
COLD_BASELINE = """
import time
t0 = time.perf_counter()
import boto3
boto3.client("dynamodb")
print(time.perf_counter() - t0)
"""


def cold_start(endpoint: str, headers: dict, runs: int = 7) -> None:
    env = {**os.environ, "MAIP_DYNAMODB_ENDPOINT": endpoint, "PYTHONPATH": os.pathsep.join(sys.path[:3])}

    def once(code: str, *args: str) -> float:
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    once(COLD_BASELINE)  # warm the OS file cache for both
    once(COLD_HANDLER, json.dumps(headers))
    handler, baseline = [], []
    for _ in range(runs):  # interleaved so both see the same machine load
        baseline.append(once(COLD_BASELINE))
        handler.append(once(COLD_HANDLER, json.dumps(headers)))
    h, b = statistics.median(handler), statistics.median(baseline)
    print(f"cold start: emit handler import + first request {h * 1000:.0f} ms, boto3 import + client {b * 1000:.0f} ms, "
          f"ratio {h / b:.2f} (target <= 1.7)")


def count_calls(headers: dict) -> None:
    from functions.emit.app import lambda_handler as emit
    from functions.list.app import lambda_handler as list_events
    from maip_events import aws
    from support import invoke

    calls: list[str] = []
    aws.dynamodb().meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    def measure(*args, **kwargs) -> tuple[int, list[str]]:
        calls.clear()
        status = invoke(*args, **kwargs)[0]
        return status, list(calls)

    for _ in range(60):
        invoke(emit, "POST", "/v1/observability/events", headers=headers, body={"event_type": "agent.registered", "agent_id": "a"})
    status, ok = measure(emit, "POST", "/v1/observability/events", headers=headers, body={"event_type": "agent.registered"})
    writes = [c for c in ok if c in ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem")]
    print(f"accepted POST ({status}): {len(ok)} DynamoDB requests {ok}, writes {len(writes)} (target exactly 1 write)")
    status, bad = measure(emit, "POST", "/v1/observability/events", headers=headers, body={"event_type": "nope"})
    print(f"rejected POST ({status}): {len(bad)} DynamoDB requests (target 0)")
    for query in ({"limit": "50"}, {"limit": "50", "agent_id": "a"}, {"limit": "20", "offset": "20"}):
        status, got = measure(list_events, "GET", "/v1/observability/events", headers=headers, query=query)
        print(f"GET page {query} ({status}): {len(got)} DynamoDB requests {got}")


def warm_ratios(headers: dict, rounds: int = 400) -> None:
    from functions.emit.app import lambda_handler as emit
    from functions.list.app import lambda_handler as list_events
    from support import Ctx, http_event
    from warm_stub import WarmStub

    post = http_event("POST", "/v1/observability/events", headers=headers, body={"event_type": "agent.registered"})
    get = http_event("GET", "/v1/observability/events", headers=headers, query={"limit": "50"})
    stub = WarmStub(headers, page_size=50)
    client, item = stub.client, stub.item

    def timed(*fns) -> list[float]:
        return stub.timed(rounds, *fns, check=True)

    table = stub.settings.events_table
    handler_post, raw_put = timed(
        lambda: emit(dict(post), Ctx()),
        lambda: client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)"))
    handler_get, raw_query = timed(
        lambda: list_events(dict(get), Ctx()),
        lambda: client.query(TableName=table, KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": "t#0"}}, Limit=51))
    print(f"warm POST: handler {handler_post * 1e6:.0f} us vs raw stubbed put_item {raw_put * 1e6:.0f} us, "
          f"ratio {handler_post / raw_put:.2f} (target <= 2.5)")
    print(f"warm GET:  handler {handler_get * 1e6:.0f} us vs raw stubbed query {raw_query * 1e6:.0f} us, "
          f"ratio {handler_get / raw_query:.2f} (target <= 3)")


def main() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from maip_events import settings
    from maip_events.auth.keys import create_api_key
    from maip_events_local.template import table_definitions

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    os.environ["MAIP_DYNAMODB_ENDPOINT"] = endpoint
    settings.reset()
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    for definition in table_definitions():
        client.create_table(**{k: v for k, v in definition.items() if k != "TimeToLiveSpecification"})
    key = create_api_key("bench", ["*"])
    headers = {"X-API-Key": key["api_key"], "X-Tenant-ID": "bench", "Content-Type": "application/json"}
    try:
        cold_start(endpoint, headers)
        count_calls(headers)
        warm_ratios(headers)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
