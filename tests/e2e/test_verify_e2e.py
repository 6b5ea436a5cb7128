"""`maip-events verify` against a served stack: the product's export with proofs, checkpoints and consistency
proofs pass the independent verifier online (--url), and a downloaded export verifies offline. (Tampering with
the product's files: tests/integration/test_verify_product_export.py.)"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from served_stack import served

pytestmark = pytest.mark.e2e

API = "/v1/observability"


def maip_events(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "maip-events"
    command = [str(script)] if script.exists() else [shutil.which("maip-events") or "maip-events"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def wait_for_checkpoint(url: str, headers: dict, tree_size: int, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{url}{API}/integrity/checkpoints/latest", headers=headers, timeout=30)
        if response.status_code == 200 and response.json()["tree_size"] >= tree_size:
            return response.json()
        assert time.monotonic() < deadline, f"no checkpoint of {tree_size} leaves in {timeout:.0f} s: {response.text}"
        time.sleep(0.5)


def emit(url: str, headers: dict, count: int, offset: int = 0) -> list[str]:
    """Emits `count` events; returns their created_at."""
    created = []
    for i in range(offset, offset + count):
        body = {"event_type": ("agent.registered", "session.created")[i % 2], "agent_id": f"agent-{i}",
                "severity": ("info", "warn", "error")[i % 3], "metadata": {"n": i, "ratio": i / 4, "note": "café ✓"}}
        response = requests.post(f"{url}{API}/events", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        created.append(response.json()["created_at"])
    return created


def test_a_served_stack_verifies_online_and_its_export_verifies_offline(tmp_path):
    with served(MAIP_SEAL_GRACE_SECONDS="1") as stack:
        # Given events emitted in two rounds, each sealed into a checkpoint
        created = emit(stack.url, stack.headers, 4)
        wait_for_checkpoint(stack.url, stack.headers, 4)
        emit(stack.url, stack.headers, 3, offset=4)
        wait_for_checkpoint(stack.url, stack.headers, 7)
        # When the operator verifies the live audit trail from the second millisecond with events on
        start = next(moment for moment in created if moment > created[0])
        first = created.index(start)
        online = maip_events("verify", "--url", stack.url, "--tenant", stack.tenant_id, "--api-key", stack.api_key,
                             "--from", start, cwd=tmp_path, env=stack.env)
        # Then the export (its edge proven by the leaf before), both checkpoints, their chain and consistency check out
        assert online.returncode == 0, online.stdout + online.stderr
        assert online.stdout.startswith(f"OK: {7 - first} events, leaves {first}..6 of tree 7, window [{start}, +inf], "
                                        "checkpoint signed by kid "), online.stdout
        assert "2 checkpoint(s) (tree sizes 4..7) signed, chained and consistent" in online.stdout, online.stdout

        # And an export downloaded with proofs verifies offline against the published key
        export = requests.get(f"{stack.url}{API}/events/export", headers=stack.headers, timeout=30,
                              params={"format": "jsonl", "proofs": "true", "order": "asc"})
        assert export.status_code == 200 and "X-Next-Token" not in export.headers, export.text
        (tmp_path / "audit.jsonl").write_bytes(export.content)
        key = requests.get(f"{stack.url}{API}/integrity/public-key", timeout=30).json()
        (tmp_path / "maip.jwk").write_text(json.dumps(key))
        offline = maip_events("verify", "audit.jsonl", "--public-key", "maip.jwk", cwd=tmp_path, env=stack.env)
        assert offline.returncode == 0, offline.stdout + offline.stderr
        assert offline.stdout.startswith("OK: 7 events, leaves 0..6 of tree 7") and "(public key maip.jwk)" in offline.stdout

