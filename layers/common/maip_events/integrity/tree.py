"""RFC 6962 §2.1 Merkle tree hashing, and inclusion (PATH) / consistency (SUBPROOF) proofs computed from stored
hash tiles, as Go's sumdb tlog and Tessera do: a proof for any leaf of a large log reads a few tiles and never
rehashes the log.

A node (level, index) is the complete subtree of 2**level leaves starting at leaf index * 2**level; it exists in a
tree of n leaves iff (index + 1) * 2**level <= n, and its hash never changes once it exists (append-only).
Tile (t, k) stores the hashes of level 8t, indices 256k .. 256k+255 (fewer while the log has not reached the end of
the tile): one tile item holds at most 256 x 32 bytes, and a node of level 8t+r is recomputed from 2**r of them.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]  # (level, index)
TileKey = tuple[int, int]  # (tile level t: hash level 8t, tile index k)
# Reads stored tiles: keys -> {key: concatenated hashes}; a missing tile is absent from the answer.
TileReader = Callable[[list[TileKey]], dict[TileKey, bytes]]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(lo: int, hi: int) -> list[Node]:
    """The maximal complete subtrees covering leaves [lo, hi), left to right (sizes decreasing for the aligned
    ranges RFC 6962 recursions produce): MTH(D[lo:hi]) is their hashes folded from the right."""
    nodes: list[Node] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length()
        while (1 << level) > hi - lo:
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: list[bytes]) -> bytes:
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PATH(index, D[size]) (RFC 6962 §2.1.1), deepest first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    return path[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PROOF(first, D[second]) = SUBPROOF(first, D[second], true) (§2.1.2)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first == 0 or first == second:
        return []

    def sub(m: int, lo: int, hi: int, complete: bool) -> list[tuple[int, int]]:
        n = hi - lo
        if m == n:
            return [] if complete else [(lo, hi)]
        k = _split(n)
        if m <= k:
            return sub(m, lo, lo + k, complete) + [(lo + k, hi)]
        return sub(m - k, lo + k, hi, False) + [(lo, lo + k)]

    return sub(first, 0, second, True)


def tile_of(node: Node) -> tuple[TileKey, int, int]:
    """The tile holding the row a node is computed from, and the node's [start, end) positions in that row."""
    level, index = node
    t, r = divmod(level, TILE_HEIGHT)
    first = index << r  # position in row 8t
    return (t, first >> TILE_HEIGHT), first % TILE_WIDTH, first % TILE_WIDTH + (1 << r)


def _row_root(row: bytes, start: int, end: int) -> bytes:
    """Hash of the complete subtree over row entries [start, end) (a power of two, aligned)."""
    level = [row[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(start, end)]
    if len(level[-1]) != HASH_SIZE:
        raise LookupError("a tile is shorter than the tree size it should serve")
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileHashes:
    """Node hashes served from tiles, each tile read at most once and each node computed once per instance (an
    export computes thousands of neighbouring proofs)."""

    def __init__(self, read: TileReader):
        self.read = read
        self.tiles: dict[TileKey, bytes] = {}
        self.known: dict[Node, bytes] = {}
        self.tile_reads = 0  # tiles fetched (the lookup cost the bench reports)

    def _node(self, node: Node) -> bytes:
        found = self.known.get(node)
        if found is None:
            level, index = node
            if level % TILE_HEIGHT:
                found = node_hash(self._node((level - 1, 2 * index)), self._node((level - 1, 2 * index + 1)))
            else:
                key, start, _ = tile_of(node)
                found = self.tiles[key][start * HASH_SIZE:(start + 1) * HASH_SIZE]
                if len(found) != HASH_SIZE:
                    raise LookupError(f"tile {key} is shorter than the tree it should serve")
            self.known[node] = found
        return found

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        wanted = list(dict.fromkeys(wanted))
        missing = sorted({tile_of(n)[0] for n in wanted if n not in self.known} - set(self.tiles))
        if missing:
            found = self.read(missing)
            self.tile_reads += len(missing)
            self.tiles.update({key: found.get(key, b"") for key in missing})
        return {node: self._node(node) for node in wanted}

    def range_hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """MTH of each leaf range, from one batched tile read."""
        parts = [subtrees(lo, hi) for lo, hi in ranges]
        known = self.nodes(n for nodes in parts for n in nodes)
        return [fold([known[n] for n in nodes]) for nodes in parts]

    def root(self, size: int) -> bytes:
        return self.range_hashes([(0, size)])[0] if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.range_hashes(inclusion_ranges(index, size))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return self.range_hashes(consistency_ranges(first, second))

    def leaf_hashes(self, lo: int, hi: int) -> list[bytes]:
        found = self.nodes((0, i) for i in range(lo, hi))
        return [found[(0, i)] for i in range(lo, hi)]


def edge_tiles(size: int) -> list[TileKey]:
    """The partial tiles at the right edge of a tree of `size` leaves: all an append needs to read."""
    keys, width, t = [], size, 0
    while width:
        if width % TILE_WIDTH:
            keys.append((t, width >> TILE_HEIGHT))
        width >>= TILE_HEIGHT
        t += 1
    return keys


def append(tiles: dict[TileKey, bytes], size: int, leaves: list[bytes]) -> dict[TileKey, bytes]:
    """Appends leaf hashes to a tree of `size` leaves whose right-edge tiles are in `tiles` (longer tiles are
    cut to `size`); returns every tile that changed, with its new content."""
    changed: dict[TileKey, bytes] = {}

    def current(key: TileKey, length: int) -> bytes:
        data = changed.get(key, tiles.get(key, b""))[: length * HASH_SIZE]
        if len(data) != length * HASH_SIZE:
            raise LookupError(f"tile {key} is missing hashes of a tree of {size}")
        return data

    row, start, t = leaves, size, 0
    while row:
        position, index = start, 0
        while index < len(row):
            k, at = divmod(position, TILE_WIDTH)
            take = min(TILE_WIDTH - at, len(row) - index)
            changed[(t, k)] = current((t, k), at) + b"".join(row[index:index + take])
            index += take
            position += take
        end = start + len(row)
        # Each 256-block of this row completed by the append is one new hash of the row 8 levels up.
        row = [_row_root(changed[(t, j)], 0, TILE_WIDTH) for j in range(start >> TILE_HEIGHT, end >> TILE_HEIGHT)]
        start >>= TILE_HEIGHT
        t += 1
    return changed


class MemoryTiles:
    """Tiles in a dict: tests and the bench (simulated tiles of a large log)."""

    def __init__(self) -> None:
        self.tiles: dict[TileKey, bytes] = {}
        self.size = 0

    def read(self, keys: list[TileKey]) -> dict[TileKey, bytes]:
        return {k: self.tiles[k] for k in keys if k in self.tiles}

    def append(self, leaves: list[bytes]) -> None:
        self.tiles.update(append(self.read(edge_tiles(self.size)), self.size, leaves))
        self.size += len(leaves)


def root_of(leaves: list[bytes]) -> bytes:
    """MTH of a list of leaf hashes by the RFC's recursive definition (reference for tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))
