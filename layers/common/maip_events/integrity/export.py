"""`GET /v1/observability/events/export?format=jsonl&proofs=true`: self-contained evidence of a time window.

Only sealed events: the window [from, to] is a contiguous run of leaves (leaves are in event id order, ids are
time-ordered), clipped at the checkpoint's last leaf. Every page of one export uses ONE checkpoint (the
next_token binds its tree_size and the leaf range). One line per leaf, in the export order (desc: leaf_index
decreasing by exactly 1, asc: increasing):
  {<list item>, "leaf_index": i, "proof": {"tree_size": S, "audit_path": [b64...]}}
  {"leaf_index": i, "expired": true, "leaf_hash": b64, "proof": {...}}      (event expired by retention)
and, last line of the last page, the trailer:
  {"integrity": {"checkpoint", "public_key", "window": {"from", "to"}, "first_index", "last_index",
                 "before": <line of leaf first_index-1> | null, "after": <line of leaf last_index+1> | null}}
`before`/`after` are null only at leaf 0 / the checkpoint's last leaf: their timestamps, outside the window,
prove that nothing inside it was left out."""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ulid import ULID

from maip_events.errors import NotFound
from maip_events.ids import EVENT_PREFIX, format_time, highest_event_id, lowest_event_id
from maip_events.integrity import signing
from maip_events.integrity.leaves import b64
from maip_events.integrity.proofs import IntegrityService
from maip_events.integrity.tree import TILE_HEIGHT, TileHashes
from maip_events.settings import get_settings
from maip_events.store import cursor
from maip_events.store.events import EventFilter, EventStore, list_item_json

TRAILER_RESERVE = 16_384  # bytes kept free on every page for the trailer (two neighbour lines + checkpoint + key)


@dataclass
class ProofChunk:
    body: str
    count: int
    next_token: str | None


