"""Checkpoint signatures: ES256 (ECDSA P-256 over SHA-256) by an AWS KMS asymmetric key (ECC_NIST_P256,
SIGN_VERIFY). KMS returns DER; checkpoints carry the raw r||s (64 bytes, base64), as JWS does. The public key is
served as a JWK whose `kid` is its RFC 7638 thumbprint, so a verifier can check the kid from the key itself."""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from maip_events import aws
from maip_events.integrity import config
from maip_events.settings import get_settings


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _kms() -> Any:
    return aws.client("kms")


def sign(message: bytes) -> tuple[bytes, str]:
    """(raw r||s signature, key id) of `message` (KMS hashes it with SHA-256)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    response = _kms().sign(KeyId=config.signing_key(), Message=message, MessageType="RAW",
                           SigningAlgorithm="ECDSA_SHA_256")
    r, s = decode_dss_signature(response["Signature"])
    return r.to_bytes(32, "big") + s.to_bytes(32, "big"), public_jwk()["kid"]


@lru_cache(maxsize=4)
def _jwk(key: str, endpoint: str | None) -> dict[str, str]:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    public = load_der_public_key(_kms().get_public_key(KeyId=key)["PublicKey"])
    numbers = public.public_numbers()  # type: ignore[union-attr]
    x, y = _b64url(numbers.x.to_bytes(32, "big")), _b64url(numbers.y.to_bytes(32, "big"))
    members = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True)
    kid = _b64url(hashlib.sha256(members.encode()).digest())  # RFC 7638 thumbprint
    return {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}


def public_jwk() -> dict[str, str]:
    """The signing key's public half as a JWK (one KMS GetPublicKey per process and key)."""
    return dict(_jwk(config.signing_key(), get_settings().dynamodb_endpoint))
