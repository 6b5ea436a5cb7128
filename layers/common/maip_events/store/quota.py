"""QuotaTable: shared per-tenant token buckets (request quota, replay budget), one item per bucket.

Each bucket is a GCRA (generic cell rate algorithm) state of one number, `tat`, the theoretical arrival time
(epoch seconds): taking k tokens moves it to max(tat, now) + k/rate and is allowed while the result stays
within burst/rate of now. That is one conditional UpdateItem per take, with no read: DynamoDB cannot compute
max(), so the two cases are two condition branches and a failed condition returns the stored `tat`
(ReturnValuesOnConditionCheckFailure) to pick the right branch or size on the next try."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from maip_events import aws
from maip_events.settings import get_settings

EXPIRY = 86400  # a bucket idle this long is full again anyway; TTL removes it
ATTEMPTS = 4


@dataclass(frozen=True)
class Grant:
    tokens: int  # tokens taken (0 = refused)
    retry_after: float  # refused: seconds until `min_tokens` conform


class QuotaStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().quota_table

    def take(self, bucket: str, wanted: int, rate: float, burst: float, now: float, min_tokens: int = 1) -> Grant:
        """Takes up to `wanted` tokens (at least `min_tokens`, else none) from `bucket` refilling at `rate` per
        second up to `burst`."""
        per_token = 1.0 / rate
        tolerance = burst * per_token
        seen: float | None = None  # the stored tat, once a failed condition told us
        for _ in range(ATTEMPTS):
            if seen is None or seen <= now:  # idle bucket (or never used): full
                tokens = max(0, min(wanted, math.floor(burst)))
                if tokens < min_tokens:
                    return Grant(0, per_token * min_tokens)
                args = {"UpdateExpression": "SET tat = :new, expires_at = :exp",
                        "ConditionExpression": "attribute_not_exists(tat) OR tat <= :now",
                        "ExpressionAttributeValues": {":new": _n(now + tokens * per_token), ":now": _n(now)}}
            else:
                available = math.floor((now + tolerance - seen) / per_token + 1e-9)
                if available < min_tokens:
                    return Grant(0, seen + min_tokens * per_token - tolerance - now)
                tokens = min(wanted, available)
                args = {"UpdateExpression": "SET tat = tat + :inc, expires_at = :exp",
                        "ConditionExpression": "tat > :now AND tat <= :limit",
                        "ExpressionAttributeValues": {":inc": _n(tokens * per_token), ":now": _n(now),
                                                      ":limit": _n(now + tolerance - tokens * per_token)}}
            args["ExpressionAttributeValues"][":exp"] = {"N": str(int(now) + EXPIRY)}
            try:
                self.client.update_item(TableName=self.table, Key={"bucket": {"S": bucket}},
                                        ReturnValuesOnConditionCheckFailure="ALL_OLD", **args)
            except self.client.exceptions.ConditionalCheckFailedException as failed:
                item = failed.response.get("Item") or {}
                seen = float(item["tat"]["N"]) if "tat" in item else None
                continue
            return Grant(tokens, 0.0)
        return Grant(0, per_token * min_tokens)  # lost every race: a busy bucket, try again shortly

    def give_back(self, bucket: str, tokens: int, rate: float, now: float) -> None:
        """Returns unused tokens (a replay that found fewer events than it reserved). The bucket never fills
        past full: if giving back would move `tat` before `now`, it becomes `now` (full)."""
        if tokens <= 0:
            return
        dec, floor = tokens / rate, now + tokens / rate
        try:
            self.client.update_item(TableName=self.table, Key={"bucket": {"S": bucket}}, UpdateExpression="SET tat = tat - :dec",
                                    ConditionExpression="tat >= :floor", ExpressionAttributeValues={":dec": _n(dec), ":floor": _n(floor)})
            return
        except self.client.exceptions.ConditionalCheckFailedException:
            pass
        try:
            self.client.update_item(TableName=self.table, Key={"bucket": {"S": bucket}}, UpdateExpression="SET tat = :now",
                                    ConditionExpression="tat > :now AND tat < :floor", ExpressionAttributeValues={":now": _n(now), ":floor": _n(floor)})
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # already full

    def hold(self, name: str, until: float, now: float) -> float:
        """A named exclusive hold (e.g. one running replay per webhook) until `until`; 0.0 if taken, else the
        seconds left on the current holder's hold."""
        try:
            self.client.update_item(TableName=self.table, Key={"bucket": {"S": name}},
                                    UpdateExpression="SET held_until = :until, expires_at = :exp",
                                    ConditionExpression="attribute_not_exists(held_until) OR held_until <= :now",
                                    ExpressionAttributeValues={":until": _n(until), ":now": _n(now),
                                                               ":exp": {"N": str(int(until) + EXPIRY)}},
                                    ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except self.client.exceptions.ConditionalCheckFailedException as failed:
            item = failed.response.get("Item") or {}
            return max(0.001, float(item["held_until"]["N"]) - now) if "held_until" in item else 1.0
        return 0.0

    def release(self, name: str, until: float) -> None:
        """Ends a hold early (only the holder's own hold: a later holder's is kept)."""
        try:
            self.client.update_item(TableName=self.table, Key={"bucket": {"S": name}}, UpdateExpression="REMOVE held_until",
                                    ConditionExpression="held_until = :until", ExpressionAttributeValues={":until": _n(until)})
        except self.client.exceptions.ConditionalCheckFailedException:
            pass


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}
