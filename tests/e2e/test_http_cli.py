"""`maip-events events emit|list|tail|export`: the installed command driven like a user would, against one
served stack (exports paged at 5 events so a handful of events spans several pages)."""
from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import httpx
import jwt
import pytest

from served_stack import ROOT, served

pytestmark = pytest.mark.e2e

PAGE = 5  # MAIP_EXPORT_MAX_EVENTS of the served stack
JWT_SECRET = "http-cli-test-secret-with-at-least-32-bytes"
TIMEOUT = 60


def _command() -> list[str]:
    script = Path(sys.executable).parent / "maip-events"
    script = script if script.exists() else Path(shutil.which("maip-events") or "")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "maip_events_local.cli"]


MAIP = _command()


class Tenant:
    """The stack's demo tenant and key (no key-creating subprocess), with the environment a user would export for
    the CLI; each test keeps to its own agent id, so filtering by it isolates the test's events."""

    def __init__(self, stack, agent: str):
        self.stack, self.id, self.api_key, self.agent = stack, stack.tenant_id, stack.api_key, agent
        self.env = {**stack.env, "MAIP_URL": stack.url, "MAIP_TENANT": self.id, "MAIP_API_KEY": self.api_key}

    def events(self, *args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*MAIP, "events", *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
                              env=env if env is not None else self.env, **kwargs)

    def emit_many(self, count: int, event_type: str = "agent.registered") -> list[str]:
        response = httpx.post(f"{self.stack.url}/v1/observability/events:batch", timeout=TIMEOUT,
                              headers={"X-API-Key": self.api_key, "X-Tenant-ID": self.id},
                              json={"events": [{"event_type": event_type, "agent_id": self.agent} for _ in range(count)]})
        assert response.status_code == 200, response.text
        return [result["event"]["id"] for result in response.json()["results"]]


@pytest.fixture(scope="module")
def stack():
    # Two handler workers are plenty for one CLI at a time (fewer processes to start on a busy machine).
    with served(MAIP_EXPORT_MAX_EVENTS=str(PAGE), MAIP_JWT_SECRET=JWT_SECRET, MAIP_LOCAL_WORKERS="2") as running:
        yield running


def test_emit_then_list_shows_the_event_as_a_table_and_as_json(stack):
    # Given the URL, tenant and key as options
    tenant = Tenant(stack, "cli-list")
    options = ["--url", stack.url, "--tenant", tenant.id, "--api-key", tenant.api_key]
    # When it emits an event with metadata, and another event arrives
    emitted = tenant.events("emit", "--type", "agent.registered", "--agent", tenant.agent, "--resource", "res-1",
                            "--severity", "warn", "--metadata", '{"region": "eu-west-1", "n": 1.5}', *options, env=stack.env)
    assert emitted.returncode == 0, emitted.stderr
    event_id = emitted.stdout.split()[0]
    [newer] = tenant.emit_many(1, "agent.updated")
    # And it lists one per page as a table, and --all as JSON (settings from the MAIP_* env vars)
    shown = tenant.events("list", "--agent", tenant.agent, "--type", "agent.registered")
    every = tenant.events("list", "--agent", tenant.agent, "--limit", "1", "--all", "--json")
    # Then the table has the event's row and says how many match
    assert event_id.startswith("maip-evt:")
    assert shown.returncode == 0, shown.stderr
    header, row, footer = shown.stdout.splitlines()
    assert header.split() == ["TIME", "TYPE", "SEVERITY", "AGENT", "RESOURCE", "EVENT", "ID"]
    assert row.split()[1:] == ["agent.registered", "warn", tenant.agent, "res-1", event_id]
    assert footer == "1 of 1 event(s)"
    # And --all followed next_token to both events, newest first, payload intact
    document = json.loads(every.stdout)
    assert [item["event_id"] for item in document["items"]] == [newer, event_id]
    assert document["total"] == 2 and document["next_token"] is None
    assert document["items"][1]["payload"] == {"region": "eu-west-1", "n": 1.5}


