"""Tamper-evident audit trail against moto: the dispatcher requests seals, the sealer appends every write shard's
events to the tenant's Merkle log and signs checkpoints with KMS; proofs, consistency and exports with proofs
verify independently (roots recomputed with the `jcs` package, signatures checked with `cryptography` on the JWK)."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone

import boto3
import jcs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from functions.export.app import lambda_handler as export_handler
from functions.integrity.app import lambda_handler as integrity_handler
from maip_events import settings
from maip_events.integrity import signing
from maip_events.integrity.seal import Sealer
from maip_events.integrity.store import IntegrityStore
from maip_events.store.tenants import TenantSettingsStore
from siem_harness import drain, make_events, stream_batch
from support import Ctx, http_event, invoke, key_headers

BASE = "/v1/observability/integrity"
# Events of a week ago: sealed (past any grace), and expired once a test drops the retention to 1 day.
WEEK_AGO = (datetime.now(timezone.utc) - timedelta(days=8)).replace(hour=7, minute=0, second=0, microsecond=0)


def dispatch_and_seal(events) -> None:
    """The events' stream batch through the dispatcher, then every queued seal request through SealFunction."""
    from functions.dispatch.app import lambda_handler as dispatch
    from functions.seal.app import lambda_handler as seal

    assert dispatch(stream_batch(events), Ctx())["batchItemFailures"] == []
    url = boto3.client("sqs", region_name="us-east-1").get_queue_url(QueueName="maip-seal-requests")["QueueUrl"]
    drain(url, seal)


def get(path: str, headers: dict | None, **query):
    return invoke(integrity_handler, "GET", path, headers=headers, query={k: str(v) for k, v in query.items()} or None)


def leaf(tenant: str, item: dict) -> bytes:
    data = jcs.canonicalize({"tenant_id": tenant, **{k: item[k] for k in (
        "event_id", "event_type", "agent_id", "resource_id", "severity", "payload", "timestamp")}})
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node(mth(leaves[:k]), mth(leaves[k:]))


