"""An API Gateway (HTTP API, payload 2.0) emulator: HTTP requests in, the real handlers called, responses out."""
from __future__ import annotations

import base64
import logging
import sys
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

from maip_events.errors import error_body
from maip_events.local import functions
from maip_events.local.template import Route, http_routes

MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
log = logging.getLogger("maip_events.local.gateway")


def _query_parameters(raw: str) -> dict[str, str] | None:
    """Decoded query parameters with repeated keys comma-joined, as API Gateway does."""
    params: dict[str, str] = {}
    for pair in filter(None, raw.split("&")):
        key, _, value = pair.partition("=")
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        params[key] = f"{params[key]},{value}" if key in params else value
    return params or None


def build_event(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]], body: bytes,
                route: Route | None, path_params: dict[str, str] | None, source_ip: str) -> dict[str, Any]:
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = datetime.now(timezone.utc)
    route_key = f"{route.method} {route.path}" if route else "$default"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": merged.get("host", "127.0.0.1").split(".")[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": merged.get("user-agent", "")},
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    query = _query_parameters(raw_query)
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if body:
        event["body"] = text
    return event


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, before_route: Callable[[dict[str, str]], tuple[int, str, str, dict] | None] | None = None):
        self.routes = http_routes()
        # Optional hook (e.g. per-tenant rate limiting) run before the handler: returns an error to send, or None.
        self.before_route = before_route
        super().__init__((host, port), _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # one line per request is written in _handle
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes, cookies: list[str] | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, str(value))
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
        request_id = uuid.uuid4().hex
        body = error_body(code, message, request_id).encode()
        self._send(status, {"Content-Type": "application/json", "x-request-id": request_id, **(extra or {})}, body)

    def _handle(self) -> None:
        started = time.perf_counter()
        status = 500
        try:
            status = self._dispatch()
        finally:
            print(f"{self.command} {self.path.split('?')[0]} {status} {(time.perf_counter() - started) * 1000:.1f}ms",
                  file=sys.stderr, flush=True)

    def _dispatch(self) -> int:
        raw_path, _, raw_query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._error(400, "invalid_request", "Content-Length is not a number.")
            return 400
        if length > MAX_PAYLOAD:
            self.close_connection = True
            self._error(413, "payload_too_large", f"The request body exceeds {MAX_PAYLOAD} bytes.")
            return 413
        body = self.rfile.read(length) if length > 0 else b""
        method = "GET" if self.command == "HEAD" else self.command
        candidates = [(r, r.match(raw_path)) for r in self.server.routes]
        matching = [(r, params) for r, params in candidates if params is not None]
        if not matching:
            self._error(404, "not_found", f"No route for {self.command} {raw_path}.")
            return 404
        allowed = sorted({r.method for r, _ in matching})
        if self.command == "OPTIONS":
            self._send(204, {"Allow": ", ".join(allowed + ["OPTIONS"])}, b"")
            return 204
        chosen = next(((r, p) for r, p in matching if r.method == method), None)
        if chosen is None:
            self._error(405, "method_not_allowed", f"{self.command} is not allowed on {raw_path}.", {"Allow": ", ".join(allowed)})
            return 405
        route, params = chosen
        event = build_event(method, raw_path, raw_query, list(self.headers.items()), body, route, params, self.client_address[0])
        if self.server.before_route:
            refused = self.server.before_route(event["headers"])
            if refused:
                status, code, message, extra = refused
                self._error(status, code, message, extra)
                return status
        try:
            response = functions.invoke(route.function, event)
        except Exception:  # the handler crashed: Lambda would answer 500 without details
            log.exception("handler %s failed", route.function.logical_id)
            self._error(500, "internal", "An internal error occurred.")
            return 500
        return self._reply(response)

    def _reply(self, response: Any) -> int:
        if not isinstance(response, dict) or "statusCode" not in response:
            self._error(500, "internal", "An internal error occurred.")
            return 500
        body = response.get("body") or ""
        raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        status = int(response["statusCode"])
        self._send(status, headers, raw, response.get("cookies"))
        return status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