def test_credentials_missing_settings_and_api_errors(stack):
    # Given the demo tenant, an environment without a URL, and a Bearer token for the tenant
    tenant = Tenant(stack, "cli-errors")
    no_url = {k: v for k, v in tenant.env.items() if k != "MAIP_URL"}
    token = jwt.encode({"tenant_id": tenant.id, "scope": "events:write events:read", "exp": int(time.time()) + 300},
                       JWT_SECRET, algorithm="HS256")
    # When it emits with the token, lists without a URL, with a bad filter, and with a wrong key
    with_token = tenant.events("emit", "--type", "agent.registered", "--agent", tenant.agent, "--token", token, "--json")
    missing = tenant.events("list", "--json", env=no_url)
    bad_filter = tenant.events("list", "--type", "no.such_type")
    bad_key = tenant.events("list", "--api-key", "mk_wrong")
    # Then the token was used in place of the key (an option beats the MAIP_API_KEY env var)
    assert with_token.returncode == 0, with_token.stderr
    assert json.loads(with_token.stdout)["agent_id"] == tenant.agent
    # Then a missing setting exits 2 naming it (and --json still prints one JSON document)
    assert missing.returncode == 2 and "missing settings: --url (or MAIP_URL)" in missing.stderr
    assert json.loads(missing.stdout)["error"]["code"] == "invalid_request"
    # And API errors carry the API's code and message
    assert bad_filter.returncode == 2 and "HTTP 400 invalid_request" in bad_filter.stderr
    assert bad_key.returncode == 1 and "HTTP 401 unauthorized" in bad_key.stderr


def _lines(stream) -> queue.Queue:
    """The stream's lines as they come, then None at its end."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _rest(lines: queue.Queue) -> list[str]:
    """What is left until the stream's end."""
    rest = []
    while (line := lines.get(timeout=TIMEOUT)) is not None:
        rest.append(line)
    return rest


def test_tail_prints_new_events_once_oldest_first_and_stops_on_ctrl_c(stack):
    # Given an event from before the tail starts
    tenant = Tenant(stack, "cli-tail")
    tenant.emit_many(1, "session.created")
    since = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    # When one tail follows from now and another --since a minute ago, and two events are emitted
    follow = [*MAIP, "events", "tail", "--interval", "0.3", "--agent", tenant.agent]
    now_tail = subprocess.Popen([*follow, "--json"], env=tenant.env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    since_tail = subprocess.Popen([*follow, "--since", since], env=tenant.env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        errors = [_lines(now_tail.stderr), _lines(since_tail.stderr)]
        for stderr in errors:  # each says when it is following
            assert "following events from" in stderr.get(timeout=TIMEOUT)
        now_lines, since_lines = _lines(now_tail.stdout), _lines(since_tail.stdout)
        first, second = sorted(tenant.emit_many(2, "agent.updated"))  # ids sort in time order
        # Then the first tail prints exactly the new events, one JSON object per line, oldest first
        printed = [json.loads(now_lines.get(timeout=TIMEOUT)) for _ in range(2)]
        assert [(e["event_id"], e["event_type"]) for e in printed] == [(first, "agent.updated"), (second, "agent.updated")]
        # and the --since tail printed the older event first, as a readable line
        older = since_lines.get(timeout=TIMEOUT)
        assert "session.created" in older and older.split()[0].endswith("Z")
        assert first in since_lines.get(timeout=TIMEOUT) and second in since_lines.get(timeout=TIMEOUT)
        # When Ctrl-C is pressed, Then it stops cleanly (exit 0, no traceback) with nothing printed twice
        time.sleep(0.6)  # a few more polls
        for process in (now_tail, since_tail):
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=TIMEOUT) == 0
        assert _rest(now_lines) == [] and _rest(since_lines) == []
        assert _rest(errors[0]) == [] and _rest(errors[1]) == []
    finally:
        for process in (now_tail, since_tail):
            if process.poll() is None:
                process.kill()


def test_export_writes_every_event_once_over_several_pages(stack, tmp_path):
    # Given 12 events (pages of 5)
    tenant = Tenant(stack, "cli-export")
    ids = tenant.emit_many(12)
    out = tmp_path / "events.jsonl"
    # When it exports them as jsonl
    done = tenant.events("export", "--format", "jsonl", "--agent", tenant.agent, "--out", str(out), "--json")
    # Then the file holds each event once, newest first; the summary counts events, bytes and pages
    assert done.returncode == 0, done.stderr
    lines = out.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["event_id"] for line in lines] == sorted(ids, reverse=True)
    assert json.loads(done.stdout) == {"out": str(out), "format": "jsonl", "events": 12, "bytes": out.stat().st_size,
                                       "pages": 3, "resumed": False}
    assert done.stderr == ""  # stderr is not a terminal: no progress bar
    assert not list(tmp_path.glob("*.partial-state"))


