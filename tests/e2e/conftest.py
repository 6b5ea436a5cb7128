"""End-to-end fixtures: a real `maip-events serve` process, driven over HTTP and through the CLI like a user would."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def stack_env(**extra: str) -> dict[str, str]:
    """The environment for `serve` and the CLI: this one without MAIP_* settings, the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "layers" / "common")])
    return {**env, **extra}


@dataclass
class LocalStack:
    process: subprocess.Popen
    url: str
    dynamodb_endpoint: str
    api_key: str
    tenant_id: str
    key_id: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """Credentials of the demo key `serve` creates (tenant `demo`, every scope)."""
        return {"X-API-Key": self.api_key, "X-Tenant-ID": self.tenant_id}

    def cli(self, *args: str, check: bool = True) -> Any:
        """`maip-events ARGS --json` against this stack's embedded DynamoDB; the parsed JSON it printed."""
        done = subprocess.run([sys.executable, "-m", "maip_events_local.cli", *args, "--json",
                               "--dynamodb-endpoint", self.dynamodb_endpoint],
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=self.env)
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def tenant(self, tenant_id: str, scopes: str = "*") -> dict[str, str]:
        """Request headers with a fresh API key for `tenant_id`, created with the CLI."""
        key = self.cli("keys", "create", "--tenant", tenant_id, "--scopes", scopes)
        return {"X-API-Key": key["api_key"], "X-Tenant-ID": tenant_id}

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM (a clean shutdown), then a kill if it hangs; the exit code."""
        stop_stack(self.process)
        return self.process.returncode


def start_stack(log: Path, **env: str) -> LocalStack:
    """Starts `maip-events serve` on free ports and waits (bounded) for the JSON line it prints when ready."""
    environment = stack_env(**env)
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "maip_events_local.cli", "serve", "--port", "0", "--dynamodb-port", "0", "--json"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO_ROOT, env=environment)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT)
    except queue.Empty:
        line = ""
    if not line:
        stop_stack(process)
        pytest.fail(f"maip-events serve did not start within {START_TIMEOUT:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")
    info = json.loads(line)
    return LocalStack(process, info["url"], info["dynamodb_endpoint"], info["api_key"], info["tenant_id"],
                      info["key_id"], log, environment)


def stop_stack(process: subprocess.Popen) -> None:
    process.terminate()  # SIGTERM: the stack shuts down cleanly
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """One `maip-events serve` per module that uses it (demo tenant key included), stopped after that module: an
    idle stack still polls its streams and queues, which would take CPU from every test that runs after it."""
    stack = start_stack(tmp_path_factory.mktemp("local-stack") / "serve.log")
    try:
        yield stack
    finally:
        stop_stack(stack.process)


@pytest.fixture
def spawn_stack(tmp_path):
    """Starts extra stacks for one test (`spawn_stack(**env)`); whatever is still running is stopped after it."""
    started: list[LocalStack] = []

    def spawn(**env: str) -> LocalStack:
        started.append(start_stack(tmp_path / f"serve-{len(started)}.log", **env))
        return started[-1]

    yield spawn
    for stack in started:
        if stack.process.poll() is None:
            stop_stack(stack.process)
