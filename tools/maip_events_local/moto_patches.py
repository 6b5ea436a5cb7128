"""Five moto hot spots (and two locks: see _serialize_writes, _serialize_queues) that make the local stack slow down as tables grow or as requests run concurrently; `install()` fixes them in-process.

1. TransactWriteItems deep-copies every touched table, once per item, for rollback: O(table size) per emit
   (every emit is one transaction: the event + its count buckets). Replaced by a two-phase version with the
   same semantics: check every condition first (nothing written if one fails, CancellationReasons as moto
   reports them), then apply, rolling back only the touched items should an apply step fail.
2. Query sorts every item of the table (with slow typed comparisons) before picking the partition and then
   tests every item of it: O(T log T) per Query. During a Query, `all_items()` now yields only the items of
   the queried partition (or GSI hash value) that satisfy the key condition and follow the start key, sorted
   by raw key value; moto then runs its own logic on that subset. The query is passed through a thread-local,
   so concurrent requests of the threaded server are safe.

3. Counter updates (`ADD n :n SET ...`) go through moto's generic update-expression machinery (~10 ms each);
   inside a transaction, on a table without a stream, they are applied directly.

4. Moto's server routes every request to its backend under one global lock, and that routing lists moto's
   package directory (~175 `isdir` calls) and tries ~2,000 URL patterns: ~6 ms per request, serialised, so the
   whole embedded AWS capped at ~150 requests/s. The host -> backend answer never changes: it is memoised.
5. GetRecords answers go through moto's generic, shape-driven response serializer: ~8 ms per stream record, so
   the two stream readers cost the embedded DynamoDB several times what the writes themselves cost. The records
   are already DynamoDB JSON: they are dumped with moto's own DynamoDB JSON encoder, as its older versions did
   (same wire document: timestamps as epoch seconds, binary as base64).

Local stack, tests and benches only; never imported by Lambda code.
"""
from __future__ import annotations

import copy
import re
import threading
from typing import Any

_query_scope = threading.local()

