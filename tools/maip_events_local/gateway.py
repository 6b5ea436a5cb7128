"""An API Gateway (HTTP API, payload 2.0) emulator: HTTP requests in, the real handlers called, responses out."""
from __future__ import annotations

import base64
import json
import logging
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

from maip_events.errors import error_body
from maip_events_local import functions
from maip_events_local.template import Function, Route, http_routes

MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body is read and dropped up to this, so the client sees the 413
log = logging.getLogger("maip_events_local.gateway")

# Statuses http.server itself may answer (malformed request line, huge headers, ...) -> contract error codes.
_SERVER_ERRORS = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 408: "invalid_request",
                  413: "payload_too_large", 414: "invalid_request", 431: "invalid_request"}


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _query_parameters(raw: str) -> dict[str, str] | None:
    """Decoded query parameters with repeated keys comma-joined, as API Gateway does (None when there are none)."""
    params: dict[str, str] = {}
    for pair in filter(None, raw.split("&")):
        key, _, value = pair.partition("=")
        # unquote never raises: bad escapes stay as they are, invalid UTF-8 becomes U+FFFD.
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        params[key] = f"{params[key]},{value}" if key in params else value
    return params or None


def build_event(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]], body: bytes,
                route: Route | None, path_params: dict[str, str] | None, source_ip: str,
                request_id: str | None = None) -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for this request (`raw_path` already percent-decoded)."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":  # HTTP API moves cookies out of the headers into their own list
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = datetime.now(timezone.utc)
    route_key = f"{route.method} {route.path}" if route else "$default"
    host = merged.get("host", "127.0.0.1")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": merged.get("user-agent", "")},
            "requestId": request_id or uuid.uuid4().hex,
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


