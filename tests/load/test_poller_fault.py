"""Fault test: the local stack's stream poller is stopped and restarted (SIGUSR1 / SIGUSR2 of `maip-events serve`)
while events are being emitted; every event still reaches the webhook receiver, exactly once per `webhook-id`
after de-duplication (Standard Webhooks delivery is at-least-once; duplicates are counted and printed)."""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from served_stack import served
from webhook_receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.load]

EVENTS, WEBHOOKS = "/v1/observability/events", "/v1/observability/webhooks"
CLIENTS, PER_CLIENT = 4, 30


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_every_event_is_delivered_once_per_webhook_id_across_poller_restarts():
    with served(MAIP_WEBHOOK_RETRY_SCHEDULE="1,1,2,2,5", MAIP_WEBHOOK_TIMEOUT="2") as stack, Receiver() as receiver:
        hook = requests.post(stack.url + WEBHOOKS, headers=stack.headers, json={"url": receiver.url, "event_types": ["*"]}, timeout=10)
        assert hook.status_code == 201, hook.text
        emitted: list[str] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            with requests.Session() as session:
                for seq in range(PER_CLIENT):
                    response = session.post(stack.url + EVENTS, headers=stack.headers, timeout=30,
                                            json={"event_type": "agent.updated", "agent_id": f"a-{number}", "metadata": {"seq": seq}})
                    assert response.status_code == 201, response.text
                    with lock:
                        emitted.append(response.json()["id"])
                    time.sleep(0.02)

        # When events are emitted while the poller is stopped and restarted twice
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, n) for n in range(CLIENTS)]
            for _ in range(2):
                time.sleep(0.7)
                stack.signal(signal.SIGUSR1)  # stop the poller mid-run
                time.sleep(1.5)
                stack.signal(signal.SIGUSR2)  # and start it again
            for future in futures:
                future.result()
        total = CLIENTS * PER_CLIENT
        assert len(emitted) == total

        # Then every event id arrives (a late restart is retried: SIGUSR2 is idempotent)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if {r.headers["webhook-id"] for r in list(receiver.requests)} >= set(emitted):
                break
            stack.signal(signal.SIGUSR2)
            time.sleep(1)
        time.sleep(2)  # anything still in flight would show up as a duplicate now
        received = list(receiver.requests)
        per_id = Counter(r.headers["webhook-id"] for r in received)
        duplicates = sum(n - 1 for n in per_id.values())
        print(f"\npoller fault: {total} events, {len(received)} deliveries, {len(per_id)} distinct webhook-ids, {duplicates} duplicates")
        assert set(per_id) == set(emitted)
        # And each delivery is a genuine, signed copy of its event
        verifier = Webhook(hook.json()["secret"])
        for request in received:
            body = verifier.verify(request.body, request.headers)
            assert body["data"]["event_id"] == request.headers["webhook-id"]
