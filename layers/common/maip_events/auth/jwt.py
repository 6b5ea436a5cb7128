"""Bearer JWTs verified with pyjwt: HS256 with a shared secret or RS256/ES256 from a JWKS; `none` never.

JWKS keys are refreshed on a schedule (MAIP_JWT_JWKS_REFRESH, 300 s) and when a token names an unknown `kid`
(at most once per MAIP_JWT_JWKS_COOLDOWN, 30 s, so a flood of random kids cannot hammer the JWKS URL): a key
removed from the JWKS stops verifying within the refresh period. While the JWKS URL fails, the last keys
fetched are kept for at most MAX_STALE seconds, then every JWKS token is refused until a fetch succeeds.
With a JWKS configured an audience is required (an identity provider signs tokens for many applications
with the same keys): without MAIP_JWT_AUDIENCE every JWKS token is refused (401) and an error is logged."""
from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any, Callable

import jwt

from maip_events.settings import get_settings

logger = logging.getLogger(__name__)
MAX_STALE = 3600.0

HMAC_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256"]


class InvalidToken(Exception):
    pass


class JwksCache:
    """The signing keys of one JWKS URL by `kid`, refreshed on a bounded schedule and on unknown kids."""

    def __init__(self, url: str, refresh: float, cooldown: float, clock: Callable[[], float] = time.monotonic):
        self.url, self.refresh, self.cooldown, self.clock = url, refresh, cooldown, clock
        self.fetches = 0  # JWKS requests made (tests and logs)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> jwt.PyJWK:
        now = self.clock()
        if self._due(now, kid):
            with self._lock:  # one fetch at a time; waiters re-check instead of fetching again
                if self._due(now, kid):
                    self._fetch(now)
        if self._fetched_at is None or now - self._fetched_at > max(MAX_STALE, self.refresh):
            raise InvalidToken("no current JWKS")
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        return key

    def _due(self, now: float, kid: str | None) -> bool:
        if self._attempted_at is not None and now - self._attempted_at < self.cooldown:
            return False
        return self._fetched_at is None or now - self._fetched_at >= self.refresh or kid not in self._keys

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            document = jwt.PyJWKClient(self.url, cache_jwk_set=False, cache_keys=False, timeout=5).fetch_data()
            entries = document["keys"]
            if not isinstance(entries, list):
                raise TypeError("keys is not a list")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            logger.error("JWKS refresh from %s failed (%s); keeping the keys fetched before", self.url, type(exc).__name__)
            return
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in entries:  # an empty set is valid (every key withdrawn); unusable entries are skipped
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                continue
            if key.public_key_use in (None, "sig"):
                keys[key.key_id] = key
        self._keys, self._fetched_at = keys, now


@lru_cache(maxsize=4)
def _jwks_cache(url: str, refresh: float, cooldown: float) -> JwksCache:
    return JwksCache(url, refresh, cooldown)


def verify(token: str) -> dict[str, Any]:
    """The verified claims of `token`; InvalidToken for any failure (the caller answers 401)."""
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        # The algorithm picks the key source, and each source accepts only its own algorithms,
        # so an HS256 token "signed" with a public RSA key can never be checked against that key.
        if alg in HMAC_ALGORITHMS and settings.jwt_secret:
            key: Any = settings.jwt_secret
            algorithms = HMAC_ALGORITHMS
        elif alg in JWKS_ALGORITHMS and settings.jwt_jwks_url:
            if not settings.jwt_audience:
                logger.error("MAIP_JWT_JWKS_URL is set without MAIP_JWT_AUDIENCE: JWKS-signed tokens are refused")
                raise InvalidToken("no audience configured")
            cache = _jwks_cache(settings.jwt_jwks_url, settings.jwt_jwks_refresh, settings.jwt_jwks_cooldown)
            key = cache.key(header.get("kid")).key
            algorithms = JWKS_ALGORITHMS
        else:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        return jwt.decode(
            token,
            key=key,
            algorithms=algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": ["exp"], "verify_aud": bool(settings.jwt_audience), "verify_iss": bool(settings.jwt_issuer)},
            leeway=5,
        )
    except InvalidToken:
        raise
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(type(exc).__name__) from None


def scopes_of(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope")
    scp = claims.get("scp")
    found: set[str] = set()
    if isinstance(scope, str):
        found.update(scope.split())
    if isinstance(scp, list):
        found.update(s for s in scp if isinstance(s, str))
    elif isinstance(scp, str):
        found.update(scp.split())
    return found
