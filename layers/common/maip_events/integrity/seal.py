"""The sealer: appends a tenant's new events to its log and signs a checkpoint.

Fed by the dispatcher (no third reader of the events stream): for every stream batch it sends one small
"seal tenant T" message per tenant to SealQueue, delayed by the grace period (+ margin). SealFunction then reads
every write shard of the tenant ascending by event id, from the last sealed id (exclusive) up to the cutoff
`now - grace`, merges them, and commits tiles, id chunks, the checkpoint and the head in one transaction
conditioned on the head it read (store.py). Ingest stays one item per event; sealing is off the request path.

Why a grace period: an event's id (and leaf position) is fixed when the request starts, its write lands before
EmitFunction's timeout (10 s); the grace (30 s deployed) is longer, so no event can appear below the cutoff
after a seal. Idempotent under at-least-once delivery: a repeated or late message finds nothing new past the
head and writes nothing; concurrent sealers of a tenant race on the head's condition and the loser re-reads.
"""
from __future__ import annotations

import heapq
import math
import json
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from aws_lambda_powertools import Logger

from maip_events import aws
from maip_events.ids import EVENT_PREFIX, format_time, highest_event_id
from maip_events.integrity import config, signing
from maip_events.integrity.leaves import b64, checkpoint_digest, checkpoint_bytes, leaf_hash_of, stored_leaf_item
from maip_events.integrity.store import Head, IntegrityStore, SealConflict
from maip_events.integrity.tree import TILE_HEIGHT, TILE_WIDTH, TileHashes, append, edge_tiles
from maip_events.settings import get_settings
from maip_events.store.events import from_item, partition_key
from maip_events.store.tenants import TenantSettingsStore

logger = Logger(service="maip-events")

MAX_LEAVES_PER_SEAL = 40 * TILE_WIDTH  # one transaction: <= 41 leaf tiles + 41 id chunks + upper tiles + 2 < 100
MAX_ATTEMPTS = 8
MARGIN_SECONDS = 2  # seal messages wait grace + this: clocks of Lambda hosts differ by far less


def seal_delay() -> int:
    """SQS DelaySeconds of a seal message (at most 900)."""
    grace, step = config.grace_seconds(), config.seal_interval_seconds()
    return min(900, math.ceil(grace + MARGIN_SECONDS + step)) if grace > 0 else math.ceil(step)


def cutoff_at(now: datetime) -> str:
    """The highest event id a seal at `now` may append: older than the grace, rounded down to the seal step."""
    moment = now - timedelta(seconds=config.grace_seconds())
    step = config.seal_interval_seconds()
    if step > 0:
        epoch = moment.timestamp()
        moment = datetime.fromtimestamp(epoch - epoch % step, timezone.utc)
    return highest_event_id(moment)


