"""Replay limits (issue 12 point 6): a window of at most 7 days, one running replay per webhook, and a
per-tenant budget of replayed events (MAIP_REPLAY_BUDGET) that a call reserves and partly gives back;
429 `rate_limited` with Retry-After, 400 for a window too long. Through the real handlers against moto."""
from __future__ import annotations

from datetime import timedelta

import pytest

from functions.emit.app import lambda_handler as emit
from functions.webhooks.app import lambda_handler as webhooks
from maip_events import settings
from maip_events.ids import format_time, utc_now
from maip_events.quota.replay import replay_allowance
from support import invoke
from webhook_harness import create_queues

HOOKS = "/v1/observability/webhooks"
ROUTE = f"{HOOKS}/{{webhook_id}}/replay"


@pytest.fixture
def tenant(aws, monkeypatch, headers):
    # A budget of 36 events/hour (one per 100 s, so nothing refills during the test) and a burst of 5
    monkeypatch.setenv("MAIP_REPLAY_BUDGET", "36,5")
    settings.reset()
    create_queues()
    status, hook, _ = invoke(webhooks, "POST", HOOKS, headers=headers, body={"url": "https://hooks.example.com/a"})
    assert status == 201
    return hook["id"]


def _emit(headers, count):
    created = []
    for _ in range(count):
        status, doc, _ = invoke(emit, "POST", "/v1/observability/events", headers=headers, body={"event_type": "agent.registered"})
        assert status == 201
        created.append(doc)
    return created


def _replay(headers, hook, window):
    return invoke(webhooks, "POST", f"{HOOKS}/{hook}/replay", headers=headers, body=window, route=ROUTE)


def test_the_tenant_budget_caps_replayed_events_and_unused_reservations_are_given_back(tenant, headers):
    # Given two stored events and a replay budget of 5
    events = _emit(headers, 2)
    window = {"from": events[0]["created_at"], "to": events[-1]["created_at"]}
    # When the window is replayed three times
    counts = []
    for _ in range(3):
        status, doc, _ = _replay(headers, tenant, window)
        assert status == 202, doc
        counts.append((doc["count"], doc["truncated"]))
    # Then the first two send both events (each call gave back the 3 it reserved but did not use),
    # and the third only the one event left in the budget, marked truncated
    assert counts == [(2, False), (2, False), (1, True)]
    # And a fourth is refused until the budget refills
    status, doc, response_headers = _replay(headers, tenant, window)
    assert status == 429 and doc["error"]["code"] == "rate_limited" and "budget" in doc["error"]["message"]
    assert int(response_headers["Retry-After"]) >= 1


def test_one_replay_runs_at_a_time_per_webhook(tenant, headers):
    events = _emit(headers, 1)
    window = {"from": events[0]["created_at"]}
    # Given a replay of the webhook running
    with replay_allowance("t1", tenant, window["from"], None):
        # When another replay of it is requested
        status, doc, response_headers = _replay(headers, tenant, window)
        # Then it is refused with Retry-After
        assert status == 429 and "already running" in doc["error"]["message"] and int(response_headers["Retry-After"]) >= 1
    # And once the first has finished, a replay runs
    status, doc, _ = _replay(headers, tenant, window)
    assert status == 202 and doc["count"] == 1


def test_a_window_longer_than_7_days_is_refused(tenant, headers):
    now = utc_now()
    window = {"from": format_time(now - timedelta(days=8)), "to": format_time(now)}
    status, doc, _ = _replay(headers, tenant, window)
    assert status == 400 and doc["error"]["details"][0]["field"] == "from"
    # And an open-ended window counts up to now
    status, doc, _ = _replay(headers, tenant, {"from": format_time(now - timedelta(days=7, minutes=1))})
    assert status == 400
    status, doc, _ = _replay(headers, tenant, {"from": format_time(now - timedelta(days=6))})
    assert status == 202
