"""bench/cost.py's pricing rules on hand-made items: DynamoDB sizes, write and read units, index copies, storage,
SQS chunks and S3 lifecycle storage (pure functions; the bench itself never runs in the tests)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import cost  # noqa: E402

GSI = {"IndexName": "by_agent", "KeySchema": [{"AttributeName": "agent_pk", "KeyType": "HASH"},
                                              {"AttributeName": "event_id", "KeyType": "RANGE"}],
       "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["payload"]}}
TABLE = cost.table_of({"TableName": "events", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                            {"AttributeName": "event_id", "KeyType": "RANGE"}],
                       "GlobalSecondaryIndexes": [GSI], "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True}})


def event(payload_bytes: int, agent: str | None = "a1") -> dict:
    item = {"pk": {"S": "t#0"}, "event_id": {"S": "e1"}, "payload": {"S": "x" * payload_bytes}, "note": {"S": "y" * 50}}
    if agent:
        item["agent_pk"] = {"S": f"t#{agent}"}
    return item


def test_item_size_follows_dynamodb_rules():
    item = {"pk": {"S": "abc"},  # 2 + 3
            "n": {"N": "123.450"},  # 1 + (5 significant digits -> 3) + 1
            "b": {"B": b"\x00\x01"},  # 1 + 2
            "ok": {"BOOL": True},  # 2 + 1
            "l": {"L": [{"S": "x"}, {"N": "1"}]},  # 1 + 3 + (1 + 1) + (2 + 1)
            "m": {"M": {"k": {"S": "v"}}}}  # 1 + 3 + (1 + 1 + 1)
    assert cost.item_size(item) == 5 + 5 + 3 + 3 + 9 + 7
    assert cost.value_size({"B": "AAE="}) == 2  # base64 text as in DynamoDB JSON
    assert cost.value_size({"SS": ["ab", "c"]}) == 3
    assert cost.item_size(None) == 0


def test_write_and_read_units_round_up_per_request():
    assert [cost.write_units(s) for s in (0, 1, 1024, 1025, 3000)] == [1, 1, 1, 2, 3]
    assert cost.read_units(4096, consistent=True) == 1
    assert cost.read_units(4097, consistent=True) == 2
    assert cost.read_units(8193, consistent=False) == 1.5
    assert cost.read_units(0, consistent=False) == 0.5  # an empty page still costs the minimum
    assert cost.read_units(100, consistent=True, transactional=True) == 2


def test_put_of_a_new_item_costs_the_table_and_each_index_it_enters():
    new = event(1500)
    entry = TABLE.indexes[0].entry(new)
    assert set(entry) == {"pk", "event_id", "agent_pk", "payload"}  # table keys, index keys and INCLUDE's, not "note"
    table_units, indexes = cost.item_write(TABLE, None, new)
    assert table_units == 2 and indexes == {"by_agent": 2}
    # In a transaction the table write doubles; the index copy does not.
    assert cost.item_write(TABLE, None, new, transactional=True) == (4, {"by_agent": 2})
    # A sparse index: an item without the index key is not copied.
    assert cost.item_write(TABLE, None, event(1500, agent=None)) == (2, {})


def test_updates_cost_the_larger_image_and_index_moves_cost_two_writes():
    small, big = event(800), event(1100)
    assert cost.item_write(TABLE, big, small)[0] == 2  # the larger of before and after
    assert cost.item_write(TABLE, small, small) == (1, {})  # index entry unchanged: no index write
    moved = cost.item_write(TABLE, event(100, "a1"), event(100, "a2"))
    assert moved == (1, {"by_agent": 2})  # index key changed: delete + put
    left = cost.item_write(TABLE, event(100, "a1"), event(100, agent=None))
    assert left == (1, {"by_agent": 1})
    assert cost.item_write(TABLE, big, None) == (2, {"by_agent": 2})  # delete


def test_failed_conditions_and_condition_checks_still_cost():
    existing = event(1500)
    assert cost.item_write(TABLE, existing, existing, failed=True) == (2, {})
    assert cost.item_write(TABLE, None, None, failed=True) == (1, {})
    assert cost.item_write(TABLE, existing, existing, check=True) == (4, {})


def test_stored_bytes_count_every_index_entry_and_100_bytes_each():
    item = event(500)
    total, base = TABLE.stored_bytes(item)
    assert base == cost.item_size(item) + 100
    assert total == base + cost.item_size(TABLE.indexes[0].entry(item)) + 100
    assert TABLE.ttl_attribute == "expires_at"


def test_sqs_bills_each_64_kb_chunk():
    assert [cost.sqs_requests(n) for n in (0, 65536, 65537)] == [1, 1, 2]


def test_s3_storage_follows_lifecycle_transitions_minimums_and_history():
    rule = cost.Rule(prefix="events/", tags=(), expiration_days=None, transitions=((30.0, "GLACIER_IR"),))
    size = 64 * 1024 * 1024
    month = cost.DAYS_PER_MONTH
    expected = size / cost.GB * (30 / month * 0.023 + 335 / month * 0.004) + 0.02 / 1000
    assert cost.s3_object_cost(size, float("inf"), "STANDARD", (rule,), "events/x.parquet", {}, 365) == pytest.approx(expected)
    # Not matching the rule's prefix: Standard for the whole history.
    assert cost.s3_object_cost(size, float("inf"), "STANDARD", (rule,), "other/x", {}, 365) == pytest.approx(
        size / cost.GB * 365 / month * 0.023)
    # A small Glacier IR object is billed 128 KB for at least 90 days, even if deleted after one.
    assert cost.s3_object_cost(1000, 1.0, "GLACIER_IR", (), "k", {}, 365) == pytest.approx(128 * 1024 / cost.GB * 90 / month * 0.004)
    expiring = cost.Rule(prefix="", tags=(("archive-days", "30"),), expiration_days=30.0, transitions=())
    assert cost.s3_object_cost(size, float("inf"), "STANDARD", (expiring,), "k", {"archive-days": "30"}, 365) == pytest.approx(
        size / cost.GB * 30 / month * 0.023)


def test_schedules_parse_rate_and_cron():
    assert cost.parse_schedule("rate(5 minutes)") == (300, 0.0)
    assert cost.parse_schedule("rate(1 day)") == (86400, 0.0)
    assert cost.parse_schedule("cron(15 2 * * ? *)") == (86400.0, 2 * 3600 + 15 * 60)
    assert cost.parse_schedule("cron(0 * * * ? *)") == (3600.0, 0.0)


def test_local_indexes_are_part_of_the_table_size_for_backups():
    lsi = {"IndexName": "by_first", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                  {"AttributeName": "first", "KeyType": "RANGE"}],
           "Projection": {"ProjectionType": "ALL"}}
    table = cost.table_of({"TableName": "log", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                           "LocalSecondaryIndexes": [lsi]}, pitr=True)
    item = {"pk": {"S": "t"}, "first": {"S": "a"}}
    total, base = table.stored_bytes(item)
    assert total == base == 2 * (cost.item_size(item) + 100)
    assert table.pitr and table.ttl_attribute is None
