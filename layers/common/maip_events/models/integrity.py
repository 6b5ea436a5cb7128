"""Shapes of the integrity API (issue 14): checkpoints, proofs, the public key."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field


class Checkpoint(BaseModel):
    """A signed checkpoint: `signature` (ES256, raw r||s, base64) covers the RFC 8785 bytes of the first six fields."""

    tenant_id: str
    tree_size: int = Field(description="Leaves in the tenant's log")
    root_hash: str = Field(description="RFC 6962 root hash, base64")
    last_event_id: str = Field(description="Event id of the last leaf")
    sealed_at: str = Field(description="UTC ISO 8601 with milliseconds")
    previous: Optional[str] = Field(description="Base64 SHA-256 of the previous checkpoint's canonical body (null first)")
    signature: str = Field(description="ES256 signature, raw r||s (64 bytes), base64")
    key_id: str = Field(description="`kid` of the public key")


class CheckpointList(BaseModel):
    items: list[Checkpoint] = Field(description="Oldest first, at most 1,000")


class PublicKey(BaseModel):
    """The checkpoint signing key as a JWK; `kid` is its RFC 7638 thumbprint."""

    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str
    alg: Literal["ES256"]
    use: Literal["sig"]


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    audit_path: list[str] = Field(description="RFC 6962 PATH, base64 hashes, deepest first")
    checkpoint: Checkpoint


class ConsistencyProof(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="RFC 6962 SUBPROOF, base64 hashes")
    first_checkpoint: Checkpoint
    second_checkpoint: Checkpoint