def _time_of(event_id: str) -> datetime:
    return ULID.from_str(event_id[len(EVENT_PREFIX):]).datetime


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class ProofExport:
    def __init__(self, tenant_id: str, time_from: datetime | None, time_to: datetime | None, order: str = "desc",
                 service: IntegrityService | None = None, events: EventStore | None = None):
        self.tenant_id, self.time_from, self.time_to, self.order = tenant_id, time_from, time_to, order
        self.service = service or IntegrityService()
        self.events = events or self.service.expiry.events
        self.store = self.service.store

    def scope(self) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "from": self.time_from.isoformat() if self.time_from else None,
                "to": self.time_to.isoformat() if self.time_to else None, "export": "jsonl+proofs", "order": self.order}

    # ---- the window as leaf indices --------------------------------------------------------------------------

    def _first_at_or_after(self, event_id: str, size: int) -> int:
        found = self.store.locate(self.tenant_id, event_id)
        if found is None:
            return 0
        start, ids = found
        return min(size, start + bisect.bisect_left(ids, event_id))

    def _last_at_or_before(self, event_id: str, size: int) -> int:
        found = self.store.locate(self.tenant_id, event_id)
        if found is None:
            return -1
        start, ids = found
        return min(size - 1, start + bisect.bisect_right(ids, event_id) - 1)

    def window(self, checkpoint: dict[str, Any]) -> tuple[int, int]:
        """[lo, hi] leaf indices of the window in the checkpoint's tree (hi < lo: no leaf in it)."""
        size = checkpoint["tree_size"]
        lo = self._first_at_or_after(lowest_event_id(self.time_from), size) if self.time_from else 0
        hi = self._last_at_or_before(highest_event_id(self.time_to), size) if self.time_to else size - 1
        return lo, hi

    # ---- lines -----------------------------------------------------------------------------------------------

    def _lines(self, indices: list[int], size: int, hashes: TileHashes) -> dict[int, dict[str, Any]]:
        """The line of each leaf index (full event, or the expired placeholder)."""
        if not indices:
            return {}
        chunks = self.store.id_chunks(self.tenant_id, sorted({i >> TILE_HEIGHT for i in indices}))
        ids = {i: chunks[i >> TILE_HEIGHT][i & 255] for i in indices}
        wanted = set(ids.values())
        first, last = min(wanted), max(wanted)
        flt = EventFilter(tenant_id=self.tenant_id, time_from=_time_of(first), time_to=_time_of(last))
        low, high = self.events._window(flt)  # retention-clipped: what the list would still show
        stored: dict[str, str] = {}
        if high is None or low < high:
            for item in self.events._merged(flt, low, high, ascending=True):
                if item["event_id"]["S"] in wanted:
                    stored[item["event_id"]["S"]] = list_item_json(item)
        leaf_hashes = hashes.nodes((0, i) for i in indices if ids[i] not in stored)
        lines = {}
        for i in indices:
            proof = {"tree_size": size, "audit_path": [b64(h) for h in hashes.inclusion_proof(i, size)]}
            if ids[i] in stored:
                lines[i] = {**json.loads(stored[ids[i]]), "leaf_index": i, "proof": proof}
            else:
                lines[i] = {"leaf_index": i, "expired": True, "leaf_hash": b64(leaf_hashes[(0, i)]), "proof": proof}
        return lines

    # ---- pages -----------------------------------------------------------------------------------------------

    def page(self, next_token: str | None) -> ProofChunk:
        settings = get_settings()
        if next_token:
            state = cursor.decode(next_token, self.scope())
            size, lo, hi, position = int(state["size"]), int(state["lo"]), int(state["hi"]), int(state["next"])
            checkpoint = self.service.checkpoint(self.tenant_id, size)
        else:
            try:
                checkpoint = self.service.latest(self.tenant_id)
            except NotFound:
                raise NotFound("Nothing of this tenant is sealed yet: an export with proofs needs a checkpoint.") from None
            size = checkpoint["tree_size"]
            lo, hi = self.window(checkpoint)
            position = hi if self.order == "desc" else lo
        step = -1 if self.order == "desc" else 1
        hashes = self.service.hashes(self.tenant_id)
        budget_lines, budget_bytes = settings.export_max_events, settings.export_max_bytes - TRAILER_RESERVE
        out: list[str] = []
        used = 0
        while lo <= position <= hi and len(out) < budget_lines:
            count = min(512, budget_lines - len(out))
            if step > 0:
                indices = list(range(position, min(hi, position + count - 1) + 1))
            else:
                indices = list(range(position, max(lo, position - count + 1) - 1, -1))
            lines = self._lines(indices, size, hashes)
            full = False
            for i in indices:
                text = _dumps(lines[i])
                cost = len(json.dumps(text)) + 2  # escaped inside the Lambda response envelope, plus newline
                if out and used + cost > budget_bytes:
                    full = True
                    break
                out.append(text)
                used += cost
                position = i + step
            if full:
                break
        if lo <= position <= hi:
            token = cursor.encode(self.scope(), {"size": size, "lo": lo, "hi": hi, "next": position})
            return ProofChunk(body="".join(f"{t}\n" for t in out), count=len(out), next_token=token)
        out.append(_dumps(self.trailer(checkpoint, lo, hi, hashes)))
        return ProofChunk(body="".join(f"{t}\n" for t in out), count=len(out) - 1, next_token=None)

    def trailer(self, checkpoint: dict[str, Any], lo: int, hi: int, hashes: TileHashes) -> dict[str, Any]:
        size = checkpoint["tree_size"]
        edges = [i for i in (lo - 1, hi + 1) if 0 <= i < size]
        lines = self._lines(edges, size, hashes)
        return {"integrity": {
            "checkpoint": checkpoint, "public_key": signing.public_jwk(),
            # the bounds as ids see them (milliseconds: `from` rounded up, `to` down), so that the neighbours'
            # timestamps fall strictly outside them
            "window": {"from": format_time(_time_of(lowest_event_id(self.time_from))) if self.time_from else None,
                       "to": format_time(_time_of(highest_event_id(self.time_to))) if self.time_to else None},
            "first_index": lo if lo <= hi else None, "last_index": hi if lo <= hi else None,
            "before": lines.get(lo - 1), "after": lines.get(hi + 1)}}


def export_with_proofs(tenant_id: str, time_from: datetime | None, time_to: datetime | None, order: str,
                       next_token: str | None) -> ProofChunk:
    return ProofExport(tenant_id, time_from, time_to, order).page(next_token)