def lambda_response(response: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """A handler's return value -> (status, headers, cookies, body), inferring the format as HTTP API 2.0 does."""
    if not (isinstance(response, dict) and "statusCode" in response):
        # No statusCode: API Gateway answers 200 with the value as a JSON body (a string as it is).
        body = response if isinstance(response, str) else json.dumps(response)
        return 200, {"content-type": "application/json"}, [], body.encode("utf-8")
    status = int(response["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"invalid statusCode {status}")
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(map(str, values))
    return status, headers, [str(c) for c in response.get("cookies") or []], raw


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many clients connect at once in load tests; the default backlog of 5 drops SYNs

    def __init__(self, host: str, port: int, before_route: Callable[[dict[str, str]], tuple[int, str, str, dict] | None] | None = None,
                 invoke: Callable[[Function, dict[str, Any]], Any] = functions.invoke):
        self.routes = http_routes()
        # How a handler is called: in this process (one request per function at a time), or a WorkerPool's invoke.
        self.invoke = invoke
        # Optional hook (e.g. per-tenant rate limiting) run before the handler: returns an error to send, or None.
        self.before_route = before_route
        super().__init__((host, port), _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, socket.timeout)):
            return  # the client went away: nothing to report
        log.exception("gateway error serving %s", client_address[0])


class _RequestHandler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections and stalled uploads do not hold a thread forever
    _responded = False

    def __getattr__(self, name: str) -> Any:
        # Any method (PUT, TRACE, made-up ones) goes through routing: 404 or 405 like API Gateway, never a bare 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, fmt: str, *args: Any) -> None:  # one line per request is written in _handle
        pass

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue` with an oversized body: refuse before the client uploads it."""
        length = (self.headers.get("Content-Length") or "").strip()
        if length.isdigit() and int(length) > MAX_PAYLOAD:
            self.close_connection = True
            self._error(413, "payload_too_large", f"The request body exceeds {MAX_PAYLOAD} bytes.")
            print(f"{self.command} {self.path.split('?')[0]} 413", file=sys.stderr, flush=True)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server raises itself (malformed request line, oversized headers) in the contract's shape."""
        self.close_connection = True
        try:
            default = f"{HTTPStatus(code).phrase}."
        except ValueError:
            default = "The request is malformed."
        self._error(code, _SERVER_ERRORS.get(code, "invalid_request"), message or default)

    def _send(self, status: int, headers: dict[str, str], body: bytes, cookies: list[str] | None = None) -> None:
        self._responded = True
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, str(value))
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None,
               request_id: str | None = None) -> None:
        request_id = request_id or uuid.uuid4().hex
        body = error_body(code, message, request_id).encode()
        headers = {"Content-Type": "application/json", "x-request-id": request_id, "apigw-requestid": request_id,
                   **(extra or {})}
        self._send(status, headers, body)

    def _handle(self) -> None:
        started = time.perf_counter()
        self._responded = False
        status = 500
        try:
            status = self._dispatch()
        except _BadRequest as bad:
            self.close_connection = True  # the body was not (fully) read: the connection cannot be reused
            self._error(bad.status, bad.code, bad.message)
            status = bad.status
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            status = 499  # the client went away
        except Exception:  # a bug in the gateway itself: answer like Lambda would, keep serving
            log.exception("gateway failed on %s", self.command)
            self.close_connection = True
            if not self._responded:
                self._error(500, "internal", "An internal error occurred.")
        finally:
            # Method, path (no query string: it may carry user data), status, time. Never headers or bodies.
            print(f"{self.command} {self.path.split('?')[0]} {status} {(time.perf_counter() - started) * 1000:.1f}ms",
                  file=sys.stderr, flush=True)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length not in (None, "") else 0
        except ValueError:
            raise _BadRequest(400, "invalid_request", "Content-Length is not a number.") from None
        if length < 0:
            raise _BadRequest(400, "invalid_request", "Content-Length is negative.")
        if length > MAX_PAYLOAD:
            self._drain(length)
            raise _BadRequest(413, "payload_too_large", f"The request body exceeds {MAX_PAYLOAD} bytes.")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "invalid_request", "The chunked request body is malformed.") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_PAYLOAD:
                raise _BadRequest(413, "payload_too_large", f"The request body exceeds {MAX_PAYLOAD} bytes.")
            body += self.rfile.read(size)
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _drain(self, length: int) -> None:
        """Read and drop an oversized body (bounded), so the client is not reset before it reads the 413."""
        remaining = min(length, DRAIN_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)

    def _dispatch(self) -> int:
        raw_target, _, raw_query = self.path.partition("?")
        raw_query = raw_query.partition("#")[0]
        path = unquote(raw_target)  # HTTP API decodes the path before routing; rawPath is the decoded path
        body = self._read_body()
        method = "GET" if self.command == "HEAD" else self.command
        matching = [(r, params) for r in self.server.routes if (params := r.match(path)) is not None]
        if not matching:
            self._error(404, "not_found", f"No route for {self.command} {path}.")
            return 404
        allowed = sorted({r.method for r, _ in matching})
        if self.command == "OPTIONS":
            self._send(204, {"Allow": ", ".join(allowed + ["OPTIONS"])}, b"")
            return 204
        chosen = next(((r, p) for r, p in matching if r.method == method), None)
        if chosen is None:
            self._error(405, "method_not_allowed", f"{self.command} is not allowed on {path}.", {"Allow": ", ".join(allowed)})
            return 405
        route, params = chosen
        request_id = uuid.uuid4().hex
        event = build_event(method, path, raw_query, list(self.headers.items()), body, route, params,
                            self.client_address[0], request_id)
        if self.server.before_route:
            refused = self.server.before_route(event["headers"])
            if refused:
                status, code, message, extra = refused
                self._error(status, code, message, extra, request_id)
                return status
        try:
            status, headers, cookies, raw = lambda_response(self.server.invoke(route.function, event))
        except Exception:  # the handler crashed or answered nonsense: Lambda's 500, details only in the log
            log.exception("handler %s failed", route.function.logical_id)
            self._error(500, "internal", "An internal error occurred.", request_id=request_id)
            return 500
        self._send(status, {**headers, "apigw-requestid": request_id}, raw, cookies)
        return status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
