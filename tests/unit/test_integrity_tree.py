"""The integrity log's tree: RFC 6962 test vectors (transparency-dev/merkle, the Go/C++ CT code's 8-leaf tree),
proofs served from tiles however the leaves were appended, and leaf bytes recomputed with an independent RFC 8785
implementation (`jcs`)."""
from __future__ import annotations

import hashlib
import random

import jcs
import pytest

from maip_events.integrity import leaves
from maip_events.integrity.tree import MemoryTiles, TileHashes, leaf_hash, node_hash, root_of

from integrity_fixtures import VECTOR_CONSISTENCY, VECTOR_INCLUSION, VECTOR_LEAVES as INPUTS, VECTOR_ROOTS

# The RFC 6962 vectors (tests/integrity_fixtures.py), plus the trivial one-leaf cases.
ROOTS = [VECTOR_ROOTS[n] for n in range(9)]
INCLUSION = [*VECTOR_INCLUSION, (0, 1, [])]
CONSISTENCY = [(1, 1, []), *VECTOR_CONSISTENCY]


def vector_log(batches: list[int]) -> TileHashes:
    tiles, hashes, at = MemoryTiles(), [leaf_hash(x) for x in INPUTS], 0
    for size in batches:
        tiles.append(hashes[at:at + size])
        at += size
    return TileHashes(tiles.read)


@pytest.mark.parametrize("batches", [[8], [1] * 8, [3, 5], [5, 2, 1]])
def test_roots_from_tiles_match_the_rfc6962_vectors_however_the_leaves_were_appended(batches):
    # Given the 8 vector leaves appended in batches of various sizes
    log = vector_log(batches)
    # Then the root of every prefix is the reference root
    assert [log.root(n) for n in range(9)] == ROOTS


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_inclusion_proofs_match_the_vectors(index, size, path):
    assert [h.hex() for h in vector_log([8]).inclusion_proof(index, size)] == path


@pytest.mark.parametrize("first,second,proof", CONSISTENCY)
def test_consistency_proofs_match_the_vectors(first, second, proof):
    assert [h.hex() for h in vector_log([4, 4]).consistency_proof(first, second)] == proof


def _root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 verification, written out independently of the proof generator."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def test_a_log_spanning_several_tile_levels_serves_proofs_that_verify_from_a_few_tile_reads():
    # Given 70,000 leaves (three tile levels) appended in random batches
    rng = random.Random(7)
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70_000)]
    tiles, at = MemoryTiles(), 0
    while at < len(hashes):
        step = rng.choice([1, 3, 255, 256, 257, 4000])
        tiles.append(hashes[at:at + step])
        at += step
    # Then roots equal the recursive definition, and proofs of random leaves in random older trees verify
    assert TileHashes(tiles.read).root(70_000) == root_of(hashes)
    assert TileHashes(tiles.read).root(65_537) == root_of(hashes[:65_537])
    for _ in range(40):
        size = rng.randint(1, 70_000)
        index = rng.randrange(size)
        log = TileHashes(tiles.read)
        path = log.inclusion_proof(index, size)
        assert _root_from_path(index, size, hashes[index], path) == log.root(size)
        assert log.tile_reads <= 8  # a handful of tiles, never the log


def test_leaf_bytes_equal_an_independent_rfc8785_implementation():
    # Given list items with unicode, nested objects, floats, nulls and integers past 2**53
    items = [
        {"event_id": "maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9V", "event_type": "agent.registered", "agent_id": "a-é",
         "resource_id": None, "severity": "info", "payload": {"z": [1, 2.5, None, True], "a": {"€": "\u2028"}, "n": 1e21},
         "timestamp": "2026-11-23T07:36:56.123Z"},
        {"event_id": "maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9W", "event_type": "session.created", "agent_id": None,
         "resource_id": "r", "severity": "warn", "payload": {"big": 2**60, "neg": -(2**70), "f": 0.1}, "timestamp": "2026-11-23T07:36:56.124Z"},
    ]
    for item in items:
        # Then our leaf bytes are the `jcs` package's canonical form of the same object
        assert leaves.leaf_bytes("t1", item) == jcs.canonicalize({"tenant_id": "t1", **item})
