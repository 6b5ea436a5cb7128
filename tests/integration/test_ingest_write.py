"""Issue 11 (write half) and issue 10 points 2-3: one item per POST, the idempotency record in the event's
transaction, truthful and retry-safe batches, un-storable text, write shards.

Failures are injected at the AWS client boundary (botocore event hooks on the process's DynamoDB client), and
outcomes are checked through the HTTP handlers and by counting stored rows.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from aggregation import settle
from support import invoke

EVENTS = "/v1/observability/events"
BATCH = "/v1/observability/events:batch"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@pytest.fixture
def emit():
    from functions.emit.app import lambda_handler

    def call(headers, body, key=None, path=EVENTS):
        return invoke(lambda_handler, "POST", path, headers={**headers, **({"Idempotency-Key": key} if key else {})}, body=body)

    return call


@pytest.fixture
def calls(aws):
    """Every DynamoDB request the handlers make: (operation, request parameters), in order."""
    from maip_events import aws as clients

    seen: list[tuple[str, dict]] = []
    client = clients.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb", lambda params, model, **_: seen.append((model.name, params)),
                                unique_id="test-calls")
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb", unique_id="test-calls")


def fail_write(number: int | set[int], error: Exception, after: bool = False):
    """Makes the `number`-th write request(s) of the process's DynamoDB client fail: before it reaches DynamoDB
    (nothing written) or, with after=True, once DynamoDB has committed it (a lost response)."""
    numbers = {number} if isinstance(number, int) else number
    from maip_events import aws as clients

    client = clients.dynamodb()
    count = {"n": 0}

    def hook(model, **_):
        if model.name in WRITES:
            count["n"] += 1
            if count["n"] in numbers:
                raise error

    event = "after-call.dynamodb" if after else "before-call.dynamodb"
    client.meta.events.register(event, hook, unique_id="test-fail")
    return lambda: client.meta.events.unregister(event, unique_id="test-fail")


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchWriteItem")


def stored_ids(aws, tenant: str = "t1") -> list[str]:
    """Every event row of `tenant`, across all its shards (a full scan: tests only)."""
    from maip_events.settings import get_settings

    items = aws.scan(TableName=get_settings().events_table)["Items"]
    return [i["event_id"]["S"] for i in items if i["tenant_id"]["S"] == tenant]


def listed(headers, **query) -> dict:
    from functions.list.app import lambda_handler

    status, page, _ = invoke(lambda_handler, "GET", EVENTS, headers=headers, query={"limit": "500", **query})
    assert status == 200, page
    return page


def events(n: int) -> list[dict]:
    return [{"event_type": "agent.registered", "agent_id": f"agent-{i % 3}", "metadata": {"i": i}} for i in range(n)]


# ---- one write per POST ------------------------------------------------------------------------------

def test_an_accepted_post_is_one_write_request_of_one_item(aws, headers, emit, calls):
    from maip_events.settings import get_settings

    # Given a warm tenant (its API key and settings already read once)
    emit(headers, {"event_type": "agent.registered"})
    calls.clear()
    # When an event is emitted without an Idempotency-Key
    status, created, _ = emit(headers, {"event_type": "agent.registered", "agent_id": "a-1", "metadata": {"k": "v"}})
    # Then it is stored with exactly one write request, a conditional PutItem of the event alone (no counters)
    assert status == 201
    writes = [(op, params) for op, params in calls if op in WRITES]
    assert [op for op, _ in writes] == ["PutItem"]
    (_, put), = writes
    assert put["TableName"] == get_settings().events_table and put["Item"]["event_id"]["S"] == created["id"]
    assert "attribute_not_exists" in put["ConditionExpression"]


def test_with_a_key_the_idempotency_record_is_written_in_the_same_transaction(aws, headers, emit, calls):
    from maip_events.settings import get_settings

    # When an event is emitted with an Idempotency-Key
    status, created, _ = emit(headers, {"event_type": "agent.registered"}, key="order-1")
    # Then exactly one write request: a TransactWriteItems of two items, the event and its idempotency record
    assert status == 201
    writes = [(op, params) for op, params in calls if op in WRITES]
    assert [op for op, _ in writes] == ["TransactWriteItems"]
    tables = [next(iter(item.values()))["TableName"] for item in writes[0][1]["TransactItems"]]
    assert tables == [get_settings().events_table, get_settings().idempotency_table]
    record = writes[0][1]["TransactItems"][1]["Put"]
    assert json.loads(record["Item"]["response"]["S"]) == created  # the response travels with the commit


def test_a_retry_after_a_lost_response_returns_the_first_event_and_stores_nothing_new(aws, headers, emit):
    # Given a POST whose write commits but whose response is lost (the client sees a failure)
    restore = fail_write(1, ReadTimeoutError(endpoint_url="https://dynamodb"), after=True)
    try:
        status, _, _ = emit(headers, {"event_type": "agent.registered", "agent_id": "a-1"}, key="lost-1")
    finally:
        restore()
    assert status == 500
    assert len(stored_ids(aws)) == 1  # it was committed
    # When the client retries with the same key
    status, body, response_headers = emit(headers, {"event_type": "agent.registered", "agent_id": "a-1"}, key="lost-1")
    # Then it gets the committed event back, marked as replayed, and still one row is stored
    assert status == 201 and response_headers.get("Idempotent-Replayed") == "true"
    assert stored_ids(aws) == [body["id"]]
    assert [i["event_id"] for i in listed(headers)["items"]] == [body["id"]]


# ---- batch: truthful and retry-safe --------------------------------------------------------------------

def test_a_storage_failure_in_a_later_chunk_is_answered_207_with_per_event_truth(aws, headers, emit):
    # Given a batch of 60 events whose second write request fails before reaching DynamoDB
    restore = fail_write(2, throttled())
    try:
        status, body, _ = emit(headers, {"events": events(60)}, path=BATCH)
    finally:
        restore()
    # Then 207, never a 500 after partial writes: each event's result says whether it is stored
    assert status == 207, body
    results = body["results"]
    created = {r["event"]["id"] for r in results if r["status"] == 201}
    failed = [r for r in results if r["status"] != 201]
    assert failed and all(r["status"] == 500 and r["error"]["code"] == "internal" for r in failed)
    assert all(r["error"]["details"] == [{"retryable": True}] for r in failed)
    assert body["succeeded"] == len(created) and body["failed"] == len(failed) == 60 - len(created)
    # And exactly the events answered 201 are stored and listed
    assert sorted(stored_ids(aws)) == sorted(created)
    assert {i["event_id"] for i in listed(headers)["items"]} == created


def test_a_retry_of_a_half_written_batch_with_the_same_key_stores_nothing_twice(aws, headers, emit):
    batch = {"events": events(60)}
    # Given a keyed batch whose second write request failed
    restore = fail_write(3, throttled())  # 1st write: the idempotency record; 2nd: events 0-24; 3rd: 25-49
    try:
        status, first, _ = emit(headers, batch, key="batch-1", path=BATCH)
    finally:
        restore()
    assert status == 207
    first_stored = {r["event"]["id"] for r in first["results"] if r["status"] == 201}
    assert 0 < len(first_stored) < 60 and sorted(stored_ids(aws)) == sorted(first_stored)
    # When the client retries the same batch with the same key
    status, second, _ = emit(headers, batch, key="batch-1", path=BATCH)
    # Then every event is stored once: the events stored the first time keep their ids, the rest are added
    assert status == 200, second
    ids = [r["event"]["id"] for r in second["results"]]
    assert first_stored <= set(ids) and len(set(ids)) == 60
    assert sorted(stored_ids(aws)) == sorted(ids)
    # And a third retry replays the final response, storing nothing
    status, third, third_headers = emit(headers, batch, key="batch-1", path=BATCH)
    assert status == 200 and third == second and third_headers.get("Idempotent-Replayed") == "true"
    assert len(stored_ids(aws)) == 60
    # And the key reused with another body is a conflict that stores nothing
    status, body, _ = emit(headers, {"events": events(3)}, key="batch-1", path=BATCH)
    assert status == 409 and body["error"]["code"] == "conflict"
    assert len(stored_ids(aws)) == 60


def test_a_batch_whose_responses_were_lost_is_answered_truthfully_and_not_stored_again_on_retry(aws, headers, emit):
    batch = {"events": events(30)}
    # Given a keyed batch whose last events write committed but whose response was lost, and whose final
    # idempotency bookkeeping then failed (writes: 1 record, 2 events 0-24, 3 events 25-29, 4 record complete)
    restore_lost = fail_write(3, ReadTimeoutError(endpoint_url="https://dynamodb"), after=True)
    try:
        status, first, _ = emit(headers, batch, key="batch-lost", path=BATCH)
    finally:
        restore_lost()
    # Then the answer is the truth: every event is stored (read back after the lost response), so 200
    assert status == 200 and first["succeeded"] == 30
    assert sorted(stored_ids(aws)) == sorted(r["event"]["id"] for r in first["results"])
    # When the same batch is sent again and this time the record's completion fails after its events are written
    restore_fail = fail_write(3, throttled())
    try:
        status, second, _ = emit(headers, {"events": events(5)}, key="batch-lost-2", path=BATCH)
    finally:
        restore_fail()
    assert status == 200 and len(stored_ids(aws)) == 35
    # And a retry of that one (its record still pending) re-drives the same ids: the same answer, nothing twice
    status, again, _ = emit(headers, {"events": events(5)}, key="batch-lost-2", path=BATCH)
    assert status == 200 and again == second
    assert len(stored_ids(aws)) == 35
    # And the first one replays its stored response
    status, replay, replay_headers = emit(headers, batch, key="batch-lost", path=BATCH)
    assert status == 200 and replay == first and replay_headers.get("Idempotent-Replayed") == "true"
    assert len(stored_ids(aws)) == 35


# ---- un-storable text ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"event_type": "agent.registered", "metadata": {"note": "\udfff"}}, "metadata.note"),
    ({"event_type": "agent.registered", "metadata": {"list": ["ok", {"deep": "a\ud800b"}]}}, "metadata.list.1.deep"),
    ({"event_type": "agent.registered", "agent_id": "agent-\udfff"}, "agent_id"),
    ({"event_type": "agent.registered", "resource_id": "\ud83d"}, "resource_id"),
])
def test_a_lone_surrogate_in_an_emit_is_a_400_naming_the_field_and_stores_nothing(aws, headers, emit, body, field):
    # When an event carries text UTF-8 cannot encode (JSON allows "\udfff"; DynamoDB cannot store it)
    status, answer, _ = emit(headers, body)
    # Then 400 invalid_request naming the field, and nothing is stored
    assert status == 400 and answer["error"]["code"] == "invalid_request", answer
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert stored_ids(aws) == []


def test_a_lone_surrogate_in_a_metadata_key_is_a_400(aws, headers, emit):
    status, answer, _ = emit(headers, {"event_type": "agent.registered", "metadata": {"k\udfff": 1}})
    assert status == 400 and answer["error"]["details"][0]["field"].startswith("metadata.k")
    assert stored_ids(aws) == []


def test_a_lone_surrogate_anywhere_in_a_batch_is_a_400_naming_the_event_and_field_and_stores_nothing(aws, headers, emit):
    # Given a batch whose 4th event has an un-storable agent id, and whose others are valid
    items = events(5)
    items[3]["agent_id"] = "\udfff"
    # When it is sent (with or without a key)
    for key in (None, "batch-sur"):
        status, answer, _ = emit(headers, {"events": items}, key=key, path=BATCH)
        # Then 400 naming events.3.agent_id, and nothing at all is stored
        assert status == 400 and answer["error"]["code"] == "invalid_request"
        assert [d["field"] for d in answer["error"]["details"]] == ["events.3.agent_id"]
    assert stored_ids(aws) == []


# ---- write shards --------------------------------------------------------------------------------------

def test_changing_the_shard_count_keeps_every_event_listed_once_newest_first(aws, headers, emit, monkeypatch, capsys):
    from maip_events.settings import get_settings
    from maip_events_local.cli import main

    monkeypatch.setenv("MAIP_SHARD_SWITCH_DELAY", "0")  # no Lambda caches to wait for in-process
    ids = [emit(headers, {"event_type": "agent.registered", "agent_id": "a"})[1]["id"] for _ in range(4)]
    # Given the tenant moves to 4 write shards, then down to 2, emitting between changes
    assert main(["tenants", "set-write-shards", "--tenant", "t1", "--shards", "4", "--json"]) == 0
    ids += [emit(headers, {"event_type": "agent.registered", "agent_id": "a"})[1]["id"] for _ in range(24)]
    status, batch, _ = emit(headers, {"events": events(6)}, path=BATCH)
    ids += [r["event"]["id"] for r in batch["results"]]
    assert main(["tenants", "set-write-shards", "--tenant", "t1", "--shards", "2", "--json"]) == 0
    ids += [emit(headers, {"event_type": "session.created", "agent_id": "a"})[1]["id"] for _ in range(8)]
    capsys.readouterr()
    # Then events really are spread over several partition keys
    keys = {i["pk"]["S"] for i in aws.scan(TableName=get_settings().events_table)["Items"]}
    assert {"t1#0", "t1#1", "t1#2", "t1#3"} <= keys
    # And the list returns every event once, newest first, with an exact total, for every filter
    settle()
    page = listed(headers)
    assert [i["event_id"] for i in page["items"]] == sorted(ids, reverse=True) and page["total"] == len(ids)
    assert listed(headers, agent_id="a")["total"] == len(ids) - 6  # the batch's agents are agent-0..2
    assert listed(headers, agent_id="agent-1")["total"] == 2
    assert len(listed(headers, event_type="session.created")["items"]) == 8
    # And paging with next_token across shards has no duplicates or gaps
    seen, query = [], {"limit": "7"}
    while True:
        page = listed(headers, **query)
        seen += [i["event_id"] for i in page["items"]]
        if not page["next_token"]:
            break
        query = {"limit": "7", "next_token": page["next_token"]}
    assert seen == sorted(ids, reverse=True)


def test_cli_set_write_shards_prints_one_json_document_and_never_shrinks_read_shards(aws, capsys):
    from maip_events_local.cli import main

    # When an operator sets 4 write shards, then 2
    assert main(["tenants", "set-write-shards", "--tenant", "acme", "--shards", "4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["tenants", "set-write-shards", "--tenant", "acme", "--shards", "2", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    # Then each prints one JSON document; readers at once read the 4 shards that may hold events, while
    # writers switch only after the Lambdas' settings caches (30 s) have expired (default delay 35 s)
    assert first["tenant_id"] == "acme" and first["write_shards"] == 4 and first["read_shards"] == 4
    assert second["write_shards"] == 2 and second["read_shards"] == 4
    switch = datetime.fromisoformat(second["write_shards_from"].replace("Z", "+00:00"))
    assert switch > datetime.now(timezone.utc) + timedelta(seconds=30)
    assert main(["tenants", "show", "--tenant", "acme", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["write_shards"] == 1 and shown["read_shards"] == 4  # still the old count until the switch
    # And an out-of-range count is refused with a JSON error and exit code 2
    assert main(["tenants", "set-write-shards", "--tenant", "acme", "--shards", "65", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "invalid_request"


def test_shard_of_is_deterministic_and_spreads_ids():
    from maip_events.ids import new_event_id
    from maip_events.store.events import shard_of

    ids = [new_event_id()[0] for _ in range(4000)]
    assert all(shard_of(i, 1) == 0 for i in ids[:10])
    assert [shard_of(i, 8) for i in ids[:50]] == [shard_of(i, 8) for i in ids[:50]]
    per_shard = [sum(1 for i in ids if shard_of(i, 8) == s) for s in range(8)]
    assert min(per_shard) > 350  # ~500 each


# ---- cached reads on the request path ------------------------------------------------------------------

def test_a_cached_api_key_is_read_once_and_its_revocation_takes_effect_within_the_cache_ttl(aws, tenant_key, headers, emit, calls,
                                                                                               monkeypatch):
    from maip_events import settings
    from maip_events.auth import keys
    from maip_events.store.keys import ApiKeyStore

    # Given a deployed-like API key cache of 5 s and a controllable clock
    monkeypatch.setenv("MAIP_API_KEY_CACHE_TTL", "5")
    settings.reset()
    now = {"t": 1000.0}
    from maip_events import freshness

    monkeypatch.setattr(freshness.time, "monotonic", lambda: now["t"])
    # When a client emits several events
    for _ in range(3):
        assert emit(headers, {"event_type": "agent.registered"})[0] == 201
    # Then its key was read from DynamoDB once
    key_reads = [p for op, p in calls if op == "GetItem" and p["TableName"] == settings.get_settings().keys_table]
    assert len(key_reads) == 1
    # When another process revokes the key (this process's cache is not told)
    ApiKeyStore().mark_revoked(keys.hash_key(tenant_key["api_key"]), "2026-11-23T00:00:00.000Z")
    # Then it may still be accepted until the cache entry expires, and is refused once 5 s have passed
    now["t"] += 4.9
    assert emit(headers, {"event_type": "agent.registered"})[0] == 201
    now["t"] += 0.2
    assert emit(headers, {"event_type": "agent.registered"})[0] == 401
    # And a key revoked through this process (CLI, API) is refused at once, cache or not
    from support import key_headers

    other = key_headers("t1", ["*"])
    assert emit(other, {"event_type": "agent.registered"})[0] == 201
    keys.revoke_api_key(keys.lookup_api_key(other["X-API-Key"])["key_id"])
    assert emit(other, {"event_type": "agent.registered"})[0] == 401
