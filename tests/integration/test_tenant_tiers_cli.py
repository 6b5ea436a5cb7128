"""Issue 19: `maip-events tenants set-retention --hot-days N --archive-days M` and `tenants show`: both tiers
stored on the tenant, validated (hot 1-365, archive up to 3,653 and never below the hot days), JSON on request,
`--days` still accepted as the hot days, defaults from MAIP_HOT_DAYS_DEFAULT / MAIP_ARCHIVE_DAYS_DEFAULT."""
from __future__ import annotations

import json

import pytest

from maip_events import settings
from maip_events.store.tenants import TenantSettingsStore
from maip_events_local.cli import main


def run(capsys, *args: str) -> tuple[int, dict | str]:
    code = main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


def show(capsys, tenant: str) -> dict:
    code, doc = run(capsys, "tenants", "show", "--tenant", tenant, "--json")
    assert code == 0
    return doc


def test_a_tenant_without_settings_has_the_default_tiers(aws, capsys, monkeypatch):
    # Given no setting for tenant fresh, nor for the deployment; Then it has 30 hot days and 365 archive days
    monkeypatch.delenv("MAIP_HOT_DAYS_DEFAULT", raising=False)
    settings.reset()
    doc = show(capsys, "fresh")
    assert (doc["hot_days"], doc["archive_days"]) == (30, 365)
    # When the deployment's defaults are 60 and 730 (the template's HotDaysDefault/ArchiveDaysDefault)
    monkeypatch.setenv("MAIP_HOT_DAYS_DEFAULT", "60")
    monkeypatch.setenv("MAIP_ARCHIVE_DAYS_DEFAULT", "730")
    settings.reset()
    # Then those are the tenant's tiers, also what the stores read
    doc = show(capsys, "fresh")
    assert (doc["hot_days"], doc["archive_days"]) == (60, 730)
    tiers = TenantSettingsStore().tiers("fresh")
    assert (tiers.hot.days, tiers.archive_days) == (60, 730)
    # When only its hot days are set; Then its archive days keep following the default
    assert run(capsys, "tenants", "set-retention", "--tenant", "fresh", "--hot-days", "9", "--json")[0] == 0
    monkeypatch.setenv("MAIP_ARCHIVE_DAYS_DEFAULT", "800")
    settings.reset()
    doc = show(capsys, "fresh")
    assert (doc["hot_days"], doc["archive_days"]) == (9, 800)


def test_setting_both_tiers_either_one_or_the_deprecated_days(aws, capsys):
    # When both are set
    code, doc = run(capsys, "tenants", "set-retention", "--tenant", "t9", "--hot-days", "7", "--archive-days", "400", "--json")
    # Then both are stored and reported in one JSON document (the hot TTL applies from the next UTC day)
    assert code == 0
    assert (doc["tenant_id"], doc["hot_days"], doc["archive_days"]) == ("t9", 7, 400) and doc["ttl_applies_from"].endswith("T00:00:00Z")
    assert (show(capsys, "t9")["hot_days"], show(capsys, "t9")["archive_days"]) == (7, 400)
    # When only the archive days change; Then the hot days stay
    code, doc = run(capsys, "tenants", "set-retention", "--tenant", "t9", "--archive-days", "3653", "--json")
    assert code == 0 and (doc["hot_days"], doc["archive_days"]) == (7, 3653) and "ttl_applies_from" not in doc
    # When an old script sets --days; Then it is the hot days
    code, doc = run(capsys, "tenants", "set-retention", "--tenant", "t9", "--days", "14", "--json")
    assert code == 0 and (doc["hot_days"], doc["archive_days"], doc["retention_days"]) == (14, 3653, 14)
    tiers = TenantSettingsStore().tiers("t9")
    assert (tiers.hot.days, tiers.archive_days) == (14, 3653)
    assert TenantSettingsStore().retention("t9").days == 14  # the hot tier is the DynamoDB retention
    # And the text output names both tiers
    code, text = run(capsys, "tenants", "show", "--tenant", "t9")
    assert code == 0 and "14 days hot" in text and "3653 days archived" in text


@pytest.mark.parametrize("args, message", [
    (["--hot-days", "0"], "hot days must be an integer from 1 to 365"),
    (["--hot-days", "366"], "hot days must be an integer from 1 to 365"),
    (["--archive-days", "0"], "archive days must be an integer from 1 to 3653"),
    (["--archive-days", "3654"], "archive days must be an integer from 1 to 3653"),
    (["--hot-days", "100", "--archive-days", "50"], "archive days (50) must be at least the hot days (100)"),
    (["--archive-days", "5"], "archive days (5) must be at least the hot days (10)"),
    (["--hot-days", "120"], "archive days (100) must be at least the hot days (120)"),
    ([], "give the hot days, the archive days or both"),
])
def test_invalid_tiers_are_refused_and_change_nothing(aws, capsys, args, message):
    # Given tenant t9 with 10 hot days and 100 archive days
    assert run(capsys, "tenants", "set-retention", "--tenant", "t9", "--hot-days", "10", "--archive-days", "100", "--json")[0] == 0
    # When an invalid change is asked for
    code, doc = run(capsys, "tenants", "set-retention", "--tenant", "t9", *args, "--json")
    # Then it exits 2 with one JSON error saying why, and the tiers are as they were
    assert code == 2 and doc["error"]["code"] == "invalid_request" and message in doc["error"]["message"]
    assert (show(capsys, "t9")["hot_days"], show(capsys, "t9")["archive_days"]) == (10, 100)