_installed = False


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    plan: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    errors: list[tuple[Any, Any, Any]] = []
    for entry in transact_items:  # phase 1: validate and check conditions, write nothing
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        marker = (op["TableName"], str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        plan.append((op_type, op["TableName"], key, op))
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = current.to_json()["Attributes"] if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
            errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
        else:
            errors.append((None, None, None))
    if any(code for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    snapshots = [(name, key, copy.deepcopy(self.get_item(name, key))) for _, name, key, _ in plan]
    try:  # phase 2: apply
        for op_type, name, key, op in plan:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(name, key, expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update" and not _counter_update(self, name, key, op):
                self.update_item(name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    except Exception:
        for name, key, old in snapshots:
            table = self.get_table(name)
            hash_value = key[table.hash_key_attr]
            from moto.dynamodb.models.dynamo_type import DynamoType

            hash_key = DynamoType(hash_value)
            if table.range_key_attr is not None:
                range_key = DynamoType(key[table.range_key_attr])
                if old is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = old
            elif old is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = old
        raise


_COUNTER_UPDATE = re.compile(r"ADD ([#\w]+) (:\w+) SET ((?:[#\w]+ = :\w+)(?:, [#\w]+ = :\w+)*)")


def _counter_update(backend: Any, table_name: str, key: dict[str, Any], op: dict[str, Any]) -> bool:
    """3. The count aggregation's `ADD n :n SET a = :x, ...` on a table without a stream, applied directly:
    moto parses and validates every update expression with a slow generic AST walk (~10 ms per item).
    False (not applied) for any other update, which then takes moto's own path."""
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DynamoType

    found = _COUNTER_UPDATE.fullmatch(op["UpdateExpression"])
    table = backend.get_table(table_name)
    if not found or getattr(table, "stream_shard", None) is not None:
        return False
    names, values = op.get("ExpressionAttributeNames") or {}, op["ExpressionAttributeValues"]
    add_name, add_value = names.get(found.group(1), found.group(1)), values[found.group(2)]
    sets = [part.split(" = ") for part in found.group(3).split(", ")]
    if "N" not in add_value:
        return False
    item = backend.get_item(table_name, key)
    if item is None:
        attrs = {**key, add_name: add_value, **{names.get(n, n): values[v] for n, v in sets}}
        table.put_item(attrs)
        return True
    old = item.attrs.get(add_name)
    total = Decimal(add_value["N"]) + (Decimal(old.value) if old is not None else 0)
    item.attrs[add_name] = DynamoType({"N": str(total)})
    for n, v in sets:
        item.attrs[names.get(n, n)] = DynamoType(values[v])
    return True


def _raw(value: Any) -> Any:
    return value.value if getattr(value, "type", None) == "S" else value.cast_value


def _patch_query() -> None:
    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items
    names = ("range_comparison", "range_objs", "limit", "exclusive_start_key", "scan_index_forward",
             "projection_expressions", "index_name")

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        call = {**dict(zip(names, args)), **kwargs}
        _query_scope.value = (self, hash_key, call)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _query_scope.value = None

    def all_items(self: Any) -> list:
        scope = getattr(_query_scope, "value", None)
        if not scope or scope[0] is not self or scope[1] is None:
            return original_all_items(self)
        _, hash_key, call = scope
        index_name = call.get("index_name")
        if index_name:  # GSI: the items carrying the index hash value
            schema = self.get_index(index_name).schema
            hash_attr = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
            range_attr = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
            wanted = _raw(hash_key)
            items = [i for hs in self.items.values() for i in (hs.values() if self.range_key_attr else [hs])
                     if hash_attr in i.attrs and _raw(i.attrs[hash_attr]) == wanted]
        else:
            found = self.items.get(hash_key)
            items = [] if found is None else (list(found.values()) if self.range_key_attr else [found])
            range_attr = self.range_key_attr
        if not range_attr:
            return items
        # Pre-apply the key condition and the start key with raw comparisons, and pre-sort (moto's own sort is then linear).
        keyed = [(_raw(i.attrs[range_attr]), i) for i in items if range_attr in i.attrs]
        if call.get("range_comparison"):
            compare = get_comparison_func(call["range_comparison"])
            bounds = [_raw(v) for v in call.get("range_objs") or []]
            keyed = [(k, i) for k, i in keyed if compare(k, *bounds)]
        start = call.get("exclusive_start_key")
        if start and range_attr in start and not index_name:
            edge = next(iter(start[range_attr].values()))
            forward = call.get("scan_index_forward", True) is not False
            keyed = [(k, i) for k, i in keyed if (k > edge if forward else k < edge)]
        keyed.sort(key=lambda pair: pair[0])
        return [i for _, i in keyed]

    Table.query, Table.all_items = query, all_items


def install() -> None:
    """Patch moto's DynamoDB and SQS backends in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend

    DynamoDBBackend.transact_write_items = _transact_write_items
    _patch_query()
    _serialize_writes(DynamoDBBackend)
    _serialize_queues()
    _memoise_routing()
    _dump_stream_records()
    _installed = True


def _dump_stream_records() -> None:
    """5. GetRecords as one json.dumps of the records (moto's DynamoDB JSON encoder), not the generic serializer."""
    from moto.dynamodb.models.utilities import dynamo_json_dump
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    def get_records(self: Any) -> str:
        limit = self._get_param("Limit")
        return dynamo_json_dump(self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit))

    DynamoDBStreamsHandler.get_records = get_records


def _memoise_routing() -> None:
    """4. host -> backend name, computed once per host (the module list and URL patterns are fixed at import)."""
    import functools

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}  # a handful of hosts: one per service and region

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:  # callers hold the dispatcher's lock: one computation per host
            known[host] = original(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# DynamoDB applies each write atomically; moto's backend reads, modifies and stores items without a lock, so
# two concurrent requests (the gateway runs handlers in parallel worker processes) could lose an update, e.g.
# two ADDs on one counter. One lock around moto's write operations restores DynamoDB's atomicity; reads stay
# concurrent. (Moto only: the embedded DynamoDB, never Lambda code.)
_WRITE_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _serialize_writes(backend: Any) -> None:
    import functools

    for name in _WRITES:
        original = getattr(backend, name, None)
        if original is None:
            continue

        def locked(*args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
            with _WRITE_LOCK:
                try:
                    return __original(*args, **kwargs)
                finally:
                    _note_change(__name, args, kwargs)

        setattr(backend, name, functools.wraps(original)(locked))


# Change counter of the tables that workers cache (API keys, tenant settings): bumped after every write to them,
# while the write lock is held, so a worker whose entry was read before the bump sees the counter move
# (maip_events.freshness). Set by the local stack before it spawns its workers; None in tests and benches.
_change_counter: Any = None
_tracked: frozenset[str] = frozenset()


def track_changes(counter: Any, tables: set[str]) -> None:
    """Bump `counter.value` (a multiprocessing.Value shared with the workers) after any write to `tables`."""
    global _change_counter, _tracked
    _change_counter, _tracked = counter, frozenset(tables)


def _note_change(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _change_counter is None:
        return
    if operation == "transact_write_items":
        items = kwargs.get("transact_items", args[1] if len(args) > 1 else [])
        names = {next(iter(entry.values())).get("TableName") for entry in items}
    else:
        names = {kwargs.get("table_name", args[1] if len(args) > 1 else None)}
    if names & _tracked:
        _change_counter.value += 1


# SQS hands a visible message to one receiver only. Moto's ReceiveMessage picks visible messages and marks them
# received without a lock, so two concurrent receives (the poller runs MaximumConcurrency instances per queue)
# could both take one message: a webhook delivered twice. A delete also rebuilds the message list unlocked
# (a message sent meanwhile could be lost). One lock around each receive pass, delete, visibility change and
# send restores SQS's semantics; a long poll waits outside the lock, so it never holds up senders.
_QUEUE_LOCK = threading.RLock()
_QUEUE_OPS = ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "purge_queue")


def _serialize_queues() -> None:
    import functools
    import time

    from moto.sqs.models import SQSBackend

    for name in _QUEUE_OPS:
        original = getattr(SQSBackend, name, None)
        if original is None:
            continue

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _QUEUE_LOCK:
                return __original(*args, **kwargs)

        setattr(SQSBackend, name, functools.wraps(original)(locked))

    receive = SQSBackend.receive_message

    @functools.wraps(receive)
    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                        message_attribute_names: list[str] | None = None) -> list:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with _QUEUE_LOCK:  # one pass, no waiting: pick and mark atomically
                result = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if result or remaining <= 0:
                return result
            self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))

    SQSBackend.receive_message = receive_message
