"""Webhooks end to end through `maip-events serve`: events emitted over HTTP reach real receivers on
127.0.0.1 through the embedded DynamoDB stream, the fanout and the delivery queue. Self-contained: this
module starts its own stack with a short retry schedule and a 1 s timeout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from webhook_receiver import Receiver, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EVENTS, BASE = "/v1/observability/events", "/v1/observability/webhooks"


class Stack:
    def __init__(self, process: subprocess.Popen, info: dict):
        self.process, self.url, self.dynamodb_endpoint = process, info["url"], info["dynamodb_endpoint"]
        self.headers = {"X-API-Key": info["api_key"], "X-Tenant-ID": info["tenant_id"]}

    def cli(self, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "maip_events_local.cli", *args, "--json", "--dynamodb-endpoint", self.dynamodb_endpoint],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def tenant(self, tenant_id: str) -> dict[str, str]:
        key = self.cli("keys", "create", "--tenant", tenant_id, "--scopes", "*")
        return {"X-API-Key": key["api_key"], "X-Tenant-ID": tenant_id}

    def subscribe(self, headers, url, event_types=("*",)) -> dict:
        response = requests.post(self.url + BASE, headers=headers, json={"url": url, "event_types": list(event_types)}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def emit(self, headers, event_type="agent.registered", **fields) -> dict:
        response = requests.post(self.url + EVENTS, headers=headers, json={"event_type": event_type, **fields}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def attempts(self, headers, webhook_id, **query) -> list[dict]:
        response = requests.get(f"{self.url}{BASE}/{webhook_id}/deliveries", headers=headers, params=query, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def wait_attempts(self, headers, webhook_id, done, timeout=15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            items = self.attempts(headers, webhook_id)
            if done(items) or time.monotonic() > deadline:
                return items
            time.sleep(0.2)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")])
    return {**env, **extra}


@pytest.fixture(scope="module")
def stack():
    env = _env(MAIP_WEBHOOK_RETRY_SCHEDULE="1,1", MAIP_WEBHOOK_TIMEOUT="1")
    process = subprocess.Popen([sys.executable, "-m", "maip_events_local.cli", "serve", "--port", "0", "--dynamodb-port", "0", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    try:
        line = process.stdout.readline()
        assert line, "maip-events serve did not start"
        yield Stack(process, json.loads(line))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_matching_and_wildcard_subscriptions_receive_signed_events_quickly(stack):
    with Receiver() as exact, Receiver() as wildcard, Receiver() as everything:
        # Given subscriptions to one type, to a namespace and to everything
        hooks = [stack.subscribe(stack.headers, exact.url, ["session.created"]),
                 stack.subscribe(stack.headers, wildcard.url, ["agent.*"]),
                 stack.subscribe(stack.headers, everything.url, ["*"])]
        # When an agent event is emitted over HTTP
        started = time.monotonic()
        created = stack.emit(stack.headers, "agent.suspended", agent_id="a-9", metadata={"why": "test"})
        # Then the namespace and catch-all receivers get it, verified by standardwebhooks, within seconds
        (request,) = wildcard.wait_for(1, timeout=10)
        arrived = time.monotonic() - started
        body = Webhook(hooks[1]["secret"]).verify(request.body, request.headers)
        assert body["type"] == "agent.suspended" and body["data"]["event_id"] == created["id"] == request.headers["webhook-id"]
        assert body["data"]["payload"] == {"why": "test"} and body["timestamp"] == created["created_at"]
        (other,) = everything.wait_for(1, timeout=10)
        Webhook(hooks[2]["secret"]).verify(other.body, other.headers)
        # And the exact-type subscription for another type gets nothing
        assert exact.wait_for(1, timeout=1) == []
        print(f"emit -> receiver: {arrived:.2f} s")


def test_two_tenants_never_receive_each_others_events(stack):
    other = stack.tenant("other-tenant")
    with Receiver() as mine, Receiver() as theirs:
        stack.subscribe(stack.headers, mine.url)
        stack.subscribe(other, theirs.url)
        e1 = stack.emit(stack.headers, "trust.computed")
        e2 = stack.emit(other, "trust.computed")
        assert [r.headers["webhook-id"] for r in mine.wait_for(1)] == [e1["id"]]
        assert [r.headers["webhook-id"] for r in theirs.wait_for(1)] == [e2["id"]]
        time.sleep(1)
        assert len(mine.requests) == 1 and len(theirs.requests) == 1


def test_failing_twice_then_succeeding(stack):
    with Receiver(Reply(500), Reply(502), Reply(200)) as receiver:
        hook = stack.subscribe(stack.headers, receiver.url, ["model.attested"])
        created = stack.emit(stack.headers, "model.attested")
        requests_seen = receiver.wait_for(3, timeout=20)
        assert [r.headers["webhook-id"] for r in requests_seen] == [created["id"]] * 3
        for r in requests_seen:
            Webhook(hook["secret"]).verify(r.body, r.headers)
    attempts = stack.wait_attempts(stack.headers, hook["id"], lambda items: len(items) >= 3)
    assert [(a["attempt"], a["status"], a["status_code"]) for a in attempts] == [(3, "succeeded", 200), (2, "retrying", 502), (1, "retrying", 500)]


def test_always_failing_receiver_ends_dead_lettered_with_nothing_lost(stack):
    with Receiver(Reply(503)) as receiver:
        hook = stack.subscribe(stack.headers, receiver.url, ["dataset.attested"])
        created = stack.emit(stack.headers, "dataset.attested")
        attempts = stack.wait_attempts(stack.headers, hook["id"], lambda items: any(a["status"] == "dead_lettered" for a in items), 25)
        assert [a["status"] for a in attempts] == ["dead_lettered", "retrying", "retrying"]
        assert len(receiver.requests) == 3
    sqs = boto3.client("sqs", endpoint_url=stack.dynamodb_endpoint, region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="maip-webhook-dead-letters")["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    assert any(b["event"]["event_id"] == created["id"] and b["webhook_id"] == hook["id"] for b in bodies)


def test_slow_receiver_times_out_and_is_retried(stack):
    with Receiver(Reply(200, delay=2.5), Reply(200)) as receiver:
        hook = stack.subscribe(stack.headers, receiver.url, ["orchestration.timeout"])
        stack.emit(stack.headers, "orchestration.timeout")
        attempts = stack.wait_attempts(stack.headers, hook["id"], lambda items: any(a["status"] == "succeeded" for a in items), 20)
    assert attempts[-1]["error"].startswith("timeout") and attempts[-1]["status_code"] is None
    assert attempts[0]["status"] == "succeeded"


def test_secret_rotation_signs_with_both_secrets(stack):
    with Receiver() as receiver:
        hook = stack.subscribe(stack.headers, receiver.url, ["killswitch.activated"])
        rotated = requests.post(f"{stack.url}{BASE}/{hook['id']}/rotate-secret", headers=stack.headers, timeout=10).json()
        stack.emit(stack.headers, "killswitch.activated")
        (request,) = receiver.wait_for(1)
    assert Webhook(rotated["secret"]).verify(request.body, request.headers) == Webhook(hook["secret"]).verify(request.body, request.headers)


def test_replay_resends_a_window(stack):
    with Receiver() as receiver:
        hook = stack.subscribe(stack.headers, receiver.url, ["anomaly.reported"])
        first = stack.emit(stack.headers, "anomaly.reported")
        second = stack.emit(stack.headers, "anomaly.reported")
        assert len(receiver.wait_for(2)) == 2
        response = requests.post(f"{stack.url}{BASE}/{hook['id']}/replay", headers=stack.headers,
                                 json={"from": first["created_at"], "to": second["created_at"]}, timeout=10)
        assert response.status_code == 202 and response.json()["count"] == 2
        again = receiver.wait_for(4)
        assert sorted(r.headers["webhook-id"] for r in again[2:]) == sorted([first["id"], second["id"]])


def test_cli_manages_webhooks_with_the_api_shape(stack):
    with Receiver() as receiver:
        created = stack.cli("webhooks", "create", "--tenant", "demo", "--url", receiver.url, "--events", "guardrail.*,session.created")
        assert created["id"].startswith("maip-whk:") and created["secret"].startswith("whsec_")
        assert created["event_types"] == ["guardrail.*", "session.created"] and created["status"] == "enabled"
        listed = stack.cli("webhooks", "list", "--tenant", "demo")["items"]
        assert created["id"] in [w["id"] for w in listed]
        got = requests.get(f"{stack.url}{BASE}/{created['id']}", headers=stack.headers, timeout=10).json()
        assert got == {k: v for k, v in created.items() if k != "secret"}
        stack.emit(stack.headers, "guardrail.violation")
        Webhook(created["secret"]).verify(receiver.wait_for(1)[0].body, receiver.requests[0].headers)
        assert stack.cli("webhooks", "delete", created["id"])["deleted"] is True
        assert requests.get(f"{stack.url}{BASE}/{created['id']}", headers=stack.headers, timeout=10).status_code == 404
        stack.emit(stack.headers, "guardrail.violation")
        assert receiver.wait_for(2, timeout=1.5)[1:] == []
