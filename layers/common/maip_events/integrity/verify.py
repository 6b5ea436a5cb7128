"""Verifying MAIP Events integrity evidence offline: leaf hashes, RFC 9162 inclusion and consistency proofs,
ES256 checkpoint signatures, and whole exports (`format=jsonl&proofs=true`) streamed line by line.

Pure: no AWS, no network. Written from the RFCs and the export format, independently of the prover, so a
bug in one is not silently mirrored in the other.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from maip_events.ids import parse_time

HASH_SIZE = 32
# The list item fields a leaf commits to, besides the tenant (taken from the checkpoint, never from the line).
LEAF_FIELDS = ("event_id", "event_type", "agent_id", "resource_id", "severity", "payload", "timestamp")
CHECKPOINT_BODY_FIELDS = ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")

# Failure kinds, as the CLI prints them.
MODIFIED = "modified"
MISSING = "missing"
INSERTED = "inserted"
REORDERED = "reordered"
BAD_SIGNATURE = "bad signature"
TRUNCATED = "truncated"
WINDOW_EDGE = "window edge violated"


_PLAIN_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- hashes -------------------------------------------------------------------------------------------------

def leaf_bytes(tenant_id: str, item: dict, plain: bool = False) -> bytes:
    """RFC 8785 bytes of the leaf object: the tenant plus the list item fields (KeyError if one is absent).

    `plain=True` promises the values hold no integer beyond ±2^53, no float that Python and ECMAScript print
    differently (exponents, integral floats) and no key outside the Basic Multilingual Plane (what
    `_LineReader` checks while parsing). For such values RFC 8785 is exactly
    sorted-keys, no-whitespace, UTF-8 JSON with Python's escapes (the same short escapes and lowercase
    \\u00xx), which the C encoder writes several times faster than the `rfc8785` package."""
    leaf = {name: item[name] for name in LEAF_FIELDS}
    leaf["tenant_id"] = tenant_id
    if plain:
        return _PLAIN_JSON.encode(leaf).encode()
    try:
        return rfc8785.dumps(leaf)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_doubles(leaf))


def _doubles(value: Any) -> Any:
    """RFC 8785 §3.2.2.3 serialises every number as an IEEE 754 double; the `rfc8785` package refuses integers
    beyond 2^53 instead of rounding them, so they are rounded here first."""
    if isinstance(value, dict):
        return {k: _doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_doubles(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:  # the package's safe range
        return float(value)
    return value


def leaf_hash(tenant_id: str, item: dict, plain: bool = False) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_bytes(tenant_id, item, plain)).digest()


_FOUR_BYTE_UTF8 = re.compile(rb"[\xf0-\xf4]")  # lead bytes of characters beyond U+FFFF
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class _LineReader:
    """json.loads that also tells whether the line is `plain` (see leaf_bytes): floats and long integers are
    checked by the parser's hooks; non-BMP characters by their UTF-8 lead bytes or escaped surrogates."""

    def __init__(self) -> None:
        self.plain = True
        self.decoder = json.JSONDecoder(parse_float=self._float, parse_int=self._int)

    def _float(self, text: str) -> float:
        value = float(text)
        shortest = repr(value)  # what the encoder writes; RFC 8785 (ECMAScript) agrees unless an exponent or ".0"
        if "e" in shortest or shortest.endswith(".0"):
            self.plain = False
        return value

    def _int(self, text: str) -> int:
        if len(text) > 15:
            self.plain = False
        return int(text)

    def read(self, raw: bytes) -> Any:
        self.plain = (raw.isascii() or not _FOUR_BYTE_UTF8.search(raw)) and not _ESCAPED_SURROGATE.search(raw)
        return self.decoder.decode(raw.decode("utf-8"))


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def b64decode_hash(text: Any) -> bytes:
    """A standard-base64 SHA-256 value; ValueError unless it decodes to exactly 32 bytes."""
    if not isinstance(text, str):
        raise ValueError("a hash must be a base64 string")
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError("a hash is not valid base64") from None
    if len(raw) != HASH_SIZE:
        raise ValueError(f"a hash must be {HASH_SIZE} bytes, not {len(raw)}")
    return raw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- RFC 9162 §2.1.3.2: inclusion ---------------------------------------------------------------------------

