"""One HTTPS POST to a log-stream destination: the URL passes the webhooks SSRF guard at send time and the
connection goes to exactly the address it approved (no DNS rebinding); no redirects; bounded response read."""
from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache

from maip_events.webhooks import guard

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "maip-events-streams/1"


@dataclass
class PostResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, tls: bool):
        super().__init__(host, port, timeout=timeout)
        self._address, self._tls = address, tls

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        if self._tls:
            self.sock = _tls_context().wrap_socket(self.sock, server_hostname=self.host)  # SNI + certificate check on the name


def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> PostResult:
    try:
        parts = guard.parse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = guard.resolve(parts.hostname or "", port)
    except guard.RefusedTarget as err:
        return PostResult(ok=False, error=f"refused: {err}")
    connection = _Pinned(parts.hostname or "", port, address, timeout, parts.scheme == "https")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers={**headers, "user-agent": USER_AGENT})
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)  # drained (bounded) and discarded: only the status matters
        ok = 200 <= response.status < 300
        return PostResult(ok=ok, status_code=response.status, error=None if ok else f"HTTP {response.status}")
    except (TimeoutError, socket.timeout):
        return PostResult(ok=False, error=f"timeout after {timeout:g} s")
    except ssl.SSLError as err:
        return PostResult(ok=False, error=f"TLS error: {err.reason or err}")
    except (OSError, http.client.HTTPException) as err:
        return PostResult(ok=False, error=f"connection error: {type(err).__name__}: {err}"[:500])
    finally:
        connection.close()
