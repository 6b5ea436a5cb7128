"""The one outbound HTTP client (httpx) of webhooks and log streams.

One wall-clock deadline covers the whole exchange: name resolution (on a resolver thread the caller stops
waiting for), connect, TLS, sending the request, the response headers and the (bounded) body. httpx's own
timeouts are per operation, so a receiver dripping one byte a second would never trip them; the exchange
therefore runs as one coroutine under `asyncio.wait_for`, which cancels it (and closes the socket) at the
deadline. The connection goes to the address the guard approved, with the URL's host as Host header and
TLS server name (certificate checked for that name); redirects are never followed."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

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
    try:
        return asyncio.run(_post_within(url, headers, body, deadline, started))
    except Exception as err:  # noqa: BLE001 - a destination's problem is that destination's failed attempt
        return Result(ok=False, latency_ms=_ms(started), error=f"request failed: {type(err).__name__}: {err}"[:500])


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _post_within(url: str, headers: dict[str, str], body: bytes, deadline: float, started: float) -> Result:
    try:
        return await asyncio.wait_for(_post(url, headers, body, deadline, started), timeout=max(deadline, 0.001))
    except (asyncio.TimeoutError, guard.ResolveTimeout, httpx.TimeoutException):
        return Result(ok=False, latency_ms=_ms(started), error=f"timeout after {deadline:g} s", timed_out=True)


async def _post(url: str, headers: dict[str, str], body: bytes, deadline: float, started: float) -> Result:
    try:
        parts = guard.parse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        remaining = deadline - (time.monotonic() - started)
        address = guard.resolve(parts.hostname or "", port, remaining)  # bounded by the same deadline
    except guard.RefusedTarget as err:
        return Result(ok=False, latency_ms=_ms(started), error=f"refused: {err}")
    host = f"[{address}]" if ":" in address else address
    target = f"{parts.scheme}://{host}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    default_port = port == (443 if parts.scheme == "https" else 80)
    wire_headers = {**headers, "host": parts.hostname if default_port else f"{parts.hostname}:{port}", "user-agent": USER_AGENT}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    remaining = max(deadline - (time.monotonic() - started), 0.001)
    try:
        async with httpx.AsyncClient(verify=_tls_context(), follow_redirects=False, trust_env=False,
                                     timeout=httpx.Timeout(remaining)) as client:
            request = client.build_request("POST", target, headers=wire_headers, content=body, extensions=extensions)
            response = await client.send(request, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except httpx.ConnectError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in str(err).upper() or "SSL" in str(err).upper():
            return Result(ok=False, latency_ms=_ms(started), error=f"TLS error: {err}"[:500])
        return Result(ok=False, latency_ms=_ms(started), error=f"connection error: {err}"[:500])
    except httpx.TimeoutException:
        raise
    except (httpx.HTTPError, OSError) as err:
        return Result(ok=False, latency_ms=_ms(started), error=f"connection error: {type(err).__name__}: {err}"[:500])
    status = response.status_code
    text = bytes(kept[: KEPT_RESPONSE_CHARS * 4]).decode("utf-8", "replace")[:KEPT_RESPONSE_CHARS] or None
    ok = 200 <= status < 300
    return Result(ok=ok, latency_ms=_ms(started), status_code=status, response_body=text,
                  error=None if ok else f"HTTP {status}", retry_after=response.headers.get("retry-after"))
