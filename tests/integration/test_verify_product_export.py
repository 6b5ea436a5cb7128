"""The product's export with proofs (paged, with events expired by retention) through the independent verifier:
it verifies, expired leaves are reported as such, and a line deleted from the product's file is caught.
(The served-stack test exports in ascending order.)"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from functions.export.app import lambda_handler as export_handler
from maip_events import settings
from maip_events.integrity import config, signing
from maip_events.integrity.verify import verify_export
from maip_events.store.tenants import TenantSettingsStore
from siem_harness import drain, make_events, stream_batch
from support import Ctx, http_event, key_headers


@pytest.fixture
def sealed(log, monkeypatch):
    """50 sealed events of t1: 30 from long ago (expired: 1 hot and 1 archive day), 20 from two hours ago."""
    from functions.dispatch.app import lambda_handler as dispatch
    from functions.seal.app import lambda_handler as seal

    old = make_events("t1", [("agent.registered", "info", "a")] * 30)
    recent = make_events("t1", [("session.created", "warn", "b")] * 20,
                         start=datetime.now(timezone.utc) - timedelta(hours=2))
    assert dispatch(stream_batch(old + recent), Ctx())["batchItemFailures"] == []
    drain(boto3.client("sqs", region_name="us-east-1").get_queue_url(QueueName=config.seal_queue())["QueueUrl"], seal)
    TenantSettingsStore().set_tiers("t1", hot_days=1, archive_days=1)  # gone from both tiers
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "9")
    settings.get_settings.cache_clear()
    return old, recent


def export_file(path, **query) -> list[str]:
    """Every page of the export, concatenated as `maip-events verify --url` writes them."""
    lines, token = [], None
    while True:
        q = {"format": "jsonl", "proofs": "true", **query, **({"next_token": token} if token else {})}
        response = export_handler(http_event("GET", "/v1/observability/events/export",
                                             headers=key_headers("t1", ["events:read"]), query=q), Ctx())
        assert response["statusCode"] == 200, response["body"]
        lines += response["body"].splitlines()
        token = response["headers"].get("X-Next-Token")
        if not token:
            path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            return lines


def test_the_products_paged_export_verifies_and_reports_expired_leaves(sealed, tmp_path):
    old, recent = sealed
    # Given a window from the 11th old event to the 15th recent one, exported newest first in pages of 9 lines
    lines = export_file(tmp_path / "audit.jsonl", **{"from": old[10].created_at, "to": recent[14].created_at})
    # When it is verified with the published key
    result = verify_export(tmp_path / "audit.jsonl", signing.public_jwk(), "the API's key")
    # Then everything checks out; the 20 old leaves are expired by retention, not missing
    assert result.ok, result.summary()
    assert (result.events, result.expired, result.first_index, result.last_index) == (15, 20, 10, 44)
    assert "20 expired by retention" in result.summary()
    # And deleting the 5th line of the product's file is caught there
    del lines[4]
    (tmp_path / "cut.jsonl").write_text("".join(f"{line}\n" for line in lines))
    failure = verify_export(tmp_path / "cut.jsonl").failure
    assert (failure.line, failure.kind) == (5, "missing"), failure
    # And a file cut before its trailer
    (tmp_path / "cut.jsonl").write_text("".join(f"{line}\n" for line in lines[:-1]))
    assert verify_export(tmp_path / "cut.jsonl").failure.kind == "truncated"
    assert json.loads(lines[-1])["integrity"]["checkpoint"]["tree_size"] == 50
