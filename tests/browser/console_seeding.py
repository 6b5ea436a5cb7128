"""Seeding a tenant over HTTP for the console tests, and waiting for its counts to catch up."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from served_stack import ROOT, ServedStack

EVENTS = "/v1/observability/events"
JWT_SECRET = "console-browser-tests-hs256-secret-0123456789"  # HS256 Bearer tokens accepted by the module's stack
TENANTS = ("console-signin", "console-scroll", "console-query", "console-tail", "console-hooks", "console-metrics")


def make_tenants(stack: ServedStack, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """An API key (every scope) per tenant, made by `maip-events keys create` calls in one Python process."""
    script = ("import sys; from maip_events_local.cli import main\n"
              "for tenant in sys.argv[2:]:\n"
              "    assert main(['keys', 'create', '--tenant', tenant, '--scopes', '*', '--json', '--dynamodb-endpoint', sys.argv[1]]) == 0\n")
    done = subprocess.run([sys.executable, "-c", script, stack.dynamodb_endpoint, *names], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=stack.env)
    assert done.returncode == 0, done.stdout + done.stderr
    keys = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {key["tenant_id"]: {"X-API-Key": key["api_key"], "X-Tenant-ID": key["tenant_id"]} for key in keys}


def emit_many(stack: ServedStack, headers: dict[str, str], bodies: list[dict]) -> list[dict]:
    """POSTs events in batches of 100 (all must be stored); the stored events, in order."""
    created = []
    for start in range(0, len(bodies), 100):
        response = requests.post(f"{stack.url}{EVENTS}:batch", headers=headers, json={"events": bodies[start:start + 100]}, timeout=30)
        assert response.status_code == 200, response.text
        created += [result["event"] for result in response.json()["results"]]
    return created


def wait_total(stack: ServedStack, headers: dict[str, str], expected: int, timeout: float = 20.0, **params: str) -> None:
    """Until the list's `total` reaches `expected` (it counts a stored event at once; this also waits out GSI
    propagation for filtered totals)."""
    deadline = time.monotonic() + timeout
    while True:
        total = requests.get(f"{stack.url}{EVENTS}", headers=headers, params={"limit": 1, **params}, timeout=10).json().get("total")
        if total == expected or time.monotonic() > deadline:
            assert total == expected, f"total stayed {total}, expected {expected}"
            return
        time.sleep(0.2)
