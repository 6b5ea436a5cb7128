"""Builds API Gateway HTTP API (payload v2.0) events the way AWS does, for calling handlers directly."""
from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import urlencode


class Ctx:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "test-request"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def http_event(method: str, path: str, *, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
               body: Any = None, route: str | None = None) -> dict[str, Any]:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    request_id = uuid.uuid4().hex
    return {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "pytest"},
            "requestId": request_id, "routeKey": f"{method} {route or path}", "stage": "$default",
            "time": "23/Nov/2026:07:00:00 +0000", "timeEpoch": 1795417200000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def invoke(handler, method: str, path: str, **kwargs) -> tuple[int, Any, dict[str, str]]:
    """Call a Lambda handler like API Gateway would; returns (status, parsed JSON body or text, headers)."""
    response = handler(http_event(method, path, **kwargs), Ctx())
    body = response.get("body") or ""
    try:
        parsed = json.loads(body) if body else None
    except json.JSONDecodeError:
        parsed = body
    return response["statusCode"], parsed, response.get("headers") or {}


def key_headers(tenant: str, scopes: list[str]) -> dict[str, str]:
    """Request headers carrying a fresh API key of `tenant` with `scopes`."""
    from maip_events.auth.keys import create_api_key

    key = create_api_key(tenant, scopes)
    return {"X-API-Key": key["api_key"], "X-Tenant-ID": tenant, "Content-Type": "application/json"}


@contextmanager
def serve_json(document: bytes | Callable[[], bytes], path: str = "/.well-known/jwks.json",
               on_request: Callable[[], None] | None = None) -> Iterator[str]:
    """A JSON document (e.g. a JWKS) served over HTTP from 127.0.0.1, a thread per request; yields its URL.
    `document` may be a function, called for each request (a document the test changes); `on_request` runs
    before each answer (to count fetches, or hold requests)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if on_request is not None:
                on_request()
            body = document() if callable(document) else document
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()
