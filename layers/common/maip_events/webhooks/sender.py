"""One HTTP POST to a webhook receiver: connects to the address the guard approved, never follows
redirects, bounds the whole exchange by a timeout and reads at most a few KiB of the response."""
from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

from maip_events.webhooks import guard

MAX_RESPONSE_BYTES = 64 * 1024  # read (then discarded) at most this much of a response
KEPT_RESPONSE_CHARS = 1024  # what the deliveries log keeps of it
USER_AGENT = "maip-events-webhooks/1"


@dataclass
class SendResult:
    ok: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None
    response_body: str | None = None


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a pre-checked IP while keeping the URL's host for the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        self.sock = _tls_context().wrap_socket(self.sock, server_hostname=self.host)  # SNI + certificate check on the name


def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> SendResult:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        parts = guard.parse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = guard.resolve(parts.hostname or "", port)
    except guard.RefusedTarget as err:
        return SendResult(ok=False, latency_ms=elapsed_ms(), error=f"refused: {err}")
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = cls(parts.hostname or "", port, address, timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = started + timeout
    response = None
    try:
        connection.request("POST", path, body=body, headers={**headers, "user-agent": USER_AGENT, "content-length": str(len(body))})
        sock = connection.sock  # http.client drops its reference once a response says "Connection: close"
        sock.settimeout(max(deadline - time.monotonic(), 0.001))  # one budget for the whole exchange
        response = connection.getresponse()
        kept = bytearray()
        while len(kept) < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = response.read1(min(16384, MAX_RESPONSE_BYTES - len(kept)))
            if not chunk:
                break
            kept += chunk
        status = response.status
        text = bytes(kept[: KEPT_RESPONSE_CHARS * 4]).decode("utf-8", "replace")[:KEPT_RESPONSE_CHARS] or None
        ok = 200 <= status < 300
        return SendResult(
            ok=ok, latency_ms=elapsed_ms(), status_code=status, response_body=text,
            error=None if ok else f"HTTP {status}", retry_after=response.getheader("retry-after"),
        )
    except (TimeoutError, socket.timeout):
        return SendResult(ok=False, latency_ms=elapsed_ms(), error=f"timeout after {timeout:g} s")
    except ssl.SSLError as err:
        return SendResult(ok=False, latency_ms=elapsed_ms(), error=f"TLS error: {err.reason or err}")
    except (OSError, http.client.HTTPException) as err:
        return SendResult(ok=False, latency_ms=elapsed_ms(), error=f"connection error: {type(err).__name__}: {err}"[:500])
    finally:
        if response is not None:
            response.close()
        connection.close()
