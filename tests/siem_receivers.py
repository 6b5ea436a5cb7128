"""Local stand-ins for the log-stream products, on 127.0.0.1. Each checks the wire format the product
documents and answers like it (400 for a malformed request); `fail_next` makes the next N requests 503."""
from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEC_KEYS = {"time", "host", "source", "sourcetype", "index", "event", "fields"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes  # as sent (gzip-decoded for Datadog)
    records: list[dict[str, Any]] = field(default_factory=list)  # the event records inside


def parse_hec(body: bytes) -> list[dict[str, Any]]:
    """Splunk HEC /services/collector/event: JSON event objects, concatenated (whitespace allowed between)."""
    decoder, text, at, objects = json.JSONDecoder(), body.decode("utf-8"), 0, []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return objects
        obj, at = decoder.raw_decode(text, at)
        if not isinstance(obj, dict) or "event" not in obj or not set(obj) <= HEC_KEYS:
            raise ValueError(f"not an HEC event object: {sorted(obj)}")
        if not isinstance(obj["time"], (int, float)) or not all(isinstance(obj[k], str) for k in ("host", "source", "sourcetype")):
            raise ValueError("bad HEC metadata")
        objects.append(obj)


def parse_datadog(body: bytes) -> list[dict[str, Any]]:
    """Datadog logs intake v2: a JSON array of log objects with ddsource/ddtags/hostname/service/message."""
    entries = json.loads(body)
    if not isinstance(entries, list) or not entries or len(entries) > 1000:
        raise ValueError("expected a JSON array of 1..1000 logs")
    for entry in entries:
        if not isinstance(entry.get("message"), str) or not all(isinstance(entry.get(k), str) for k in ("ddsource", "ddtags", "hostname", "service")):
            raise ValueError("bad log entry")
    return entries


class Receiver:
    def __init__(self, kind: str, credential: str | None = None):
        self.kind, self.credential = kind, credential
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, reply = receiver._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, {"text": "Server is busy", "code": 9}
        try:
            if self.kind == "splunk_hec":
                if path != "/services/collector/event" or headers.get("authorization") != f"Splunk {self.credential}":
                    raise PermissionError("bad path or token")
                records = [o["event"] for o in parse_hec(body)]
            elif self.kind == "datadog":
                if path != "/api/v2/logs" or headers.get("dd-api-key") != self.credential:
                    raise PermissionError("bad path or key")
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                records = [json.loads(e["message"]) for e in parse_datadog(body)]
            else:
                if headers.get("content-type") != "application/x-ndjson":
                    raise ValueError("not NDJSON")
                records = [json.loads(line) for line in body.decode().splitlines()]
        except PermissionError as err:
            self.rejected.append(str(err))
            return 403, {"text": "Invalid token", "code": 4}
        except (ValueError, KeyError, OSError) as err:
            self.rejected.append(str(err))
            return 400, {"text": "Invalid data format", "code": 6}
        with self._lock:
            self.received.append(Received(path, headers, body, records))
        return (202 if self.kind == "datadog" else 200), ({} if self.kind == "datadog" else {"text": "Success", "code": 0})

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for got in self.received for r in got.records]

    def wait_records(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.records()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.records()

    def __enter__(self) -> "Receiver":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def event_id_of(record: dict[str, Any]) -> str:
    """The MAIP event id of an OCSF record (metadata.uid) or a jsonl record (event_id)."""
    return record.get("event_id") or record["metadata"]["uid"]
