"""`maip-events serve` in a child process for the security, fuzz and load suites: free ports, its own
environment, stderr captured to a file (so tests can read what the stack logged)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


class ServedStack:
    def __init__(self, process: subprocess.Popen, info: dict, log_path: Path, env: dict[str, str], stdout: list[str]):
        self.process, self.log_path, self.env, self._stdout = process, log_path, env, stdout
        self.url, self.dynamodb_endpoint = info["url"], info["dynamodb_endpoint"]
        self.tenant_id, self.api_key = info["tenant_id"], info["api_key"]
        self.headers = {"X-API-Key": self.api_key, "X-Tenant-ID": self.tenant_id}

    def cli(self, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "maip_events_local.cli", *args, "--json", "--dynamodb-endpoint", self.dynamodb_endpoint],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=self.env)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def key(self, tenant_id: str, scopes: str = "*") -> dict:
        return self.cli("keys", "create", "--tenant", tenant_id, "--scopes", scopes)

    def headers_for(self, tenant_id: str, scopes: str = "*") -> dict[str, str]:
        return {"X-API-Key": self.key(tenant_id, scopes)["api_key"], "X-Tenant-ID": tenant_id}

    def logs(self) -> str:
        """Everything the stack wrote: stderr (gateway, poller) and stdout (Powertools' JSON logs)."""
        return self.log_path.read_text(errors="replace") + "".join(self._stdout)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)


def stack_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")])
    env.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
    return {**env, **extra}


@contextmanager
def served(**env_extra: str) -> Iterator[ServedStack]:
    env = stack_env(**env_extra)
    with tempfile.TemporaryDirectory(prefix="maip-stack-") as folder:
        log_path = Path(folder) / "stderr.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "maip_events_local.cli", "serve", "--port", "0", "--dynamodb-port", "0", "--json"],
                stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=env)
            try:
                line = process.stdout.readline()
                assert line, f"maip-events serve did not start:\n{log_path.read_text()}"
                # Keep reading stdout (handlers log there) so a full pipe can never block the stack.
                stdout: list[str] = []
                threading.Thread(target=lambda: stdout.extend(iter(process.stdout.readline, "")), daemon=True).start()
                yield ServedStack(process, json.loads(line), log_path, env, stdout)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
