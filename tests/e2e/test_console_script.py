"""`maip-events serve` as `make run` starts it: the installed console script, from any working directory."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_the_console_script_serves_the_real_handlers_from_another_directory(tmp_path):
    # Given the installed `maip-events` command (not `python -m`, which would put the cwd on sys.path)
    script = Path(sys.executable).parent / "maip-events"
    if not script.exists():
        script = Path(shutil.which("maip-events") or "")
    assert script.is_file(), "maip-events console script is not installed"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAIP_TEMPLATE")}
    process = subprocess.Popen([str(script), "serve", "--port", "0", "--dynamodb-port", "0", "--json"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        stack = json.loads(process.stdout.readline())
        headers = {"X-API-Key": stack["api_key"], "X-Tenant-ID": stack["tenant_id"]}
        # When a client emits and lists
        created = requests.post(f"{stack['url']}/v1/observability/events", json={"event_type": "agent.registered"},
                                headers=headers, timeout=30)
        listed = requests.get(f"{stack['url']}/v1/observability/events", headers=headers, timeout=30)
        docs = requests.get(f"{stack['url']}/v1/openapi.json", timeout=30)
        # Then every handler answered
        assert created.status_code == 201, created.text
        assert listed.status_code == 200 and listed.json()["items"][0]["event_id"] == created.json()["id"]
        assert docs.status_code == 200 and docs.json()["openapi"].startswith("3.1")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
