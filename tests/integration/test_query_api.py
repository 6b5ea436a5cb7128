"""Query power of GET /v1/observability/events and /export (issue 13): resource_id, severity lists, type lists and
namespaces, order, and the `q` qualifier search; every answer is checked against the events themselves."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from functions.export.app import lambda_handler as export_handler
from functions.list.app import lambda_handler as list_handler
from aggregation import aggregate
from support import Ctx, http_event, invoke, key_headers
from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest
from maip_events.store.events import EventStore

EVENTS = "/v1/observability/events"
EXPORT = "/v1/observability/events/export"
DAY0 = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)

TYPES = ["agent.registered", "agent.updated", "session.created", "session.expired", "trust.computed", "guardrail.violation"]
AGENTS = ["a1", "a 2", None]
RESOURCES = ["r1", "r#2", None]
SEVERITIES = ["info", "warn", "error", "info", "error"]


def store(tenant: str, n: int, start: datetime = DAY0, step: timedelta = timedelta(hours=1)) -> list[dict]:
    """n varied events, one `step` apart, stored and counted; returns them as list items, oldest first."""
    built = [build_event(tenant, EmitEventRequest(event_type=TYPES[i % 6], agent_id=AGENTS[i % 3],
                                                  resource_id=RESOURCES[(i // 3) % 3], severity=SEVERITIES[i % 5],
                                                  metadata={"i": i}), now=start + i * step) for i in range(n)]
    EventStore().put_many(built)
    aggregate(built)
    return [e.list_item() for e in built]


def listed(headers, **query) -> tuple[int, dict]:
    status, body, _ = invoke(list_handler, "GET", EVENTS, headers=headers, query={k: str(v) for k, v in query.items()})
    return status, body


def everything(headers, first: int = 4, **query) -> tuple[list[dict], list[int]]:
    """Every page of a query (a short first page, then long ones), following next_token: (items, each page's total)."""
    items, totals, token = [], [], None
    while True:
        status, page = listed(headers, limit=100 if token else first, **query, **({"next_token": token} if token else {}))
        assert status == 200, page
        items += page["items"]
        totals.append(page["total"])
        token = page["next_token"]
        if not token:
            return items, totals


def at(hours: float) -> str:
    return (DAY0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(n: int) -> str:
    return (DAY0 + timedelta(days=n)).strftime("%Y-%m-%d")


def ns(event, name):
    return event["event_type"].startswith(name + ".")


# (query parameters, what they mean); each is checked for items, order and total.
CASES = [
    ({"resource_id": "r#2"}, lambda e: e["resource_id"] == "r#2"),
    ({"severity": "error"}, lambda e: e["severity"] == "error"),
    ({"severity": "warn,error"}, lambda e: e["severity"] in ("warn", "error")),
    ({"event_type": "agent.*"}, lambda e: ns(e, "agent")),
    ({"event_type": "agent.*,trust.computed"}, lambda e: ns(e, "agent") or e["event_type"] == "trust.computed"),
    ({"event_type": "session.created,session.expired", "agent_id": "a1"},
     lambda e: e["event_type"].startswith("session.") and e["agent_id"] == "a1"),
    ({"agent_id": "a 2", "severity": "error"}, lambda e: e["agent_id"] == "a 2" and e["severity"] == "error"),
    ({"event_type": "agent.registered", "severity": "info,warn"},
     lambda e: e["event_type"] == "agent.registered" and e["severity"] != "error"),
    ({"resource_id": "r1", "event_type": "agent.*"}, lambda e: e["resource_id"] == "r1" and ns(e, "agent")),
    ({"q": "type:agent.*"}, lambda e: ns(e, "agent")),
    ({"q": "-type:session.*"}, lambda e: not ns(e, "session")),
    ({"q": "-type:agent.registered severity:error"}, lambda e: e["event_type"] != "agent.registered" and e["severity"] == "error"),
    ({"q": 'agent:"a 2"'}, lambda e: e["agent_id"] == "a 2"),
    ({"q": "-agent:a1"}, lambda e: e["agent_id"] != "a1"),
    ({"q": "-agent:a1 -resource:r1"}, lambda e: e["agent_id"] != "a1" and e["resource_id"] != "r1"),
    ({"q": "resource:r#2 -severity:info"}, lambda e: e["resource_id"] == "r#2" and e["severity"] != "info"),
    ({"q": f"created:>={at(10)}"}, lambda e: e["timestamp"] >= at(10)[:-1]),
    ({"q": f"created:>{at(10)}"}, lambda e: e["timestamp"] > at(10)[:-1] + ".000Z"),
    ({"q": f"created:<{at(10)}"}, lambda e: e["timestamp"] < at(10)[:-1]),
    ({"q": f"created:<={at(10)}"}, lambda e: e["timestamp"] <= at(10)[:-1] + ".000Z"),
    ({"q": f"created:{day(1)}"}, lambda e: e["timestamp"][:10] == day(1)),
    ({"q": f"created:>{day(0)}"}, lambda e: e["timestamp"][:10] > day(0)),
    ({"q": f"created:{day(0)}..{day(1)}"}, lambda e: e["timestamp"][:10] <= day(1)),
    ({"q": f"created:{day(1)}..*"}, lambda e: e["timestamp"][:10] >= day(1)),
    ({"q": f"type:agent.*,session.* severity:warn,error agent:a1 created:<{day(2)}"},
     lambda e: e["event_type"].split(".")[0] in ("agent", "session") and e["severity"] != "info"
     and e["agent_id"] == "a1" and e["timestamp"][:10] < day(2)),
    # params and q AND together; contradictions give an empty result, not an error
    ({"agent_id": "a1", "q": "severity:error"}, lambda e: e["agent_id"] == "a1" and e["severity"] == "error"),
    ({"agent_id": "a1", "q": "agent:a 2"[:8]}, lambda e: False),
    ({"q": "type:agent.registered -type:agent.*"}, lambda e: False),
    ({"severity": "info", "q": "severity:error"}, lambda e: False),
    ({"q": f"created:>{day(2)} created:<{day(1)}"}, lambda e: False),
]


def test_every_filter_and_q_form_lists_exactly_its_events_with_an_exact_total(aws):
    # Given 54 varied events of t1 over 2.25 days, counted, and events of another tenant with the same values
    events = store("t1", 54)
    store("t2", 12)
    headers = key_headers("t1", ["events:read"])
    for n, (query, meaning) in enumerate(CASES):
        expected = [e for e in reversed(events) if meaning(e)]
        # When every page is read (newest first, a first page of 4), Then the items are exactly the matches, newest
        # first, and the first page's total (from counts) is exact
        items, totals = everything(headers, **query)
        assert [e["event_id"] for e in items] == [e["event_id"] for e in expected], query
        assert totals[0] == len(expected), (query, totals)
        # And oldest first gives the same events reversed, across pages too (a sample of the cases: test time)
        if n % 4:
            continue
        items, _ = everything(headers, order="asc", **query)
        assert [e["event_id"] for e in items] == [e["event_id"] for e in reversed(expected)], (query, "asc")


def test_offsets_and_cursors_keep_their_order(aws):
    # Given 40 events
    events = store("t1", 40)
    headers = key_headers("t1", ["events:read"])
    oldest = [e["event_id"] for e in events]
    # When paging oldest first with an offset, Then the page starts that far from the oldest
    status, page = listed(headers, order="asc", offset=5, limit=4, q="-type:trust.computed")
    kept = [e["event_id"] for e in events if e["event_type"] != "trust.computed"]
    assert status == 200 and [e["event_id"] for e in page["items"]] == kept[5:9] and page["total"] == len(kept)
    # And a next_token made oldest first continues oldest first even when `order` is not repeated
    status, first = listed(headers, order="asc", limit=10)
    status, second = listed(headers, limit=10, next_token=first["next_token"])
    assert status == 200 and [e["event_id"] for e in first["items"] + second["items"]] == oldest[:20]
    # And a deep offset newest first for a namespace is exact
    status, page = listed(headers, event_type="agent.*", offset=6, limit=3)
    agents = [e["event_id"] for e in reversed(events) if e["event_type"].startswith("agent.")]
    assert [e["event_id"] for e in page["items"]] == agents[6:9] and page["total"] == len(agents)
    # And a token cannot be reused with other filters
    status, body = listed(headers, severity="error", next_token=first["next_token"])
    assert status == 400 and body["error"]["code"] == "invalid_request"


BAD = [
    {"q": "hello"}, {"q": "colour:red"}, {"q": "type:agent.bogus"}, {"q": "severity:fatal"}, {"q": "agent:"},
    {"q": '-created:>2026-01-01'}, {"q": 'agent:"unclosed'}, {"q": "created:yesterday"}, {"q": "created:..2026-01-01"},
    {"severity": "fatal"}, {"severity": "info,"}, {"event_type": "agent"}, {"event_type": "nope.*"}, {"order": "up"},
    {"resource_id": ""},
]


def test_bad_filters_are_a_400_that_says_what_is_supported(aws):
    headers = key_headers("t1", ["events:read"])
    for query in BAD:
        # When a malformed filter is sent, Then the list is a 400 invalid_request (naming the qualifiers for q)
        status, body = listed(headers, **query)
        assert status == 400 and body["error"]["code"] == "invalid_request", (query, body)
        if "q" in query:
            assert "supported qualifiers: type:" in body["error"]["message"] and "created:" in body["error"]["message"]
        # And the export refuses the same
        response = export_handler(http_event("GET", EXPORT, headers=headers, query=query), Ctx())
        assert response["statusCode"] == 400, query


def test_export_takes_the_same_filters_and_order_across_continuations(aws, monkeypatch):
    # Given 30 events and responses of at most 4 events
    events = store("t1", 30)
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "4")
    from maip_events import settings

    settings.reset()
    headers = key_headers("t1", ["events:read"])
    expected = [e["event_id"] for e in events if e["severity"] != "info" and not e["event_type"].startswith("session.")]
    # When exporting oldest first with a severity list and a q negation, following the Link header
    found, query = [], {"format": "jsonl", "severity": "warn,error", "q": "-type:session.*", "order": "asc"}
    while True:
        response = export_handler(http_event("GET", EXPORT, headers=headers, query=query), Ctx())
        assert response["statusCode"] == 200
        found += [json.loads(line)["event_id"] for line in response["body"].splitlines()]
        if "X-Next-Token" not in response["headers"]:
            break
        from urllib.parse import parse_qsl, urlsplit

        query = dict(parse_qsl(urlsplit(response["headers"]["Link"][1:].split(">")[0]).query))
    # Then the export is exactly the matches, oldest first
    assert found == expected
