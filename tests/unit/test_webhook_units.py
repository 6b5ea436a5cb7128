"""Webhook building blocks without network: signing (checked by `standardwebhooks`), matching, the SSRF
address rules and the retry schedule."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from standardwebhooks.webhooks import Webhook

from maip_events import settings
from maip_events.catalog import EVENT_TYPES, NAMESPACES
from maip_events.errors import InvalidRequest
from maip_events.http import guard, signing
from maip_events.webhooks import matching, retry


@hsettings(max_examples=50, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=20), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)),
    message_id=st.from_regex(r"maip-evt:[0-9A-Z]{26}", fullmatch=True))
def test_signatures_verify_with_the_standardwebhooks_library(doc, message_id):
    # Given a fresh secret and a JSON body (the library parses it after verifying) signed now
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    secret = signing.new_secret()
    now = int(datetime.now(timezone.utc).timestamp())
    headers = signing.headers([secret], message_id, now, body)
    # Then the independent library accepts it
    Webhook(secret).verify(body, headers)


def test_secret_format_and_both_signatures_during_rotation():
    old, new = signing.new_secret(), signing.new_secret()
    assert old.startswith("whsec_") and len(base64.b64decode(old[6:])) == 32 and old != new
    now = int(datetime.now(timezone.utc).timestamp())
    headers = signing.headers([new, old], "maip-evt:X", now, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(b"{}", headers)
    Webhook(old).verify(b"{}", headers)


@pytest.mark.parametrize(("event_type", "patterns", "expected"), [
    ("agent.registered", ["*"], True),
    ("agent.registered", ["agent.*"], True),
    ("agent.registered", ["agent.registered"], True),
    ("agent.registered", ["session.*", "agent.updated"], False),
    ("agentx.registered", ["agent.*"], False),
    ("trust.delegation_offered", ["trust.*"], True),
])
def test_matching(event_type, patterns, expected):
    assert matching.matches(event_type, patterns) is expected


def test_every_catalog_type_and_namespace_is_a_valid_pattern():
    assert matching.validate_patterns(list(EVENT_TYPES) + [f"{n}.*" for n in NAMESPACES] + ["*"])
    assert matching.validate_patterns(["agent.*", "agent.*"]) == ["agent.*"]
    for bad in (["agent"], ["agent.**"], ["*.registered"], ["agent.Registered"], [""], []):
        with pytest.raises(InvalidRequest):
            matching.validate_patterns(bad)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
    "100.100.100.200", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1",
    "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "ff02::1", "::",
])
def test_non_public_addresses_are_refused_when_deployed(deployed, address):
    assert guard.allowed_address(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(deployed, address):
    assert guard.allowed_address(address) is True


def test_send_time_resolution_refuses_loopback_names(deployed):
    with pytest.raises(guard.RefusedTarget):
        guard.resolve("localhost", 443)


def test_local_stack_allows_loopback(monkeypatch):
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    try:
        assert guard.allowed_address("127.0.0.1") and guard.resolve("localhost", 80)
        assert guard.parse("http://127.0.0.1:8080/x").port == 8080
    finally:
        settings.reset()


def test_default_schedule_starts_within_seconds_and_lasts_about_three_days(deployed):
    now = datetime.now(timezone.utc)
    schedule = settings.get_settings().webhook_retry_schedule
    assert schedule[0] <= 5 and 2.5 * 86400 <= sum(schedule) <= 4 * 86400
    delays = [retry.next_delay(1, None, now) for _ in range(200)]
    assert all(4 <= d <= 6 for d in delays) and len(set(delays)) > 1  # jittered
    assert retry.next_delay(len(schedule) + 1, None, now) is None


def test_retry_after_seconds_and_http_dates(deployed):
    now = datetime(2026, 11, 23, 7, 0, 0, tzinfo=timezone.utc)
    assert retry.next_delay(1, "600", now) == 600
    assert retry.next_delay(1, "Mon, 23 Nov 2026 08:00:00 GMT", now) == 3600
    assert retry.parse_retry_after("soon", now) is None
    assert retry.parse_retry_after(str(10**9), now) == retry.MAX_RETRY_AFTER
    assert 4 <= retry.next_delay(1, "1", now) <= 6  # never sooner than the schedule


def test_schedule_is_configurable(monkeypatch):
    monkeypatch.setenv("MAIP_WEBHOOK_RETRY_SCHEDULE", "1,2")
    settings.reset()
    try:
        now = datetime.now(timezone.utc) + timedelta(0)
        assert settings.get_settings().webhook_retry_schedule == (1, 2)
        assert retry.next_delay(3, None, now) is None
    finally:
        settings.reset()
