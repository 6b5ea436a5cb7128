"""Integrity evidence built independently of the product: a small RFC 6962 prover written from the RFC's
recursive definitions (§2.1 MTH, §2.1.1 PATH, §2.1.2 PROOF/SUBPROOF), RFC 8785 from the `jcs` package (not
the `rfc8785` the product uses), ES256 keys from `cryptography`. Tests use it to write exports with proofs
exactly as the export format says, then tamper with them."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import jcs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# RFC 6962 test vectors (transparency-dev/merkle testonly/constants.go and proof/verify_test.go, the data
# certificate-transparency-go's merkle tests have always used): the 8 leaf inputs, the roots of the trees of
# 1..8 leaves, inclusion proofs (leaf index 0-based, tree size) and consistency proofs (size1, size2).
VECTOR_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
VECTOR_ROOTS = {size: bytes.fromhex(h) for size, h in enumerate((
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"))}
VECTOR_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
VECTOR_CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

LIST_FIELDS = ("event_id", "event_type", "agent_id", "resource_id", "severity", "payload", "timestamp")
BASE_TIME = datetime(2026, 11, 1, tzinfo=timezone.utc)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class MerkleTree:
    """RFC 6962 §2.1 over a list of leaf hashes. Complete, aligned subtrees are computed once per level (the
    same values the recursive MTH yields), everything else straight from the recursive definitions."""

    def __init__(self, leaf_hashes: list[bytes]):
        self.levels = [list(leaf_hashes)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    @staticmethod
    def hash_leaf(data: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + data).digest()

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end])."""
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return _node(self.mth(start, start + k), self.mth(start + k, end))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, size: int, start: int = 0) -> list[bytes]:
        """PATH(m, D[start:start+size]) (§2.1.1)."""
        if size == 1:
            return []
        k = _split(size)
        if m < k:
            return self.path(m, k, start) + [self.mth(start + k, start + size)]
        return self.path(m - k, size - k, start + k) + [self.mth(start, start + k)]

    def consistency(self, m: int, size: int) -> list[bytes]:
        """PROOF(m, D[0:size]) (§2.1.2)."""
        return self._subproof(m, 0, size, True)

    def _subproof(self, m: int, start: int, n: int, b: bool) -> list[bytes]:
        if m == n:
            return [] if b else [self.mth(start, start + n)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, k, b) + [self.mth(start + k, start + n)]
        return self._subproof(m - k, start + k, n - k, False) + [self.mth(start, start + k)]


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# --- signing ------------------------------------------------------------------------------------------------

@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()

        def b64url(value: int) -> str:
            return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

        return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x), "y": b64url(numbers.y),
                "kid": self.kid, "alg": "ES256", "use": "sig"}

    def sign(self, body: dict) -> str:
        der = self.private.sign(jcs.canonicalize(body), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@lru_cache(maxsize=4)
def signing_key(kid: str = "maip-integrity-test-1") -> SigningKey:
    return SigningKey(kid)


# --- a tenant log and its exports ---------------------------------------------------------------------------

def make_event(i: int, moment: datetime) -> dict:
    return {"event_id": f"maip-evt:01JTEST{i:019d}", "event_type": ("agent.registered", "session.created")[i % 2],
            "agent_id": f"agent-{i % 7}", "resource_id": None if i % 3 else f"res-{i}",
            "severity": ("info", "warn", "error")[i % 3], "payload": {"n": i, "note": "caf\u00e9 \u20ac", **({"ratio": i / 8} if i % 10 == 0 else {})},
            "timestamp": iso(moment)}


class TenantLog:
    """A tenant's events (one a second from BASE_TIME), their leaves and signed checkpoints."""

    def __init__(self, size: int, tenant_id: str = "t-acme", key: SigningKey | None = None):
        self.tenant_id, self.key = tenant_id, key or signing_key()
        self.events = [make_event(i, BASE_TIME + timedelta(seconds=i)) for i in range(size)]
        self.leaves = [MerkleTree.hash_leaf(self.leaf_bytes(e)) for e in self.events]
        self.tree = MerkleTree(self.leaves)

    def rewrite(self, index: int, **fields) -> "TenantLog":
        """History rewritten: event `index` changed, the tree rebuilt (what a forked log looks like)."""
        self.events[index] = {**self.events[index], **fields}
        self.leaves[index] = MerkleTree.hash_leaf(self.leaf_bytes(self.events[index]))
        self.tree = MerkleTree(self.leaves)
        return self

    def leaf_bytes(self, event: dict) -> bytes:
        return jcs.canonicalize({"tenant_id": self.tenant_id, **{f: event[f] for f in LIST_FIELDS}})

    def checkpoint(self, size: int, previous: dict | None = None, key: SigningKey | None = None) -> dict:
        key = key or self.key
        body = {"tenant_id": self.tenant_id, "tree_size": size, "root_hash": b64(self.tree.root(size)),
                "last_event_id": self.events[size - 1]["event_id"] if size else None,
                "sealed_at": iso(BASE_TIME + timedelta(seconds=size, milliseconds=500)),
                "previous": b64(hashlib.sha256(jcs.canonicalize(_body(previous))).digest()) if previous else None}
        return {**body, "signature": key.sign(body), "key_id": key.kid}

    def leaf_line(self, index: int, size: int, expired: bool = False) -> dict:
        proof = {"tree_size": size, "audit_path": [b64(h) for h in self.tree.path(index, size)]}
        if expired:
            return {"leaf_index": index, "expired": True, "leaf_hash": b64(self.leaves[index]), "proof": proof}
        return {**self.events[index], "leaf_index": index, "proof": proof}

    def export(self, size: int | None = None, window: tuple[str | None, str | None] = (None, None),
               order: str = "desc", expired: frozenset[int] = frozenset()) -> list[str]:
        """The lines of `GET /events/export?format=jsonl&proofs=true` over the first `size` leaves."""
        size = len(self.events) if size is None else size
        start, end = window
        inside = [i for i in range(size) if (start is None or self.events[i]["timestamp"] >= start)
                  and (end is None or self.events[i]["timestamp"] <= end)]
        indices = inside if order == "asc" else inside[::-1]
        lines = [self.leaf_line(i, size, i in expired) for i in indices]
        # The neighbours: the last leaf before the window, the first after it (for an empty window, the two
        # leaves it falls between).
        before = (inside[0] if inside else sum(1 for e in self.events[:size] if start and e["timestamp"] < start)) - 1
        after = inside[-1] + 1 if inside else before + 1
        trailer = {"integrity": {
            "checkpoint": self.checkpoint(size), "public_key": self.key.jwk(), "window": {"from": start, "to": end},
            "first_index": inside[0] if inside else None, "last_index": inside[-1] if inside else None,
            "before": self.leaf_line(before, size, before in expired) if before >= 0 else None,
            "after": self.leaf_line(after, size, after in expired) if after < size else None}}
        return [json.dumps(line, ensure_ascii=False) for line in lines] + [json.dumps(trailer, ensure_ascii=False)]


def _body(checkpoint: dict) -> dict:
    return {k: checkpoint[k] for k in ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