class _Proxy(ThreadingHTTPServer):
    """Forwards GETs to the stack; `on_export(n)` runs before the n-th export request is answered."""

    def __init__(self, upstream: str, on_export: Callable[[int], None]):
        self.upstream, self.on_export, self.exports = upstream, on_export, 0
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if "/export" in self.path:
            self.server.exports += 1
            self.server.on_export(self.server.exports)
        upstream = httpx.get(self.server.upstream + self.path, timeout=TIMEOUT,
                             headers={k: self.headers[k] for k in ("X-API-Key", "X-Tenant-ID")})
        try:
            self.send_response(upstream.status_code)
            for name in ("Content-Type", "X-Next-Token"):
                if name in upstream.headers:
                    self.send_header(name, upstream.headers[name])
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)
        except OSError:
            pass  # the client was killed meanwhile

    def log_message(self, *args):
        pass


def test_an_interrupted_export_resumes_to_exactly_every_line(stack, tmp_path):
    # Given 12 events (pages of 5), and a network path on which the CLI is killed while it asks for page 2
    tenant = Tenant(stack, "cli-resume")
    ids = tenant.emit_many(12)
    out = tmp_path / "events.jsonl"
    victim: list[subprocess.Popen] = []

    def kill_on_second_page(n: int) -> None:
        if n == 2 and victim:
            victim.pop().kill()

    proxy = _Proxy(stack.url, kill_on_second_page)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        env = {**tenant.env, "MAIP_URL": proxy.url}
        command = [*MAIP, "events", "export", "--format", "jsonl", "--agent", tenant.agent, "--out", str(out)]
        # When the export is killed after its first page
        first_run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        victim.append(first_run)
        assert first_run.wait(timeout=TIMEOUT) == -signal.SIGKILL
        # Then the file holds the first page only, and the progress is recorded
        assert len(out.read_bytes().splitlines()) == PAGE
        state = Path(f"{out}.partial-state")
        assert json.loads(state.read_text())["pages"] == 1
        # And even if a later page had been torn mid-line before the crash
        with out.open("ab") as f:
            f.write(b'{"event_id": "maip-evt:TORN')
        # When the same command runs again
        resumed = subprocess.run([*command, "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        # Then it continues from page 2: every event exactly once, no partial line, the state removed
        assert resumed.returncode == 0, resumed.stderr
        data = out.read_bytes()
        assert data.endswith(b"\n")
        assert [json.loads(line)["event_id"] for line in data.splitlines()] == sorted(ids, reverse=True)
        assert json.loads(resumed.stdout)["resumed"] is True and json.loads(resumed.stdout)["pages"] == 3
        assert proxy.exports == 2 + 2  # the first page was not fetched again
        assert not state.exists()
        # And a pending state left by other options is refused rather than mixed in; --restart starts over
        state.write_text(json.dumps({"version": 1, "identity": {"query": {"format": "ocsf"}}, "next_token": None,
                                     "bytes": 0, "events": 0, "pages": 0}))
        refused = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        assert refused.returncode == 2 and "--restart" in refused.stderr
        restarted = subprocess.run([*command, "--restart"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        assert restarted.returncode == 0 and len(out.read_bytes().splitlines()) == 12 and not state.exists()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_export_shows_a_progress_bar_on_a_terminal(stack, tmp_path):
    # Given 7 events and stderr attached to a pseudo-terminal
    tenant = Tenant(stack, "cli-progress")
    ids = tenant.emit_many(7)
    main, secondary = pty.openpty()
    process = subprocess.Popen([*MAIP, "events", "export", "--format", "ocsf", "--agent", tenant.agent,
                                "--out", str(tmp_path / "e.ocsf")], cwd=ROOT,
                               env={**tenant.env, "TERM": "xterm-256color", "COLUMNS": "160"},
                               stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    # When the export runs
    terminal = b""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
    os.close(main)
    assert process.wait(timeout=TIMEOUT) == 0
    # Then the terminal showed events of the exact total, bytes and a rate; stdout has only the summary
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.decode(errors="replace"))
    assert re.search(r"7/7 events · [\d.,]+ (B|kB) · [\d,]+ events/s · [\d.,]+ (B|kB|MB)/s", text), text
    assert process.stdout.read().startswith("exported 7 events (")
    records = [json.loads(line) for line in (tmp_path / "e.ocsf").read_text().splitlines()]
    assert sorted(r["metadata"]["uid"] for r in records) == sorted(ids)