def root_from_path(index: int, size: int, leaf_hash: bytes, path: list[str]) -> bytes:
    """RFC 9162 §2.1.3.2."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in (base64.b64decode(h) for h in path):
        assert sn > 0
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def consistent(first: int, second: int, root1: bytes, root2: bytes, proof: list[str]) -> bool:
    """RFC 9162 §2.1.4.2."""
    path = [base64.b64decode(h) for h in proof]
    if first & (first - 1) == 0:  # a power of two: the old root is the first node
        path = [root1] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


def signature_valid(checkpoint: dict, jwk: dict) -> bool:
    def num(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    key = ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]), ec.SECP256R1()).public_key()
    raw = base64.b64decode(checkpoint["signature"])
    body = jcs.canonicalize({k: checkpoint[k] for k in ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")})
    try:
        key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")), body,
                   ec.ECDSA(hashes.SHA256()))
        return len(raw) == 64
    except Exception:  # noqa: BLE001 - InvalidSignature
        return False


def test_a_tenant_with_four_write_shards_is_sealed_in_id_order_and_its_checkpoint_verifies(log):
    # Given tenant t1 spreading events over 4 write shards (and another tenant's events in the same stream batch)
    TenantSettingsStore().set_write_shards("t1", 4, now=datetime.now(timezone.utc) - timedelta(minutes=5))
    mine = make_events("t1", [("agent.registered", "info", f"a{i % 3}") for i in range(40)], start=WEEK_AGO, step=timedelta(milliseconds=7))
    other = make_events("t2", [("session.created", "warn", None)] * 3, start=WEEK_AGO)
    stored = log.scan(TableName="maip-events")["Items"]
    assert {i["pk"]["S"] for i in stored if i["tenant_id"]["S"] == "t1"} == {"t1#0", "t1#1", "t1#2", "t1#3"}
    headers = key_headers("t1", ["events:read"])
    # When the dispatcher sees them and the seal requests are consumed
    dispatch_and_seal(mine + other)
    # Then the latest checkpoint covers all 40 events, its root is the RFC 6962 root of their leaves in id order
    # (recomputed with jcs), and its ES256 signature verifies against the public key served without credentials
    status, checkpoint, _ = get(f"{BASE}/checkpoints/latest", headers)
    assert status == 200
    ordered = sorted(mine, key=lambda e: e.event_id)
    assert checkpoint["tree_size"] == 40 and checkpoint["last_event_id"] == ordered[-1].event_id
    assert base64.b64decode(checkpoint["root_hash"]) == mth([leaf("t1", e.list_item()) for e in ordered])
    assert checkpoint["previous"] is None and checkpoint["tenant_id"] == "t1"
    status, jwk, _ = get(f"{BASE}/public-key", None)
    assert status == 200 and jwk["kid"] == checkpoint["key_id"] and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert signature_valid(checkpoint, jwk)
    assert not signature_valid({**checkpoint, "tree_size": 41}, jwk)
    # And t2 has its own log of 3
    status, theirs, _ = get(f"{BASE}/checkpoints/latest", key_headers("t2", ["events:read"]))
    assert theirs["tree_size"] == 3 and theirs["tenant_id"] == "t2"


def test_resealing_is_idempotent_and_later_seals_chain_by_previous_with_consistency_proofs(log):
    # Given 10 sealed events
    headers = key_headers("t1", ["events:read"])
    first = make_events("t1", [("agent.registered", "info", "a")] * 10, start=WEEK_AGO)
    dispatch_and_seal(first)
    # When the same seal request is delivered again (at-least-once) and nothing new arrived
    assert Sealer().seal("t1") == []
    # Then no checkpoint was added
    status, listed, _ = get(f"{BASE}/checkpoints", headers)
    assert status == 200 and [c["tree_size"] for c in listed["items"]] == [10]
    # When 7 more events are sealed
    second = make_events("t1", [("session.created", "info", "b")] * 7, start=WEEK_AGO + timedelta(hours=1))
    dispatch_and_seal(second)
    # Then the new checkpoint points at the previous one's canonical body, and a consistency proof links them
    _, listed, _ = get(f"{BASE}/checkpoints", headers)
    old, new = listed["items"]
    body = {k: old[k] for k in ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")}
    assert new["tree_size"] == 17 and new["previous"] == base64.b64encode(hashlib.sha256(jcs.canonicalize(body)).digest()).decode()
    status, proof, _ = get(f"{BASE}/consistency", headers, first=10, second=17)
    assert status == 200 and proof["first_checkpoint"] == old and proof["second_checkpoint"] == new
    assert consistent(10, 17, base64.b64decode(old["root_hash"]), base64.b64decode(new["root_hash"]), proof["proof"])
    # And sizes that are not checkpoints are refused
    assert get(f"{BASE}/consistency", headers, first=9, second=17)[0] == 404
    assert get(f"{BASE}/consistency", headers, first=17, second=10)[0] == 400


class RacingStore(IntegrityStore):
    """Lets another sealer commit right after this one has read the head (the race two SealFunctions can run)."""

    def __init__(self, rival):
        super().__init__()
        self.rival, self.raced = rival, False

    def head(self, tenant_id):
        found = super().head(tenant_id)
        if not self.raced:
            self.raced = True
            self.rival()
        return found


def test_two_sealers_racing_never_fork_the_log(log):
    # Given 5 events sealed by a rival between sealer A's read of the head and its commit, 3 more arriving meanwhile
    first = make_events("t1", [("agent.registered", "info", "a")] * 5, start=WEEK_AGO)
    later = make_events("t1", [("agent.registered", "info", "a")] * 3, start=WEEK_AGO + timedelta(hours=2))
    rival_signed = []
    rival = Sealer()
    rival_due = rival._due

    def rival_seal():
        rival._due = lambda tenant, after, cutoff: [i for i in rival_due(tenant, after, cutoff) if i["event_id"]["S"] <= first[-1].event_id]
        rival_signed.extend(rival.seal("t1"))

    # When sealer A seals (its first commit loses the race and it re-reads)
    signed = Sealer(store=RacingStore(rival_seal)).seal("t1")
    # Then the log holds each of the 8 events once, in id order: the rival's checkpoint 5, then A's 8 chained on it
    assert [c["tree_size"] for c in rival_signed] == [5] and [c["tree_size"] for c in signed] == [8]
    headers = key_headers("t1", ["events:read"])
    _, listed, _ = get(f"{BASE}/checkpoints", headers)
    assert [c["tree_size"] for c in listed["items"]] == [5, 8]
    ordered = sorted(first + later, key=lambda e: e.event_id)
    assert base64.b64decode(signed[0]["root_hash"]) == mth([leaf("t1", e.list_item()) for e in ordered])
    assert consistent(5, 8, base64.b64decode(rival_signed[0]["root_hash"]), base64.b64decode(signed[0]["root_hash"]),
                      get(f"{BASE}/consistency", headers, first=5, second=8)[1]["proof"])


def test_inclusion_proofs_verify_and_unknown_unsealed_or_expired_events_answer_404_or_410(log):
    # Given 300 sealed events (past one tile) a week ago and 2 recent ones, and one event not sealed yet
    old = make_events("t1", [("agent.registered", "info", "a")] * 300, start=WEEK_AGO, step=timedelta(milliseconds=3))
    now = datetime.now(timezone.utc)
    recent = make_events("t1", [("session.created", "info", "b")] * 2, start=now - timedelta(hours=1))
    dispatch_and_seal(old + recent)
    unsealed = make_events("t1", [("session.created", "info", "b")], start=now)[0]
    headers = key_headers("t1", ["events:read"])
    _, checkpoint, _ = get(f"{BASE}/checkpoints/latest", headers)
    ordered = old + recent
    # When proofs are asked for
    for index in (0, 255, 256, 299, 301):
        status, proof, _ = get(f"/v1/observability/events/{ordered[index].event_id}/proof", headers)
        # Then each audit path leads from the event's leaf (recomputed with jcs) to the checkpoint's root
        assert status == 200 and proof["leaf_index"] == index and proof["checkpoint"] == checkpoint
        assert root_from_path(index, 302, leaf("t1", ordered[index].list_item()), proof["audit_path"]) == base64.b64decode(checkpoint["root_hash"])
    # And an unknown id, an unsealed event, another tenant's view and a tree_size that is no checkpoint are 404
    assert get("/v1/observability/events/maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9V/proof", headers)[0] == 404
    assert get(f"/v1/observability/events/{unsealed.event_id}/proof", headers)[0] == 404
    assert get(f"/v1/observability/events/{old[0].event_id}/proof", key_headers("t2", ["events:read"]))[0] == 404
    assert get(f"/v1/observability/events/{old[0].event_id}/proof", headers, tree_size=7)[0] == 404
    # When the tenant's hot tier drops to 1 day: the week-old events are read from the archive and still prove
    TenantSettingsStore().set_tiers("t1", hot_days=1)
    assert get(f"/v1/observability/events/{old[5].event_id}/proof", headers)[0] == 200
    # When its archive days drop to 1 too: the week-old events answer 410 gone (their leaves stay)
    TenantSettingsStore().set_tiers("t1", archive_days=1)
    status, body, _ = get(f"/v1/observability/events/{old[5].event_id}/proof", headers)
    assert status == 410 and body["error"]["code"] == "gone"
    assert get(f"/v1/observability/events/{recent[0].event_id}/proof", headers)[0] == 200
    # And without events:read it is 403
    assert get(f"/v1/observability/events/{recent[0].event_id}/proof", key_headers("t1", ["events:write"]))[0] == 403


def test_checkpoints_before_the_first_seal_are_404_and_the_window_filters_by_sealed_at(log):
    headers = key_headers("t1", ["events:read"])
    assert get(f"{BASE}/checkpoints/latest", headers)[0] == 404
    dispatch_and_seal(make_events("t1", [("agent.registered", "info", "a")] * 2, start=WEEK_AGO))
    _, latest, _ = get(f"{BASE}/checkpoints/latest", headers)
    assert get(f"{BASE}/checkpoints", headers, **{"from": latest["sealed_at"]})[1]["items"] == [latest]
    assert get(f"{BASE}/checkpoints", headers, to="2020-01-01T00:00:00Z")[1]["items"] == []


def export_all(headers, **query) -> list[dict]:
    lines, token = [], None
    while True:
        q = {"format": "jsonl", "proofs": "true", **query, **({"next_token": token} if token else {})}
        response = export_handler(http_event("GET", "/v1/observability/events/export", headers=headers, query=q), Ctx())
        assert response["statusCode"] == 200, response["body"]
        lines += [json.loads(line) for line in response["body"].splitlines()]
        token = response["headers"].get("X-Next-Token")
        if not token:
            return lines


def check_line(line: dict, tenant: str, size: int, root: bytes) -> None:
    hashed = base64.b64decode(line["leaf_hash"]) if line.get("expired") else leaf(tenant, line)
    assert line["proof"]["tree_size"] == size
    assert root_from_path(line["leaf_index"], size, hashed, line["proof"]["audit_path"]) == root


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_an_export_with_proofs_is_contiguous_verifiable_evidence_across_pages(log, monkeypatch, order):
    # Given 30 old events (expired by a 1-day retention) and 20 recent ones, sealed, and pages of 7 lines
    now = datetime.now(timezone.utc)
    old = make_events("t1", [("agent.registered", "info", "a")] * 30, start=WEEK_AGO, step=timedelta(seconds=1))
    recent = make_events("t1", [("session.created", "warn", "b")] * 20, start=now - timedelta(hours=2), step=timedelta(seconds=1))
    dispatch_and_seal(old + recent)
    TenantSettingsStore().set_retention("t1", 1)
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "7")
    settings.get_settings.cache_clear()
    headers = key_headers("t1", ["events:read"])
    # When the tenant exports a window from the 11th old event to the 15th recent one with proofs
    window = {"from": old[10].created_at, "to": recent[14].created_at, "order": order}
    lines = export_all(headers, **window)
    # Then the last line is the trailer with the checkpoint, the key and the neighbours just outside the window
    trailer = lines.pop()["integrity"]
    checkpoint, size = trailer["checkpoint"], trailer["checkpoint"]["tree_size"]
    root = base64.b64decode(checkpoint["root_hash"])
    assert size == 50 and signature_valid(checkpoint, trailer["public_key"])
    assert (trailer["first_index"], trailer["last_index"]) == (10, 44)
    assert trailer["window"] == {"from": old[10].created_at, "to": recent[14].created_at}
    assert trailer["before"]["leaf_index"] == 9 and trailer["after"]["leaf_index"] == 45
    assert trailer["after"]["timestamp"] > trailer["window"]["to"]
    # And one line per leaf in export order, expired events as placeholders, every proof verifying against the root
    indices = [line["leaf_index"] for line in lines]
    assert indices == (list(range(44, 9, -1)) if order == "desc" else list(range(10, 45)))
    for line in lines + [trailer["before"], trailer["after"]]:
        check_line(line, "t1", size, root)
    assert all(line.get("expired") for line in lines if line["leaf_index"] < 30)
    assert [line["event_id"] for line in lines if not line.get("expired")] == \
        [e.event_id for e in (reversed(recent[:15]) if order == "desc" else recent[:15])]
    # And a whole-log export has no neighbours
    whole = export_all(headers)[-1]["integrity"]
    assert whole["before"] is None and whole["after"] is None and (whole["first_index"], whole["last_index"]) == (0, 49)


def test_proofs_cannot_be_combined_with_filters(log):
    dispatch_and_seal(make_events("t1", [("agent.registered", "info", "a")], start=WEEK_AGO))
    headers = key_headers("t1", ["events:read"])
    for query in ({"agent_id": "a"}, {"event_type": "agent.registered"}, {"format": "ocsf"}):
        q = {"format": "jsonl", "proofs": "true", **query}
        response = export_handler(http_event("GET", "/v1/observability/events/export", headers=headers, query=q), Ctx())
        assert response["statusCode"] == 400 and json.loads(response["body"])["error"]["code"] == "invalid_request"