def root_from_inclusion_proof(index: int, tree_size: int, leaf: bytes, audit_path: list[bytes]) -> bytes | None:
    """The root the audit path leads to from `leaf` at `index`, or None if the path cannot belong to that
    position in a tree of `tree_size` leaves (wrong length, index out of range)."""
    if not 0 <= index < tree_size or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, tree_size - 1, leaf
    for p in audit_path:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:  # on the right edge: climb over levels that have no right sibling
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, tree_size: int, leaf: bytes, audit_path: list[bytes], root: bytes) -> bool:
    return root_from_inclusion_proof(index, tree_size, leaf, audit_path) == root


# --- RFC 9162 §2.1.4.2: consistency -------------------------------------------------------------------------

def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    """True if the tree of `second` leaves with `second_root` extends the tree of `first` leaves with
    `first_root` (RFC 6962 §2.1.2 SUBPROOF). Equal sizes need equal roots and an empty proof; every tree
    extends the empty one."""
    if first < 0 or second < first or any(len(c) != HASH_SIZE for c in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# --- checkpoints --------------------------------------------------------------------------------------------

def checkpoint_body(checkpoint: dict) -> dict:
    missing = [name for name in CHECKPOINT_BODY_FIELDS if name not in checkpoint]
    if missing:
        raise ValueError(f"the checkpoint lacks {', '.join(missing)}")
    return {name: checkpoint[name] for name in CHECKPOINT_BODY_FIELDS}


def checkpoint_body_bytes(checkpoint: dict) -> bytes:
    """What is signed: RFC 8785 bytes of the six body fields (not `signature`, not `key_id`)."""
    return rfc8785.dumps(checkpoint_body(checkpoint))


def checkpoint_digest(checkpoint: dict) -> str:
    """The value the next checkpoint's `previous` must carry: base64 SHA-256 of this one's canonical body."""
    return b64(hashlib.sha256(checkpoint_body_bytes(checkpoint)).digest())


def public_key_from_jwk(jwk: dict) -> ec.EllipticCurvePublicKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("the public key must be a JWK with kty EC and crv P-256")
    if jwk.get("alg", "ES256") != "ES256":
        raise ValueError(f"the public key's alg is {jwk.get('alg')}, not ES256")

    def coordinate(name: str) -> int:
        text = jwk.get(name)
        if not isinstance(text, str):
            raise ValueError(f"the JWK lacks {name}")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except binascii.Error:
            raise ValueError(f"the JWK's {name} is not base64url") from None
        if len(raw) != 32:
            raise ValueError(f"the JWK's {name} must be 32 bytes")
        return int.from_bytes(raw, "big")

    try:
        return ec.EllipticCurvePublicNumbers(coordinate("x"), coordinate("y"), ec.SECP256R1()).public_key()
    except ValueError as err:
        raise ValueError(f"the JWK is not a P-256 point: {err}") from None


def checkpoint_signature_problem(checkpoint: dict, jwk: dict) -> str | None:
    """None if `checkpoint` carries a valid ES256 signature by `jwk` (whose kid must be its key_id), else why not."""
    if not isinstance(checkpoint, dict):
        return "the checkpoint is not an object"
    try:
        key = public_key_from_jwk(jwk)
        body = checkpoint_body_bytes(checkpoint)
    except ValueError as err:
        return str(err)
    if jwk.get("kid") != checkpoint.get("key_id"):
        return f"the checkpoint is signed by kid {checkpoint.get('key_id')!r}, the public key is kid {jwk.get('kid')!r}"
    try:
        raw = base64.b64decode(checkpoint.get("signature") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        return "the signature is not base64"
    if len(raw) != 64:
        return f"the signature must be 64 bytes (raw r||s), not {len(raw)}"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return f"the checkpoint's signature does not verify with kid {jwk.get('kid')!r}"
    return None


# --- exports ------------------------------------------------------------------------------------------------

@dataclass
class Failure:
    line: int  # 1-based line of the export
    kind: str
    message: str


@dataclass
class ExportVerification:
    ok: bool = False
    events: int = 0  # leaf lines with an event (expired placeholders not counted)
    expired: int = 0  # placeholders of events expired by retention, their leaves proven in the log
    lines: int = 0
    first_index: int | None = None
    last_index: int | None = None
    tree_size: int | None = None
    tenant_id: str | None = None
    key_id: str | None = None
    key_source: str | None = None
    window: dict = field(default_factory=dict)
    checkpoint: dict | None = None
    notes: list[str] = field(default_factory=list)
    failure: Failure | None = None
    seconds: float = 0.0  # wall-clock time of the verification
    cpu_seconds: float = 0.0  # CPU time of this process (a fairer throughput figure on a busy machine)

    @property
    def events_per_second(self) -> float:
        return (self.events + self.expired) / self.seconds if self.seconds else 0.0

    @property
    def events_per_cpu_second(self) -> float:
        return (self.events + self.expired) / self.cpu_seconds if self.cpu_seconds else 0.0

    def summary(self) -> str:
        if self.failure:
            return f"FAILED: line {self.failure.line}: {self.failure.kind}: {self.failure.message}"
        # The window is part of what was proven (its edges): a reader must see it matches what was asked for.
        if self.first_index is None:
            span = f"no leaves in window {_window(self.window)}, tree {self.tree_size}"
        else:
            lo, hi = sorted((self.first_index, self.last_index))
            span = f"leaves {lo}..{hi} of tree {self.tree_size}, window {_window(self.window)}"
        text = (f"OK: {self.events} events, {span}, checkpoint signed by kid {self.key_id} "
                f"({self.key_source}), {self.expired} expired by retention")
        return text + "".join(f"; {note}" for note in self.notes)

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["summary"] = self.summary()
        return doc


class _Failed(Exception):
    def __init__(self, line: int, kind: str, message: str):
        super().__init__(message)
        self.failure = Failure(line, kind, message)


def _last_line(path: Path) -> tuple[int, bytes]:
    """(byte offset, content) of the last non-blank line, read from the end: the trailer is needed first."""
    with path.open("rb") as f:
        f.seek(0, 2)
        end = f.tell()
        chunk, tail = 65536, b""
        position = end
        while position > 0:
            step = min(chunk, position)
            position -= step
            f.seek(position)
            tail = f.read(step) + tail
            stripped = tail.rstrip(b"\r\n")
            cut = stripped.rfind(b"\n")
            if cut >= 0:
                return position + cut + 1, stripped[cut + 1:]
        stripped = tail.rstrip(b"\r\n")
        return 0, stripped


def _is_trailer(raw: bytes) -> dict | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("integrity"), dict):
        return doc["integrity"]
    return None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _ExportVerifier:
    def __init__(self, path: Path, public_key: dict | None, key_source: str | None):
        self.path = path
        self.given_key, self.given_key_source = public_key, key_source
        self.result = ExportVerification()
        self.proven_path: dict[int, tuple] = {}  # level -> (index, hash, audit path, offset of the rest)

    # The trailer tells what everything else is checked against.
    def read_trailer(self) -> tuple[int, int, dict]:
        """(byte offset, 1-based line, content) of the trailer, which must be the last line."""
        offset, raw = _last_line(self.path)
        line = _count_newlines(self.path, offset) + 1
        if not raw.strip():
            raise _Failed(1, TRUNCATED, "the export is empty: no integrity trailer")
        trailer = _is_trailer(raw)
        if trailer is None:
            # An integrity line earlier in the file means lines were added after it; otherwise it was cut.
            with self.path.open("rb") as f:
                for number, text in enumerate(f, 1):
                    if b'"integrity"' in text and _is_trailer(text) is not None:
                        raise _Failed(number + 1, INSERTED, f"a line follows the integrity trailer (line {number})")
            raise _Failed(line + 1, TRUNCATED, f"no integrity trailer: the export ends after line {line} (was it cut short?)")
        return offset, line, trailer

    def check_trailer(self, line: int, trailer: dict) -> None:
        result = self.result
        checkpoint = trailer.get("checkpoint")
        if not isinstance(checkpoint, dict):
            raise _Failed(line, MODIFIED, "the trailer has no checkpoint")
        try:
            checkpoint_body(checkpoint)
            self.root = b64decode_hash(checkpoint["root_hash"])
        except ValueError as err:
            raise _Failed(line, MODIFIED, f"the trailer's checkpoint is malformed: {err}") from None
        self.tree_size, self.tenant_id = checkpoint["tree_size"], checkpoint["tenant_id"]
        if not _int(self.tree_size) or self.tree_size < 0 or not isinstance(self.tenant_id, str):
            raise _Failed(line, MODIFIED, "the trailer's checkpoint has no valid tree_size/tenant_id")
        window = trailer.get("window") if isinstance(trailer.get("window"), dict) else {}
        try:
            self.window_from = parse_time(window["from"]) if window.get("from") else None
            self.window_to = parse_time(window["to"]) if window.get("to") else None
        except (ValueError, TypeError):
            raise _Failed(line, MODIFIED, f"the trailer's window is not ISO 8601: {window}") from None
        first, last = trailer.get("first_index"), trailer.get("last_index")
        if (first is None) != (last is None) or not all(v is None or (_int(v) and 0 <= v < self.tree_size) for v in (first, last)):
            raise _Failed(line, MODIFIED, f"the trailer's first_index/last_index ({first}, {last}) do not fit tree {self.tree_size}")
        result.tree_size, result.tenant_id, result.window, result.checkpoint = self.tree_size, self.tenant_id, window, checkpoint
        result.first_index, result.last_index = first, last
        result.key_id = checkpoint.get("key_id")
        # The window's leaves lo..hi (the product writes first_index <= last_index; either way round is read).
        self.lo, self.hi = (None, None) if first is None else sorted((first, last))

    def choose_order(self, trailer_offset: int) -> None:
        """desc (the default) or asc: the export does not say, its first line does. A first line nearer the
        high end of the window means desc, so a deleted first line still reads as `missing`, not `reordered`."""
        first_line_index = None
        with self.path.open("rb") as f:
            for _, raw in _numbered(f, trailer_offset):
                try:
                    first_line_index = json.loads(raw).get("leaf_index")
                except (ValueError, AttributeError):
                    pass
                break
        lo, hi = self.lo, self.hi
        ascending = lo is not None and _int(first_line_index) and first_line_index - lo < hi - first_line_index
        self.step, self.order = (1, "asc") if ascending else (-1, "desc")
        self.start, self.end = (lo, hi) if ascending else (hi, lo)

    def check_signature(self, line: int, trailer: dict) -> None:
        checkpoint = trailer["checkpoint"]
        if self.given_key is not None:
            jwk, source = self.given_key, self.given_key_source or "the given public key"
        else:
            jwk, source = trailer.get("public_key"), "the public key in the export's trailer"
            if not isinstance(jwk, dict):
                raise _Failed(line, BAD_SIGNATURE, "the trailer has no public_key and none was given")
        problem = checkpoint_signature_problem(checkpoint, jwk)
        if problem:
            raise _Failed(line, BAD_SIGNATURE, problem)
        self.result.key_source = source

    # One leaf line (or neighbour): its hash, proof and position.
    def leaf_of(self, line: int, item: Any, what: str, plain: bool = False) -> tuple[int, bytes, datetime | None]:
        if not isinstance(item, dict):
            raise _Failed(line, MODIFIED, f"{what} is not a JSON object")
        index, proof = item.get("leaf_index"), item.get("proof")
        if not _int(index):
            raise _Failed(line, MODIFIED, f"{what} has no leaf_index")
        if not isinstance(proof, dict) or not isinstance(proof.get("audit_path"), list):
            raise _Failed(line, MODIFIED, f"{what} (leaf {index}) has no proof")
        if proof.get("tree_size") != self.tree_size:
            raise _Failed(line, MODIFIED, f"{what} (leaf {index}) has a proof for tree size {proof.get('tree_size')}, "
                                          f"the checkpoint's is {self.tree_size}")
        try:
            if item.get("expired") is True:
                leaf, moment = b64decode_hash(item.get("leaf_hash")), None
            else:
                leaf = leaf_hash(self.tenant_id, item, plain)
                moment = parse_time(item["timestamp"])
            proven = self.prove(index, leaf, proof["audit_path"])
        except KeyError as err:
            raise _Failed(line, MODIFIED, f"{what} (leaf {index}) lacks {err.args[0]}") from None
        except (ValueError, TypeError) as err:
            raise _Failed(line, MODIFIED, f"{what} (leaf {index}): {err}") from None
        if not proven:
            raise _Failed(line, MODIFIED, f"{what} (leaf {index}{_event(item)}) does not match the checkpoint root")
        return index, leaf, moment

    def prove(self, index: int, leaf: bytes, audit_path: list) -> bool:
        """verify_inclusion (RFC 9162 §2.1.3.2) against the checkpoint, sharing work between the lines of an
        export: consecutive leaves share most of their path to the root. The nodes of the last proven path are
        kept by level; when a walk reaches one of them (same level and index) with the same hash, and the rest
        of its audit path equals the rest of the proven one, it is proven too. Otherwise the walk goes on to
        the root as usual."""
        size = self.tree_size
        if not 0 <= index < size or len(leaf) != HASH_SIZE:
            return False
        known = self.proven_path
        walked: dict[int, tuple] = {}
        fn, sn, r, level = index, size - 1, leaf, 0
        for k, encoded in enumerate(audit_path):
            if sn == 0:
                return False
            p = b64decode_hash(encoded)
            if fn & 1 or fn == sn:
                r = hashlib.sha256(b"\x01" + p + r).digest()
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
                        level += 1
            else:
                r = hashlib.sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
            level += 1
            walked[level] = (fn, r, audit_path, k + 1)
            node = known.get(level)
            if node is not None and node[0] == fn:
                if node[1] != r or audit_path[k + 1:] != node[2][node[3]:]:
                    return False
                self.proven_path = {**known, **walked}
                return True
        if sn != 0 or r != self.root:
            return False
        self.proven_path = walked
        return True

    def inside(self, moment: datetime) -> bool:
        return (self.window_from is None or moment >= self.window_from) and (self.window_to is None or moment <= self.window_to)

    def stream(self, trailer_offset: int) -> None:
        """Every leaf line, in file order: position (contiguity), hash, proof, time."""
        result, expected, reader = self.result, self.start, _LineReader()
        self.last_seen: int | None = None
        with self.path.open("rb") as f:
            lines = _numbered(f, trailer_offset)
            for number, raw in lines:
                if not raw.strip():
                    raise _Failed(number, INSERTED, "an empty line")
                try:
                    item = reader.read(raw)
                except ValueError:
                    raise _Failed(number, MODIFIED, "not a JSON line") from None
                if isinstance(item, dict) and "integrity" in item:
                    raise _Failed(number + 1, INSERTED, f"a line follows an integrity trailer (line {number})")
                index = item.get("leaf_index") if isinstance(item, dict) else None
                if index != expected:
                    raise self.misplaced(number, index, expected, item, lines)
                try:
                    _, _, moment = self.leaf_of(number, item, "the line", reader.plain)
                except _Failed as failed:
                    raise self.classify_bad_proof(failed, number, item, lines) from None
                if moment is None:
                    result.expired += 1
                else:
                    result.events += 1
                    if not self.inside(moment):
                        raise _Failed(number, WINDOW_EDGE, f"leaf {index}{_event(item)} has timestamp {item['timestamp']}, "
                                                           f"outside the window {_window(result.window)}")
                self.last_seen = index
                expected = None if index == self.end else index + self.step  # None: the window is complete
        self.complete = expected is None

    def misplaced(self, number: int, index: Any, expected: int | None, item: Any, lines: Iterator) -> _Failed:
        """Name what a line with the wrong leaf index means, looking at the rest of the file."""
        if not _int(index):
            return _Failed(number, MODIFIED, "the line has no leaf_index")
        if self.lo is None:
            return _Failed(number, INSERTED, f"leaf {index}{_event(item)} in an export whose trailer says the window is empty")
        if expected is None:
            return _Failed(number, INSERTED, f"leaf {index}{_event(item)} follows the window's last leaf {self.end} ({self.order})")
        lo, hi = self.lo, self.hi
        if not lo <= index <= hi:
            return _Failed(number, INSERTED, f"leaf {index}{_event(item)} is outside the export's leaves {lo}..{hi}")
        seen = (index - expected) * self.step < 0  # behind the cursor: that leaf was already listed
        if seen:
            return _Failed(number, INSERTED, f"leaf {index}{_event(item)} appears a second time")
        later = {i for _, i in _indices(lines)}
        if index in later:
            return _Failed(number, INSERTED, f"leaf {index}{_event(item)} appears again later in the export")
        if expected in later:
            return _Failed(number, REORDERED, f"leaf {index} comes before leaf {expected} (the {self.order} order is broken)")
        gap = abs(index - expected)
        span = f"leaf {expected}" if gap == 1 else f"leaves {expected}..{index - self.step}" if self.step == 1 \
            else f"leaves {index - self.step}..{expected}"
        where = "at the start of the export" if self.last_seen is None else f"between line {number - 1} and line {number}"
        return _Failed(number, MISSING, f"{span} missing {where} (line {number} is leaf {index})")

    def classify_bad_proof(self, failed: _Failed, number: int, item: Any, lines: Iterator) -> _Failed:
        """A line whose proof fails is `modified`, unless the real leaf with that index follows it (an
        inserted line that borrowed the index) or its event is listed elsewhere."""
        if failed.failure.kind != MODIFIED:
            return failed
        index = item.get("leaf_index")
        event_id = item.get("event_id")
        for later_number, later_index, later_event in _indices(lines, with_event=True):
            if later_index == index and later_number == number + 1:
                return _Failed(number, INSERTED, f"line {number} claims leaf {index}, which line {later_number} proves; "
                                                 f"line {number} does not match the checkpoint root")
            if event_id is not None and later_event == event_id:
                return _Failed(number, INSERTED, f"event {event_id} is listed again at line {later_number} under leaf "
                                                 f"{later_index}; line {number}'s proof for leaf {index} does not verify")
        return failed

    def check_edges(self, trailer_line: int, trailer: dict) -> None:
        """`before`/`after`: the leaves just outside the window, proven, and outside it in time."""
        result = self.result
        if not self.complete:
            ending = "has no leaf lines" if self.last_seen is None else f"ends at leaf {self.last_seen}"
            raise _Failed(trailer_line, MISSING, f"the window's last leaf ({self.order}) is {self.end}, the export {ending}")
        lo, hi = self.lo, self.hi
        before, after = trailer.get("before"), trailer.get("after")
        before_index = after_index = None
        if before is not None:
            before_index, _, moment = self.leaf_of(trailer_line, before, "the trailer's `before` neighbour")
            self.outside(trailer_line, "before", before, moment)
        if after is not None:
            after_index, _, moment = self.leaf_of(trailer_line, after, "the trailer's `after` neighbour")
            self.outside(trailer_line, "after", after, moment)
        if lo is None:  # empty window: the two neighbours must touch each other
            want_before = None if after_index in (None, 0) else after_index - 1
            if after is None and before is None and self.tree_size:
                raise _Failed(trailer_line, WINDOW_EDGE, "an empty window with neither `before` nor `after` in a non-empty tree")
            if before is None and after_index not in (0, None):
                raise _Failed(trailer_line, WINDOW_EDGE, f"`before` is null but `after` is leaf {after_index}, not leaf 0")
            if after is None and before_index is not None and before_index != self.tree_size - 1:
                raise _Failed(trailer_line, WINDOW_EDGE, f"`after` is null but `before` is leaf {before_index}, "
                                                         f"not the last leaf {self.tree_size - 1}")
            if before is not None and after is not None and before_index != want_before:
                raise _Failed(trailer_line, WINDOW_EDGE, f"`before` (leaf {before_index}) and `after` (leaf {after_index}) "
                                                         "are not adjacent: leaves between them are unaccounted for")
            return
        if lo == 0:
            if before is not None:
                raise _Failed(trailer_line, WINDOW_EDGE, "the window starts at leaf 0, yet `before` is not null")
        elif before is None:
            raise _Failed(trailer_line, WINDOW_EDGE, f"`before` is null but the window starts at leaf {lo}, not leaf 0")
        elif before_index != lo - 1:
            raise _Failed(trailer_line, WINDOW_EDGE, f"`before` is leaf {before_index}, not leaf {lo - 1} next to the window")
        if hi == self.tree_size - 1:
            if after is not None:
                raise _Failed(trailer_line, WINDOW_EDGE, "the window ends at the tree's last leaf, yet `after` is not null")
        elif after is None:
            raise _Failed(trailer_line, WINDOW_EDGE, f"`after` is null but the window ends at leaf {hi}, "
                                                     f"not the tree's last leaf {self.tree_size - 1}")
        elif after_index != hi + 1:
            raise _Failed(trailer_line, WINDOW_EDGE, f"`after` is leaf {after_index}, not leaf {hi + 1} next to the window")

    def outside(self, line: int, side: str, item: dict, moment: datetime | None) -> None:
        if moment is None:
            self.result.notes.append(f"the `{side}` neighbour expired by retention (its time cannot be checked)")
            return
        bound = self.window_from if side == "before" else self.window_to
        if bound is None:
            raise _Failed(line, WINDOW_EDGE, f"the window is open on the {'start' if side == 'before' else 'end'}, "
                                             f"yet `{side}` names leaf {item['leaf_index']}")
        if (moment >= bound) if side == "before" else (moment <= bound):
            raise _Failed(line, WINDOW_EDGE, f"`{side}` (leaf {item['leaf_index']}{_event(item)}, {item['timestamp']}) "
                                             f"is inside the window {_window(self.result.window)}: it belongs in the export")

    def run(self) -> ExportVerification:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            offset, trailer_line, trailer = self.read_trailer()
            self.result.lines = trailer_line
            self.check_trailer(trailer_line, trailer)
            self.choose_order(offset)
            self.stream(offset)
            self.check_edges(trailer_line, trailer)
            self.check_signature(trailer_line, trailer)
            self.result.ok = True
        except _Failed as failed:
            self.result.failure = failed.failure
        self.result.seconds = time.perf_counter() - started
        self.result.cpu_seconds = time.process_time() - cpu
        return self.result


def _count_newlines(path: Path, stop: int) -> int:
    count, position = 0, 0
    with path.open("rb") as f:
        while position < stop:
            block = f.read(min(1 << 20, stop - position))
            if not block:
                break
            count += block.count(b"\n")
            position += len(block)
    return count


def _numbered(f, stop: int) -> Iterator[tuple[int, bytes]]:
    """Lines before byte offset `stop` (the trailer), numbered from 1."""
    position = 0
    for number, raw in enumerate(f, 1):
        if position >= stop:
            return
        position += len(raw)
        yield number, raw


def _indices(lines: Iterator[tuple[int, bytes]], with_event: bool = False) -> Iterator[tuple]:
    for number, raw in lines:
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            if with_event:
                yield number, item.get("leaf_index"), item.get("event_id")
            else:
                yield number, item.get("leaf_index")


def _event(item: Any) -> str:
    return f", {item['event_id']}" if isinstance(item, dict) and isinstance(item.get("event_id"), str) else ""


def _window(window: dict) -> str:
    return f"[{window.get('from') or '-inf'}, {window.get('to') or '+inf'}]"


def verify_export(path: str | Path, public_key: dict | None = None, key_source: str | None = None) -> ExportVerification:
    """Verify an export with proofs. `public_key` (a JWK) overrides the trailer's key; `key_source` says where
    it came from, for the summary. Never raises on bad evidence: the result names the first bad line."""
    return _ExportVerifier(Path(path), public_key, key_source).run()
