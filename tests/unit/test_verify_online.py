"""`maip-events verify --url` against a small HTTP server that serves evidence built by the test prover: an
honest log passes (export in two pages, three chained checkpoints listed in capped pages); a forked log and a
broken `previous` chain are caught."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from integrity_fixtures import TenantLog, b64
from maip_events_local.cli import main

API = "/v1/observability"


class FakeApi:
    """Serves one tenant's public key, export (two pages) and checkpoints; consistency proofs from `tree_log`."""

    def __init__(self, log: TenantLog, checkpoints: list[dict], tree_log: TenantLog | None = None):
        self.log, self.checkpoints, self.tree_log = log, checkpoints, tree_log or log
        lines = log.export(size=checkpoints[-1]["tree_size"])
        trailer = json.loads(lines[-1])
        trailer["integrity"]["checkpoint"] = checkpoints[-1]
        lines[-1] = json.dumps(trailer)
        half = len(lines) // 2
        self.pages = ["".join(f"{line}\n" for line in lines[:half]), "".join(f"{line}\n" for line in lines[half:])]

    def answer(self, path: str, query: dict) -> tuple[dict, bytes | dict]:
        if path == f"{API}/integrity/public-key":
            return {}, self.log.key.jwk()
        if path == f"{API}/events/export":
            assert query["proofs"] == ["true"] and query["format"] == ["jsonl"]
            if "next_token" in query:
                return {}, self.pages[1].encode()
            return {"X-Next-Token": "page-2"}, self.pages[0].encode()
        if path == f"{API}/integrity/checkpoints/latest":
            return {}, self.checkpoints[-1]
        if path == f"{API}/integrity/checkpoints":  # sealed_at >= from, oldest first, capped (at 2 here)
            start = query.get("from", [""])[0]
            return {}, {"items": [c for c in self.checkpoints if c["sealed_at"] >= start][:2]}
        if path == f"{API}/integrity/consistency":
            first, second = int(query["first"][0]), int(query["second"][0])
            return {}, {"first": first, "second": second,
                        "proof": [b64(h) for h in self.tree_log.tree.consistency(first, second)]}
        raise AssertionError(path)


@pytest.fixture
def serve():
    servers = []

    def start(api: FakeApi) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                headers, body = api.answer(url.path, parse_qs(url.query))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def chained(log: TenantLog, sizes: list[int], logs: dict[int, TenantLog] | None = None) -> list[dict]:
    checkpoints: list[dict] = []
    for size in sizes:
        source = (logs or {}).get(size, log)
        checkpoints.append(source.checkpoint(size, previous=checkpoints[-1] if checkpoints else None))
    return checkpoints


def verify_url(url: str, capsys) -> tuple[int, str]:
    code = main(["verify", "--url", url, "--tenant", "t-acme", "--api-key", "k"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_an_honest_log_verifies_online(serve, capsys):
    log = TenantLog(40)
    code, output = verify_url(serve(FakeApi(log, chained(log, [10, 20, 30, 40]))), capsys)
    assert code == 0, output
    assert output.startswith("OK: 40 events, leaves 0..39 of tree 40")
    assert "4 checkpoint(s) (tree sizes 10..40) signed, chained and consistent" in output


def test_a_forked_log_fails_consistency(serve, capsys):
    # Given a checkpoint of 20 leaves signed over a history where event 15 was rewritten
    log, forked = TenantLog(30), TenantLog(30).rewrite(15, severity="info", payload={"rewritten": True})
    api = FakeApi(log, chained(log, [10, 20, 30], logs={20: forked}))
    code, output = verify_url(serve(api), capsys)
    assert code == 1 and "FAILED: checkpoints:" in output and "not consistent" in output, output


def test_a_removed_checkpoint_breaks_the_previous_chain(serve, capsys):
    log = TenantLog(30)
    checkpoints = chained(log, [10, 20, 30])
    del checkpoints[1]  # the server hides the checkpoint of 20 leaves
    code, output = verify_url(serve(FakeApi(log, checkpoints)), capsys)
    assert code == 1 and "`previous`" in output, output
