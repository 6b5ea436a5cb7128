"""Load against `maip-events serve`: 50 concurrent clients x N events each (MAIP_LOAD_CLIENTS, MAIP_LOAD_EVENTS:
20 in `make test`, 200 for the full 10,000-event run),
then every event is listed exactly once with its exact body, and no request failed. Throughput is printed,
never asserted."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from maip_events.catalog import EVENT_TYPES
from served_stack import served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.load]

EVENTS = "/v1/observability/events"
CLIENTS = int(os.environ.get("MAIP_LOAD_CLIENTS", "50"))
PER_CLIENT = int(os.environ.get("MAIP_LOAD_EVENTS", "20"))  # the full run: MAIP_LOAD_EVENTS=200 (10,000 events)


def body_for(client: int, seq: int) -> dict:
    return {
        "event_type": EVENT_TYPES[(client + seq) % len(EVENT_TYPES)],
        "agent_id": f"agent-{client}",
        "resource_id": f"res-{client}-{seq}",
        "severity": ("info", "warn", "error")[seq % 3],
        "metadata": {"client": client, "seq": seq, "ratio": seq / 7, "big": 2**53 + seq, "text": "ünï✓ \"q\"",
                     "nested": {"none": None, "list": [1, 2.5, "x", True]}},
    }


def expected_item(event_id: str, created_at: str, body: dict) -> dict:
    return {"event_id": event_id, "event_type": body["event_type"], "agent_id": body["agent_id"],
            "resource_id": body["resource_id"], "severity": body["severity"], "payload": body["metadata"],
            "timestamp": created_at}


def list_all(url: str, headers: dict) -> tuple[list[dict], int]:
    items, token, total = [], None, None
    with requests.Session() as session:
        while True:
            params = {"limit": 250, **({"next_token": token} if token else {})}
            response = session.get(url + EVENTS, headers=headers, params=params, timeout=60)
            assert response.status_code == 200, response.text
            page = response.json()
            total = page["total"] if total is None else total
            items += page["items"]
            token = page["next_token"]
            if not token:
                return items, total


def test_concurrent_clients_lose_and_duplicate_nothing():
    with served(POWERTOOLS_LOG_LEVEL="WARNING") as stack:
        headers = stack.headers_for("load-tenant", "events:write,events:read")
        created: dict[str, dict] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            with requests.Session() as session:
                for seq in range(PER_CLIENT):
                    body = body_for(number, seq)
                    try:
                        response = session.post(stack.url + EVENTS, headers=headers, json=body, timeout=60)
                    except requests.RequestException as exc:
                        with lock:
                            errors.append(f"client {number} #{seq}: {exc!r}")
                        continue
                    with lock:
                        if response.status_code != 201:
                            errors.append(f"client {number} #{seq}: {response.status_code} {response.text[:200]}")
                        else:
                            doc = response.json()
                            created[doc["id"]] = expected_item(doc["id"], doc["created_at"], body)

        # When 50 clients emit 200 events each at the same time
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        elapsed = time.perf_counter() - started
        total = CLIENTS * PER_CLIENT
        print(f"\nload: {total} events from {CLIENTS} clients in {elapsed:.1f} s = {total / elapsed:.0f} events/s, "
              f"{len(errors)} errors")
        # Then no request failed and every response carried a distinct id
        assert errors == []
        assert len(created) == total
        # And listing returns each event exactly once, with exactly the body that was sent
        # (`total` comes from the stream aggregation, seconds behind under this load: wait, bounded, for it)
        caught_up = time.monotonic() + 60
        while time.monotonic() < caught_up and requests.get(stack.url + EVENTS, headers=headers, params={"limit": 1},
                                                           timeout=60).json()["total"] != total:
            time.sleep(0.5)
        listed_started = time.perf_counter()
        items, reported_total = list_all(stack.url, headers)
        print(f"load: listed {len(items)} events in {time.perf_counter() - listed_started:.1f} s")
        ids = [item["event_id"] for item in items]
        assert reported_total == total
        assert len(ids) == len(set(ids)) == total
        assert {item["event_id"]: item for item in items} == created
        # Newest first
        assert ids == sorted(ids, reverse=True)
        assert "Traceback" not in stack.logs()
