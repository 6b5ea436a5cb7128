"""Canned DynamoDB answers for the warm-ratio benches (bench/foundation.py, bench/ingest_read.py).

Answers short-circuit botocore like Stubber does, so a handler and its raw baseline (a stubbed put_item or query
on the same client) pay the same client-side cost (serialisation, user agent, hooks): the API key item of the
given headers, a page of `page_size` events, and counts as the aggregation keeps them (store/counts.py): the
previous hour closed with 5,000 events, the minute before now counted, the page's events newer than that."""
from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class WarmStub:
    def __init__(self, headers: dict[str, str], page_size: int, unique_id: str = "bench-stub"):
        from maip_events import aws
        from maip_events.auth.keys import hash_key
        from maip_events.events import build_event
        from maip_events.models.events import EmitEventRequest
        from maip_events.settings import get_settings
        from maip_events.store import counts
        from maip_events.store.events import to_item

        tenant = headers["X-Tenant-ID"]
        self.client, self.settings, self.unique_id = aws.dynamodb(), get_settings(), unique_id
        self.key_item = {"Item": {"key_hash": {"S": hash_key(headers["X-API-Key"])}, "key_id": {"S": "maip-key:1"},
                                  "tenant_id": {"S": tenant}, "scopes": {"L": [{"S": "*"}]},
                                  "created_at": {"S": "2026-11-23T00:00:00.000Z"}}}
        sample = EmitEventRequest(event_type="agent.registered", agent_id="agent-1", metadata={"region": "eu-west-1", "n": 1})
        self.item = to_item(build_event(tenant, sample))  # what a raw put_item baseline writes
        self.page = {"Items": [to_item(build_event(tenant, sample)) for _ in range(page_size)], "Count": page_size,
                     "ScannedCount": page_size}
        # As the aggregation leaves a busy tenant: the previous hour closed, the minutes of this one counted.
        now = int(time.time() * 1000)
        minute, hour = counts.floor(now, counts.MINUTE) - 60_000, counts.floor(now, counts.HOUR) - 3_600_000
        self.recent = {"Items": [{"sk": {"S": counts.prefix(minute, counts.MINUTE)}, "all": {"N": "80"}},
                                 {"sk": {"S": counts.prefix(hour, counts.HOUR) + counts.MARKER}}], "Count": 2, "ScannedCount": 2}
        self.hours = {"Items": [{"sk": {"S": counts.prefix(hour, counts.HOUR)}, "n": {"N": "5000"}}], "Count": 1, "ScannedCount": 1}
        self.empty = {"Items": [], "Count": 0, "ScannedCount": 0}
        self.tenant = tenant

    def _answer(self, model: Any, params: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(params["body"])  # before-call sees the serialised request
        table = body.get("TableName")
        if model.name == "GetItem":
            return self.key_item if table == self.settings.keys_table else {}
        if model.name == "Query":
            if table == self.settings.events_table:
                return self.page
            pk = body["ExpressionAttributeValues"][":p"]["S"]
            if pk == f"{self.tenant}#mc":
                return self.recent
            return self.hours if pk == f"{self.tenant}#h#all" else self.empty
        return {}

    def _respond(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        return AWSResponse("https://stub", 200, {}, None), self._answer(model, params)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The canned answers on the process's DynamoDB client for the duration."""
        self.client.meta.events.register_first("before-call.dynamodb", self._respond, unique_id=self.unique_id)
        try:
            yield
        finally:
            self.client.meta.events.unregister("before-call.dynamodb", unique_id=self.unique_id)

    def timed(self, rounds: int, *fns: Callable[[], Any], check: bool = False) -> list[float]:
        """Median time of each function, calls interleaved so that every one sees the same machine load (with
        `check`, each result that carries a statusCode must be a success)."""
        samples: list[list[float]] = [[] for _ in fns]
        with self.installed():
            for _ in range(rounds):
                for fn, times in zip(fns, samples):
                    t0 = time.perf_counter()
                    result = fn()
                    times.append(time.perf_counter() - t0)
                    if check:
                        assert result.get("statusCode", 200) < 300, result
        return [statistics.median(times) for times in samples]
