"""The one outbound HTTP client (httpx) of webhooks and log streams.

One wall-clock deadline covers the whole exchange: name resolution (on a resolver thread the caller stops
waiting for at the deadline), connect, TLS, sending the request, the response headers and the (bounded)
body. httpx's own timeouts are per socket operation, so a receiver dripping one byte a second would never
trip them: every socket operation here gets at most the time left until the deadline, and a watchdog shuts
the socket down at the deadline (that also ends a TLS handshake dripped byte by byte). The connection goes
to the address the guard approved, while the URL's host stays the Host header and the TLS server name
(certificate checked for that name); redirects are never followed."""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import httpcore
import httpx

from maip_events.http import guard

MAX_RESPONSE_BYTES = 64 * 1024  # read (then discarded) at most this much of a response
KEPT_RESPONSE_CHARS = 1024  # what a deliveries log keeps of it
USER_AGENT = "maip-events/1"
# httpx logs every request at INFO (full URL included): the deliveries log and stream status are the record.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class Result:
    ok: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None
    response_body: str | None = None
    timed_out: bool = False


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # system trust store (honours SSL_CERT_FILE)


def post(url: str, headers: dict[str, str], body: bytes, deadline: float) -> Result:
    """POSTs `body` to `url`; never raises for anything the receiver or the network does. `deadline` is
    the total budget in seconds for the whole exchange."""
    started = time.monotonic()
    due = started + max(deadline, 0.001)

    def result(**fields) -> Result:
        return Result(latency_ms=int((time.monotonic() - started) * 1000), **fields)

    def timeout() -> Result:
        return result(ok=False, error=f"timeout after {deadline:g} s", timed_out=True)

    try:
        parts = guard.parse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = guard.resolve(parts.hostname or "", port, due - time.monotonic())
    except guard.ResolveTimeout:
        return timeout()
    except guard.RefusedTarget as err:
        return result(ok=False, error=f"refused: {err}")
    backend = _DeadlineBackend(address, due)
    try:
        with httpx.Client(transport=_PinnedTransport(backend), follow_redirects=False, trust_env=False,
                          timeout=httpx.Timeout(deadline)) as client:
            with client.stream("POST", url, headers={**headers, "user-agent": USER_AGENT}, content=body) as response:
                kept = bytearray()
                for chunk in response.iter_raw():
                    kept += chunk
                    if len(kept) >= MAX_RESPONSE_BYTES:
                        break
    except httpx.TimeoutException:
        return timeout()
    except httpx.ConnectError as err:
        if time.monotonic() >= due:
            return timeout()
        kind = "TLS error" if isinstance(err.__context__, ssl.SSLError) or "CERTIFICATE" in str(err).upper() else "connection error"
        return result(ok=False, error=f"{kind}: {err}"[:500])
    except (httpx.HTTPError, OSError, ValueError, UnicodeError) as err:  # ValueError/UnicodeError: a header that cannot be sent
        if time.monotonic() >= due:
            return timeout()
        return result(ok=False, error=f"request failed: {type(err).__name__}: {err}"[:500])
    finally:
        backend.disarm()
    status = response.status_code
    text = bytes(kept[: KEPT_RESPONSE_CHARS * 4]).decode("utf-8", "replace")[:KEPT_RESPONSE_CHARS] or None
    ok = 200 <= status < 300
    return result(ok=ok, status_code=status, response_body=text, error=None if ok else f"HTTP {status}",
                  retry_after=response.headers.get("retry-after"))


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that uses our network backend (httpx takes none itself; its
    pool, httpcore, does). One connection, no retries."""

    def __init__(self, backend: httpcore.NetworkBackend):
        super().__init__(verify=_tls_context(), retries=0)
        self._pool = httpcore.ConnectionPool(ssl_context=_tls_context(), max_connections=1, retries=0, network_backend=backend)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation gets at most the time left until the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, due: float):
        self._inner, self._due = inner, due

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._due - time.monotonic()
        if left <= 0:
            raise error("deadline reached")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._due)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Connects to the guard's address (whatever host the URL names) and arms a watchdog that shuts the socket
    down at the deadline."""

    def __init__(self, address: str, due: float):
        self._address, self._due = address, due
        self._inner = httpcore.SyncBackend()
        self._watchdog: threading.Timer | None = None

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable | None = None) -> httpcore.NetworkStream:
        left = self._due - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("deadline reached")
        stream = self._inner.connect_tcp(self._address, port, min(timeout or left, left), local_address, socket_options)
        sock = stream.get_extra_info("socket")
        self._watchdog = threading.Timer(max(self._due - time.monotonic(), 0.0), _shutdown, args=(sock,))
        self._watchdog.daemon = True
        self._watchdog.start()
        return _DeadlineStream(stream, self._due)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv/send on it, unlike close()
    except OSError:
        pass
