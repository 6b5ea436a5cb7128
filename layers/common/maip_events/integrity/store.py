"""IntegrityTable: each tenant's log, in one partition `pk = <tenant>` (no key crosses tenants).

sk                      what
`head`                  tree_size, last_event_id, the latest signed checkpoint (JSON): the log's version
`tile#<t>#<k>`          hash tile (t, k) (tree.py): up to 256 hashes of level 8t, 32 bytes each
`ids#<k>`               event ids of leaves 256k .. 256k+255 (newline-separated), `start` = 256k,
                        `first_id` = the first of them (LSI by_first_id: event id -> leaf index, one query)
`size#<n>`              the signed checkpoint of tree size n (JSON), `sealed_at` (LSI by_sealed_at: time windows)

Every item of a seal (tiles, id chunks, checkpoint, head) is written in ONE TransactWriteItems conditioned on the
head's tree_size as read: two sealers of a tenant can never fork the log, the loser re-reads and retries.
Id chunks and tiles are kept after the events expire: their leaves stay in the log."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from maip_events import aws
from maip_events.integrity import config
from maip_events.integrity.tree import TILE_WIDTH, TileKey

HEAD = "head"


@dataclass(frozen=True)
class Head:
    tree_size: int
    last_event_id: str | None
    checkpoint: dict[str, Any] | None


EMPTY = Head(0, None, None)


def tile_sk(key: TileKey) -> str:
    return f"tile#{key[0]}#{key[1]:012d}"


def ids_sk(chunk: int) -> str:
    return f"ids#{chunk:012d}"


def size_sk(tree_size: int) -> str:
    return f"size#{tree_size:016d}"


class SealConflict(Exception):
    """Another sealer moved the head since it was read."""


class IntegrityStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or config.table()

    def _key(self, tenant_id: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": tenant_id}, "sk": {"S": sk}}

    # ---- reads --------------------------------------------------------------------------------------------

    def head(self, tenant_id: str) -> Head:
        item = self.client.get_item(TableName=self.table, Key=self._key(tenant_id, HEAD), ConsistentRead=True).get("Item")
        if not item:
            return EMPTY
        return Head(int(item["tree_size"]["N"]), item.get("last_event_id", {}).get("S"), json.loads(item["checkpoint"]["S"]))

    def _batch_get(self, tenant_id: str, sks: list[str], projection: str | None = None) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(sks), 100):
            request: dict[str, Any] = {self.table: {"Keys": [self._key(tenant_id, sk) for sk in sks[start:start + 100]],
                                                    "ConsistentRead": True}}
            for _ in range(10):
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["sk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError("tile reads stayed unprocessed")
        return found

    def tiles(self, tenant_id: str, keys: list[TileKey]) -> dict[TileKey, bytes]:
        items = self._batch_get(tenant_id, [tile_sk(k) for k in keys])
        return {k: bytes(items[tile_sk(k)]["hashes"]["B"]) for k in keys if tile_sk(k) in items}

    def id_chunks(self, tenant_id: str, chunks: list[int]) -> dict[int, list[str]]:
        items = self._batch_get(tenant_id, [ids_sk(c) for c in chunks])
        return {c: items[ids_sk(c)]["ids"]["S"].split("\n") for c in chunks if ids_sk(c) in items}

    def locate(self, tenant_id: str, event_id: str) -> tuple[int, list[str]] | None:
        """The id chunk that holds `event_id` or would hold it (the last chunk whose first id <= event_id):
        (its start leaf index, its ids), or None when event_id sorts before every leaf."""
        response = self.client.query(
            TableName=self.table, IndexName="by_first_id", ConsistentRead=True, Limit=1, ScanIndexForward=False,
            KeyConditionExpression="pk = :pk AND first_id <= :id",
            ExpressionAttributeValues={":pk": {"S": tenant_id}, ":id": {"S": event_id}})
        items = response.get("Items") or []
        if not items:
            return None
        return int(items[0]["start"]["N"]), items[0]["ids"]["S"].split("\n")

    def leaf_index(self, tenant_id: str, event_id: str) -> int | None:
        found = self.locate(tenant_id, event_id)
        if found is None:
            return None
        start, ids = found
        return start + ids.index(event_id) if event_id in ids else None

    def checkpoint(self, tenant_id: str, tree_size: int) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(tenant_id, size_sk(tree_size)),
                                    ConsistentRead=True).get("Item")
        return json.loads(item["checkpoint"]["S"]) if item else None

    def checkpoints(self, tenant_id: str, sealed_from: str | None, sealed_to: str | None, limit: int) -> list[dict[str, Any]]:
        """Checkpoints with sealed_at in [from, to] (ISO strings compare as times: one fixed format), oldest first."""
        values = {":pk": {"S": tenant_id}, ":lo": {"S": sealed_from or "0"}, ":hi": {"S": sealed_to or "\U0010ffff"}}
        args: dict[str, Any] = {"TableName": self.table, "IndexName": "by_sealed_at", "ConsistentRead": True,
                                "KeyConditionExpression": "pk = :pk AND sealed_at BETWEEN :lo AND :hi",
                                "ExpressionAttributeValues": values, "Limit": limit}
        response = self.client.query(**args)
        return [json.loads(item["checkpoint"]["S"]) for item in response.get("Items", [])]

    # ---- the one write --------------------------------------------------------------------------------------

    def commit(self, tenant_id: str, expected_size: int, checkpoint: dict[str, Any], tiles: dict[TileKey, bytes],
               chunks: dict[int, list[str]]) -> None:
        """Writes a seal atomically if the head is still at `expected_size`; SealConflict otherwise."""
        text = json.dumps(checkpoint, separators=(",", ":"), ensure_ascii=False)
        head: dict[str, Any] = {"Put": {"TableName": self.table, "Item": {
            **self._key(tenant_id, HEAD), "tree_size": {"N": str(checkpoint["tree_size"])},
            "last_event_id": {"S": checkpoint["last_event_id"]}, "checkpoint": {"S": text}}}}
        if expected_size:
            head["Put"]["ConditionExpression"] = "tree_size = :expected"
            head["Put"]["ExpressionAttributeValues"] = {":expected": {"N": str(expected_size)}}
        else:
            head["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        operations = [head, {"Put": {"TableName": self.table, "Item": {
            **self._key(tenant_id, size_sk(checkpoint["tree_size"])), "checkpoint": {"S": text},
            "sealed_at": {"S": checkpoint["sealed_at"]}, "tree_size": {"N": str(checkpoint["tree_size"])}}}}]
        for key, hashes in tiles.items():
            operations.append({"Put": {"TableName": self.table, "Item": {**self._key(tenant_id, tile_sk(key)), "hashes": {"B": hashes}}}})
        for chunk, ids in chunks.items():
            operations.append({"Put": {"TableName": self.table, "Item": {
                **self._key(tenant_id, ids_sk(chunk)), "start": {"N": str(chunk * TILE_WIDTH)},
                "first_id": {"S": ids[0]}, "ids": {"S": "\n".join(ids)}}}})
        try:
            self.client.transact_write_items(TransactItems=operations)
        except self.client.exceptions.TransactionCanceledException as err:
            codes = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
            if {"ConditionalCheckFailed", "TransactionConflict"} & set(codes):
                raise SealConflict() from None
            raise
