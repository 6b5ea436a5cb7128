"""Who is calling: tenant header, API key or Bearer JWT, scopes. 401 = no valid credential, 403 = not allowed."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from maip_events.catalog import ALL_SCOPES
from maip_events.errors import Forbidden, InvalidRequest, Unauthorized

TENANT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    scopes: frozenset[str]
    subject: str  # key id or JWT `sub`, for logs; never a secret

    def require(self, *scopes: str) -> "Principal":
        """Checks the caller holds every one of `scopes` (`*` holds all); 403 names the missing ones."""
        if ALL_SCOPES in self.scopes:
            return self
        missing = [scope for scope in scopes if scope not in self.scopes]
        if missing:
            raise Forbidden(f"The credential lacks the {', '.join(f'`{s}`' for s in missing)} scope{'s' if len(missing) > 1 else ''}.",
                            details=[{"required_scope": scope} for scope in missing])
        return self


def validate_tenant_id(tenant_id: str | None) -> str:
    if tenant_id is None or not TENANT_ID.fullmatch(tenant_id):
        raise InvalidRequest(
            "X-Tenant-ID is required: 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'.",
            details=[{"field": "X-Tenant-ID", "issue": "missing or malformed"}],
        )
    return tenant_id


def authenticate(headers: Mapping[str, str]) -> Principal:
    """The caller, from lower-cased request headers. Raises InvalidRequest, Unauthorized or Forbidden."""
    tenant_id = validate_tenant_id(headers.get("x-tenant-id"))
    api_key = headers.get("x-api-key")
    authorization = headers.get("authorization", "")
    if api_key:
        from maip_events.auth.keys import lookup_api_key

        record = lookup_api_key(api_key)
        if record is None:
            raise Unauthorized("The API key is unknown or revoked.")
        principal = Principal(record["tenant_id"], frozenset(record["scopes"]), record["key_id"])
    elif authorization[:7].lower() == "bearer " and authorization[7:].strip():
        from maip_events.auth import jwt as jwt_auth

        try:
            claims = jwt_auth.verify(authorization[7:].strip())
        except jwt_auth.InvalidToken:
            raise Unauthorized("The Bearer token is invalid or expired.") from None
        claimed_tenant = claims.get("tenant_id")
        if not isinstance(claimed_tenant, str) or not claimed_tenant:
            raise Unauthorized("The Bearer token has no tenant_id claim.")
        principal = Principal(claimed_tenant, frozenset(jwt_auth.scopes_of(claims)), str(claims.get("sub", "jwt")))
    else:
        raise Unauthorized("Send an X-API-Key header or an Authorization: Bearer token.")
    if principal.tenant_id != tenant_id:
        raise Forbidden("The credential is not valid for this tenant.")
    return principal
