"""Bearer JWTs verified with pyjwt: HS256 with a shared secret or RS256/ES256 from a JWKS; `none` never."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import jwt

from maip_events.settings import get_settings

HMAC_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256"]


class InvalidToken(Exception):
    pass


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


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
            key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
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
