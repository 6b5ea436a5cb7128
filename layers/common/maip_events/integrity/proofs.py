"""What the integrity API answers: checkpoints, inclusion proofs (404 unknown or not sealed, 410 expired by
retention) and consistency proofs, all served from stored tiles."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from maip_events.errors import Gone, InvalidRequest, NotFound
from maip_events.ids import parse_time
from maip_events.integrity.leaves import b64
from maip_events.integrity.store import IntegrityStore
from maip_events.integrity.tree import TileHashes
from maip_events.store.events import EventStore

CHECKPOINTS_MAX = 1000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Expiry:
    """Whether a sealed event expired by retention: stored in neither tier (EventStore.get_many reads the archive for
    what the table no longer holds), or older than the archive's horizon (the list's own rule: the hot tier's TTL
    and the archive's expiry both delete lazily)."""

    def __init__(self, events: EventStore | None = None, clock: Callable[[], datetime] | None = None):
        self.events = events or EventStore()
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def visible_from(self, tenant_id: str) -> int:
        return self.events.tenants.tiers(tenant_id).visible_from(_ms(self.clock()))

    def expired(self, tenant_id: str, event_id: str) -> bool:
        found = self.events.get_many(tenant_id, [event_id])
        return not found or _ms(parse_time(found[0].created_at)) < self.visible_from(tenant_id)


class IntegrityService:
    def __init__(self, store: IntegrityStore | None = None, expiry: Expiry | None = None):
        self.store = store or IntegrityStore()
        self.expiry = expiry or Expiry()

    def hashes(self, tenant_id: str) -> TileHashes:
        return TileHashes(lambda keys: self.store.tiles(tenant_id, keys))

    def latest(self, tenant_id: str) -> dict[str, Any]:
        head = self.store.head(tenant_id)
        if head.checkpoint is None:
            raise NotFound("No checkpoint yet: nothing of this tenant has been sealed.")
        return head.checkpoint

    def checkpoint(self, tenant_id: str, tree_size: int | None) -> dict[str, Any]:
        """The checkpoint of `tree_size` (the latest when None); 404 if no checkpoint has that size."""
        if tree_size is None:
            return self.latest(tenant_id)
        found = self.store.checkpoint(tenant_id, tree_size)
        if found is None:
            raise NotFound(f"No checkpoint has tree_size {tree_size}.")
        return found

    def checkpoints(self, tenant_id: str, time_from: str | None, time_to: str | None) -> list[dict[str, Any]]:
        low = _iso(time_from, "from")
        high = _iso(time_to, "to")
        if low and high and low > high:
            raise InvalidRequest("`from` must not be after `to`.")
        return self.store.checkpoints(tenant_id, low, high, CHECKPOINTS_MAX)

    def inclusion(self, tenant_id: str, event_id: str, tree_size: int | None) -> dict[str, Any]:
        checkpoint = self.checkpoint(tenant_id, tree_size)
        size = checkpoint["tree_size"]
        index = self.store.leaf_index(tenant_id, event_id)
        if index is None or index >= size:
            raise NotFound(f"Event {event_id} is not in the log at tree_size {size} (unknown, or not sealed yet).")
        if self.expiry.expired(tenant_id, event_id):
            raise Gone(f"Event {event_id} expired by retention; its leaf {index} stays in the log.")
        path = self.hashes(tenant_id).inclusion_proof(index, size)
        return {"leaf_index": index, "tree_size": size, "audit_path": [b64(h) for h in path], "checkpoint": checkpoint}

    def consistency(self, tenant_id: str, first: int, second: int) -> dict[str, Any]:
        if first > second:
            raise InvalidRequest("`first` must not be larger than `second`.")
        first_checkpoint = self.checkpoint(tenant_id, first)
        second_checkpoint = self.checkpoint(tenant_id, second)
        proof = self.hashes(tenant_id).consistency_proof(first, second)
        return {"first": first, "second": second, "proof": [b64(h) for h in proof],
                "first_checkpoint": first_checkpoint, "second_checkpoint": second_checkpoint}


def _iso(text: str | None, name: str) -> str | None:
    """A query time in the checkpoints' own format (so that strings compare as times)."""
    if text is None:
        return None
    from maip_events.ids import format_time

    try:
        return format_time(parse_time(text))
    except ValueError:
        raise InvalidRequest(f"`{name}` must be an ISO 8601 date-time.",
                             details=[{"field": name, "issue": "not an ISO 8601 date-time"}]) from None