class Sealer:
    def __init__(self, client: Any = None, store: IntegrityStore | None = None,
                 clock: Callable[[], datetime] | None = None, sign: Callable[[bytes], tuple[bytes, str]] | None = None):
        self.client = client or aws.dynamodb()
        self.store = store or IntegrityStore(self.client)
        self.tenants = TenantSettingsStore(self.client)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.sign = sign or signing.sign

    def seal(self, tenant_id: str) -> list[dict[str, Any]]:
        """Seals everything of the tenant older than the cutoff; returns the checkpoints it signed (none if the
        log was already up to date). Several checkpoints when more than MAX_LEAVES_PER_SEAL events are due."""
        signed: list[dict[str, Any]] = []
        cutoff = cutoff_at(self.clock())
        conflicts = 0
        while True:  # a backlog larger than one transaction is sealed as several checkpoints
            try:
                checkpoint = self._seal_once(tenant_id, cutoff)
            except SealConflict:
                conflicts += 1
                if conflicts > MAX_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.01 * conflicts))  # another sealer moved the head: re-read
                continue
            if checkpoint is None:
                return signed
            signed.append(checkpoint)
            if checkpoint["appended"] < MAX_LEAVES_PER_SEAL:  # everything due is sealed: no second look
                checkpoint.pop("appended")
                return signed
            checkpoint.pop("appended")

    def _due(self, tenant_id: str, after: str | None, cutoff: str) -> list[dict[str, Any]]:
        """Up to MAX_LEAVES_PER_SEAL events with after < id <= cutoff, ascending, merged over all read shards."""
        shards = self.tenants.shards(tenant_id).read

        def shard_items(shard: int) -> Iterator[dict[str, Any]]:
            args: dict[str, Any] = {
                "TableName": get_settings().events_table, "ConsistentRead": True, "Limit": MAX_LEAVES_PER_SEAL,
                "KeyConditionExpression": "pk = :pk AND event_id BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": {":pk": {"S": partition_key(tenant_id, shard)},
                                              ":lo": {"S": after or EVENT_PREFIX}, ":hi": {"S": cutoff}}}
            seen = 0
            while seen < MAX_LEAVES_PER_SEAL:
                response = self.client.query(**args)
                for item in response["Items"]:
                    if item["event_id"]["S"] != after:
                        seen += 1
                        yield item
                if "LastEvaluatedKey" not in response:
                    return
                args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

        merged = heapq.merge(*(shard_items(s) for s in range(shards)), key=lambda item: item["event_id"]["S"])
        return [item for _, item in zip(range(MAX_LEAVES_PER_SEAL), merged)]

    def _seal_once(self, tenant_id: str, cutoff: str) -> dict[str, Any] | None:
        head: Head = self.store.head(tenant_id)
        items = self._due(tenant_id, head.last_event_id, cutoff)
        if not items:
            return None
        events = [from_item(item) for item in items]
        hashes = [leaf_hash_of(tenant_id, stored_leaf_item(e)) for e in events]
        size, new_size = head.tree_size, head.tree_size + len(events)
        edge = self.store.tiles(tenant_id, edge_tiles(size))
        changed = append(edge, size, hashes)
        root = TileHashes(lambda keys: {k: changed.get(k, edge.get(k, b"")) for k in keys}).root(new_size)
        chunks = self._chunks(tenant_id, size, [e.event_id for e in events])
        sealed_at = format_time(self.clock())
        if head.checkpoint and sealed_at < head.checkpoint["sealed_at"]:
            sealed_at = head.checkpoint["sealed_at"]  # never earlier than the previous one (clocks of two hosts)
        checkpoint: dict[str, Any] = {
            "tenant_id": tenant_id, "tree_size": new_size, "root_hash": b64(root), "last_event_id": events[-1].event_id,
            "sealed_at": sealed_at, "previous": checkpoint_digest(head.checkpoint) if head.checkpoint else None}
        signature, key_id = self.sign(checkpoint_bytes(checkpoint))
        checkpoint.update(signature=b64(signature), key_id=key_id)
        self.store.commit(tenant_id, size, checkpoint, changed, chunks)
        logger.info("sealed", extra={"tenant_id": tenant_id, "tree_size": new_size, "appended": len(events)})
        return {**checkpoint, "appended": len(events)}

    def _chunks(self, tenant_id: str, size: int, ids: list[str]) -> dict[int, list[str]]:
        """The id chunks (256 leaves each) after appending `ids` at leaf `size`."""
        first = size >> TILE_HEIGHT
        current = self.store.id_chunks(tenant_id, [first]).get(first, []) if size % TILE_WIDTH else []
        current = current[: size % TILE_WIDTH]  # a newer head may have grown it: keep the part we build on
        if len(current) != size % TILE_WIDTH:
            raise SealConflict()
        chunks: dict[int, list[str]] = {}
        merged = current + ids
        for offset in range(0, len(merged), TILE_WIDTH):
            chunks[first + offset // TILE_WIDTH] = merged[offset:offset + TILE_WIDTH]
        return chunks


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SealQueue consumer: each tenant named in the batch is sealed once; a failed tenant's messages come back."""
    records = event.get("Records") or []
    by_tenant: dict[str, list[str]] = {}
    for record in records:
        try:
            tenant_id = json.loads(record["body"])["tenant_id"]
        except (ValueError, KeyError, TypeError):
            logger.error("seal: unreadable message dropped", extra={"body": str(record.get("body"))[:200]})
            continue
        by_tenant.setdefault(tenant_id, []).append(record["messageId"])
    failures: list[dict[str, str]] = []
    sealer = Sealer() if by_tenant else None
    for tenant_id, message_ids in by_tenant.items():
        try:
            sealer.seal(tenant_id)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - this tenant's messages are retried (redriven after maxReceiveCount)
            logger.exception("seal failed", extra={"tenant_id": tenant_id})
            failures += [{"itemIdentifier": m} for m in message_ids]
    return {"batchItemFailures": failures}


def request_seal(tenant_ids: list[str], delay: int | None = None) -> set[str]:
    """Queues one seal message per tenant (the dispatcher, per stream batch); returns the tenants not queued."""
    from maip_events.webhooks.queue import queue_url, send_entries

    if not tenant_ids:
        return set()
    wait = seal_delay() if delay is None else delay
    entries = [{"Id": str(i), "MessageBody": json.dumps({"tenant_id": t}), "DelaySeconds": wait} for i, t in enumerate(tenant_ids)]
    unsent = send_entries(queue_url(config.seal_queue()), entries)
    return {tenant_ids[int(i)] for i in unsent}
