"""The integrity verifier (maip_events.integrity.verify) against evidence built independently: the RFC 6962 test
vectors, a prover written from the RFC (tests/integrity_fixtures.py), `jcs` for RFC 8785, and tampered exports.
Each tamper must be caught with the right kind and the first bad line."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import jcs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrity_fixtures import (BASE_TIME, VECTOR_CONSISTENCY, VECTOR_INCLUSION, VECTOR_LEAVES, VECTOR_ROOTS,
                                MerkleTree, SigningKey, TenantLog, iso, signing_key, write_lines)
from maip_events.integrity.verify import (checkpoint_digest, checkpoint_signature_problem, leaf_hash,
                                          root_from_inclusion_proof, verify_consistency, verify_export,
                                          verify_inclusion)

VECTOR_TREE = MerkleTree([MerkleTree.hash_leaf(data) for data in VECTOR_LEAVES])
WINDOW = (iso(BASE_TIME + timedelta(seconds=10)), iso(BASE_TIME + timedelta(seconds=29)))  # leaves 10..29


@pytest.fixture(scope="module")
def log() -> TenantLog:
    return TenantLog(40)


def _hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# --- RFC 6962 vectors -----------------------------------------------------------------------------------------

def test_the_test_prover_reproduces_the_rfc6962_vectors():
    # Given the 8 vector leaves, When the test prover hashes them, Then roots and proofs are the published ones
    assert {n: VECTOR_TREE.root(n) for n in range(9)} == VECTOR_ROOTS
    for index, size, path in VECTOR_INCLUSION:
        assert VECTOR_TREE.path(index, size) == _hashes(path)
    for first, second, proof in VECTOR_CONSISTENCY:
        assert VECTOR_TREE.consistency(first, second) == _hashes(proof)


@pytest.mark.parametrize("index,size,path", VECTOR_INCLUSION)
def test_inclusion_vectors_verify_and_every_corruption_fails(index, size, path):
    leaf, root, proof = VECTOR_TREE.levels[0][index], VECTOR_ROOTS[size], _hashes(path)
    assert verify_inclusion(index, size, leaf, proof, root)
    flipped = [bytes([proof[0][0] ^ 8]) + proof[0][1:], *proof[1:]]
    for args in [(index + 1, size, leaf, proof), (index ^ 2, size, leaf, proof), (index, size * 2, leaf, proof),
                 (index, size // 2, leaf, proof), (index, size, VECTOR_ROOTS[0], proof), (index, size, leaf, flipped),
                 (index, size, leaf, proof[:-1]), (index, size, leaf, proof + [root]), (index, size, leaf, [root] + proof),
                 (index, size, leaf, proof + [b""])]:
        assert not verify_inclusion(*args, root), args
    assert root_from_inclusion_proof(size, size, leaf, proof) is None  # index out of range


@pytest.mark.parametrize("first,second,proof", VECTOR_CONSISTENCY)
def test_consistency_vectors_verify_and_every_corruption_fails(first, second, proof):
    hashes, r1, r2 = _hashes(proof), VECTOR_ROOTS[first], VECTOR_ROOTS[second]
    assert verify_consistency(first, second, r1, r2, hashes)
    flipped = [bytes([hashes[-1][0] ^ 16]) + hashes[-1][1:]]
    for args in [(first - 1, second, r1, r2, hashes), (first + 1, second, r1, r2, hashes),
                 (first, second * 2, r1, r2, hashes), (first, second // 2, r1, r2, hashes),
                 (first, second, r2, r1, hashes), (first, second, r1, r2, []), (first, second, r1, r2, hashes[:-1]),
                 (first, second, r1, r2, hashes + [r1]), (first, second, r1, r2, [hashes[0]] + hashes),
                 (first, second, r1, r2, hashes[:-1] + flipped)]:
        assert not verify_consistency(*args), args


def test_consistency_edge_sizes():
    r = VECTOR_ROOTS
    assert verify_consistency(0, 0, r[0], r[0], []) and verify_consistency(0, 5, r[0], r[5], [])
    assert verify_consistency(3, 3, r[3], r[3], []) and not verify_consistency(3, 3, r[3], r[4], [])
    assert not verify_consistency(3, 3, r[3], r[3], [r[1]]) and not verify_consistency(4, 3, r[4], r[3], [])


def test_every_leaf_and_size_up_to_33_agrees_with_the_test_prover():
    leaves = [MerkleTree.hash_leaf(bytes([i])) for i in range(33)]
    tree = MerkleTree(leaves)
    for size in range(1, 34):
        assert all(verify_inclusion(i, size, leaves[i], tree.path(i, size), tree.root(size)) for i in range(size))
        assert all(verify_consistency(m, size, tree.root(m), tree.root(size), tree.consistency(m, size) if m else [])
                   for m in range(size + 1))


# --- leaves and checkpoints -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=80, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6), json_values, max_size=4), agent=st.none() | st.text(max_size=6))
def test_leaf_hash_of_a_line_is_sha256_of_0x00_and_the_jcs_bytes(payload, agent):
    # Given any list item (floats, integers beyond 2^53, non-BMP keys, control characters) as a line carries it
    item = {"event_id": "maip-evt:01J", "event_type": "agent.registered", "agent_id": agent, "resource_id": None,
            "severity": "info", "payload": payload, "timestamp": "2026-11-01T00:00:00.000Z"}
    raw = json.dumps({**item, "leaf_index": 3}, ensure_ascii=agent is None).encode()
    from maip_events.integrity.verify import _LineReader

    reader = _LineReader()
    parsed = reader.read(raw)
    # Then the verifier's leaf hash (fast path when it applies) equals the one from the independent jcs package
    expected = hashlib.sha256(b"\x00" + jcs.canonicalize({"tenant_id": "t-acme", **item})).digest()
    assert leaf_hash("t-acme", parsed, reader.plain) == expected


def test_checkpoint_signature_and_digest(log):
    checkpoint, key = log.checkpoint(20), signing_key()
    assert checkpoint_signature_problem(checkpoint, key.jwk()) is None
    body = {k: checkpoint[k] for k in ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")}
    assert checkpoint_digest(checkpoint) == base64.b64encode(hashlib.sha256(jcs.canonicalize(body)).digest()).decode()
    assert "does not verify" in checkpoint_signature_problem({**checkpoint, "tree_size": 21}, key.jwk())
    assert "does not verify" in checkpoint_signature_problem(checkpoint, SigningKey(key.kid).jwk())
    assert "kid" in checkpoint_signature_problem(checkpoint, SigningKey("other").jwk())
    chained = log.checkpoint(30, previous=checkpoint)
    assert chained["previous"] == checkpoint_digest(checkpoint)


# --- exports --------------------------------------------------------------------------------------------------

def _verify(tmp_path, lines, **kwargs):
    return verify_export(write_lines(tmp_path / "export.jsonl", lines), **kwargs)


def _edit(line: str, **changes) -> str:
    return json.dumps({**json.loads(line), **changes})


def _edit_trailer(lines: list[str], **changes) -> list[str]:
    trailer = json.loads(lines[-1])
    trailer["integrity"].update(changes)
    return lines[:-1] + [json.dumps(trailer)]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_an_intact_export_verifies_with_a_one_line_summary(tmp_path, log, order):
    result = _verify(tmp_path, log.export(window=WINDOW, order=order))
    assert result.ok, result.summary()
    assert result.summary() == (
        "OK: 20 events, leaves 10..29 of tree 40, window [2026-11-01T00:00:10.000Z, 2026-11-01T00:00:29.000Z], "
        "checkpoint signed by kid maip-integrity-test-1 (the public key in the export's trailer), 0 expired by retention")


def test_whole_log_and_empty_window_exports_verify(tmp_path, log):
    assert _verify(tmp_path, log.export()).ok  # touches leaf 0 and the last leaf: before/after are null
    empty = _verify(tmp_path, log.export(window=(iso(BASE_TIME + timedelta(seconds=12, milliseconds=1)),
                                                 iso(BASE_TIME + timedelta(seconds=12, milliseconds=900)))))
    assert empty.ok and empty.events == 0, empty.summary()
    assert _verify(tmp_path, log.export(window=(iso(BASE_TIME + timedelta(days=1)), None))).ok


def _failure(result):
    assert not result.ok, "tampering went unnoticed"
    return result.failure.line, result.failure.kind


def test_an_edited_field_is_modified_at_its_line(tmp_path, log):
    lines = log.export(window=WINDOW)
    lines[4] = _edit(lines[4], severity="info" if json.loads(lines[4])["severity"] != "info" else "error")
    assert _failure(_verify(tmp_path, lines)) == (5, "modified")


def test_an_edited_proof_node_is_modified_at_its_line(tmp_path, log):
    lines = log.export(window=WINDOW)
    line = json.loads(lines[6])
    line["proof"]["audit_path"][-1] = base64.b64encode(b"\x07" * 32).decode()  # the node nearest the root
    lines[6] = json.dumps(line)
    assert _failure(_verify(tmp_path, lines)) == (7, "modified")


def test_a_deleted_middle_line_is_missing_where_the_gap_shows(tmp_path, log):
    lines = log.export(window=WINDOW)
    del lines[7]
    result = _verify(tmp_path, lines)
    assert _failure(result) == (8, "missing") and "leaf 22" in result.failure.message


def test_a_deleted_first_line_is_missing_at_line_1(tmp_path, log):
    lines = log.export(window=WINDOW)
    assert _failure(_verify(tmp_path, lines[1:])) == (1, "missing")


def test_in_ascending_order_a_deleted_first_line_is_missing_at_line_1(tmp_path, log):
    lines = log.export(window=WINDOW, order="asc")
    result = _verify(tmp_path, lines[1:])
    assert _failure(result) == (1, "missing") and "leaf 10 missing at the start" in result.failure.message


def test_a_deleted_last_line_is_missing_at_the_trailer(tmp_path, log):
    lines = log.export(window=WINDOW)
    del lines[-2]
    assert _failure(_verify(tmp_path, lines)) == (20, "missing")


def test_a_deleted_edge_line_hidden_by_editing_the_trailer_violates_the_window_edge(tmp_path, log):
    # Given the oldest line removed and the trailer's last_index moved to hide the gap
    lines = log.export(window=WINDOW)
    del lines[-2]
    lines = _edit_trailer(lines, first_index=11)
    # Then the `before` neighbour (leaf 9) is no longer next to the window
    assert _failure(_verify(tmp_path, lines)) == (20, "window edge violated")
    # And passing the removed line off as the `before` neighbour fails on its timestamp
    lines = _edit_trailer(lines, before=json.loads(log.export(window=WINDOW)[-2]))
    result = _verify(tmp_path, lines)
    assert _failure(result) == (20, "window edge violated") and "inside the window" in result.failure.message


def test_a_null_neighbour_inside_the_log_violates_the_window_edge(tmp_path, log):
    assert _failure(_verify(tmp_path, _edit_trailer(log.export(window=WINDOW), after=None))) == (21, "window edge violated")


def test_an_inserted_copy_of_a_line_is_inserted(tmp_path, log):
    lines = log.export(window=WINDOW)
    lines.insert(3, lines[2])
    assert _failure(_verify(tmp_path, lines)) == (4, "inserted")


def test_a_forged_event_borrowing_the_next_index_is_inserted(tmp_path, log):
    lines = log.export(window=WINDOW)
    forged = _edit(lines[3], event_id="maip-evt:01JFORGED000000000000000000", payload={"forged": True})
    lines.insert(3, forged)
    result = _verify(tmp_path, lines)
    assert _failure(result) == (4, "inserted"), result.summary()


def test_a_line_after_the_trailer_is_inserted(tmp_path, log):
    lines = log.export(window=WINDOW)
    assert _failure(_verify(tmp_path, lines + [lines[0]])) == (22, "inserted")


def test_two_swapped_lines_are_reordered(tmp_path, log):
    lines = log.export(window=WINDOW)
    lines[4], lines[5] = lines[5], lines[4]
    assert _failure(_verify(tmp_path, lines)) == (5, "reordered")


def test_a_dropped_trailer_is_truncated(tmp_path, log):
    result = _verify(tmp_path, log.export(window=WINDOW)[:-1])
    assert _failure(result) == (21, "truncated") and "ends after line 20" in result.failure.message


def test_a_checkpoint_re_signed_with_another_key_is_a_bad_signature(tmp_path, log):
    # Given an attacker who rewrites the log and re-signs the checkpoint with their own key, same kid
    lines = _edit_trailer(log.export(window=WINDOW), checkpoint=log.checkpoint(40, key=SigningKey(signing_key().kid)))
    assert _failure(_verify(tmp_path, lines)) == (21, "bad signature")
    # And who also replaces the trailer's public key: the export alone cannot tell, the pinned key can
    attacker = SigningKey(signing_key().kid)
    lines = _edit_trailer(log.export(window=WINDOW), checkpoint=log.checkpoint(40, key=attacker), public_key=attacker.jwk())
    assert _verify(tmp_path, lines).ok
    pinned = _verify(tmp_path, lines, public_key=signing_key().jwk(), key_source="public key pinned.jwk")
    assert _failure(pinned) == (21, "bad signature")


def test_a_public_key_with_another_kid_is_a_bad_signature(tmp_path, log):
    result = _verify(tmp_path, log.export(window=WINDOW), public_key=SigningKey("someone-else").jwk())
    assert _failure(result) == (21, "bad signature") and "kid" in result.failure.message


def test_the_pinned_key_is_named_in_the_summary(tmp_path, log):
    result = _verify(tmp_path, log.export(window=WINDOW), public_key=signing_key().jwk(), key_source="public key k.jwk")
    assert result.ok and "(public key k.jwk)" in result.summary()


def test_expired_placeholders_are_expired_by_retention_not_missing(tmp_path, log):
    result = _verify(tmp_path, log.export(window=WINDOW, expired=frozenset({14, 15})))
    assert result.ok, result.summary()
    assert (result.events, result.expired) == (18, 2) and "2 expired by retention" in result.summary()


def test_an_expired_placeholder_with_a_wrong_hash_is_modified(tmp_path, log):
    lines = log.export(window=WINDOW, expired=frozenset({14}))
    lines[15] = _edit(lines[15], leaf_hash=base64.b64encode(b"\x01" * 32).decode())
    assert _failure(_verify(tmp_path, lines)) == (16, "modified")


def test_a_line_outside_the_window_violates_the_window_edge(tmp_path, log):
    # Given a trailer whose window was narrowed after the fact
    lines = _edit_trailer(log.export(window=WINDOW), window={"from": WINDOW[0], "to": iso(BASE_TIME + timedelta(seconds=28))})
    assert _failure(_verify(tmp_path, lines)) == (1, "window edge violated")
