"""Block arithmetic and item shapes of the counts (no AWS), and the retention policy."""
from __future__ import annotations

from datetime import datetime, timezone

from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest
from maip_events.store import counts
from maip_events.store.tenants import Retention

DAY_MS = 86_400_000
BASE = 1_795_000_000_123  # a fixed moment in 2026


class Recorder:
    """A stand-in DynamoDB client that keeps what is put (CountWriter only puts)."""

    def __init__(self):
        self.items = []

    def put_item(self, TableName, Item):
        self.items.append(Item)


def test_prefixes_name_aligned_blocks_and_sort_like_time():
    for level in (counts.HOUR, counts.MINUTE, *counts.SUB_LEVELS):
        moments = [BASE + i * counts.UNIT_MS[level] for i in range(-3, 4)]
        labels = [counts.prefix(ms, level) for ms in moments]
        # Then lexical order is time order and a prefix maps back to its block start
        assert labels == sorted(labels)
        assert counts.prefix_start(labels[3]) == counts.floor(BASE, level) == BASE - BASE % counts.UNIT_MS[level]
    # And an hour's marker sorts after its last minute and before the next hour
    hour = counts.prefix(BASE, counts.HOUR)
    assert f"{hour}:59#3" < hour + counts.MARKER < counts.prefix(counts.floor(BASE, counts.HOUR) + 3_600_000, counts.MINUTE)


def test_an_event_id_gives_its_millisecond_and_marks_invert():
    event = build_event("t", EmitEventRequest(event_type="agent.registered"), datetime.fromtimestamp(BASE / 1000, timezone.utc))
    assert counts.event_ms(event.event_id) == BASE
    assert counts.mark_end(counts.mark_of(BASE)) == BASE and counts.mark_of(BASE) < counts.mark_of(BASE + 1)


HOSTILE = ["\U0001F600" * 256, "a#b#c", "a/b=c", "\x00\x01\n\t#", "=" * 256, "ta=agent.registered=x"]


def test_every_dimension_is_bounded_and_distinct_whatever_the_agent_id():
    dims = {d for a in HOSTILE for d in counts.dimensions("agent.registered", a, "info")}
    agent_dims = {d for d in dims if counts.is_agent_dimension(d)}
    assert len(agent_dims) == 2 * len(HOSTILE)
    assert all(len(d) <= 80 and d.isascii() and d.isprintable() for d in dims)


def test_each_filter_with_counts_names_one_dimension_the_event_feeds():
    dims = counts.dimensions("agent.registered", "a#1", "warn")
    for agent in (None, "a#1"):
        for event_type in (None, "agent.registered"):
            assert counts.dimension(event_type, agent) in dims
        assert counts.dimension(None, None, severity="warn") in dims
    assert counts.dimension("agent.registered", None, severity="warn") in dims
    # And resources, or an agent with a severity, are counted from the events
    assert counts.dimension(None, None, resource_id="r") is None and counts.dimension(None, "a", severity="warn") is None
    assert counts.dimensions("agent.registered", None, "info") == ["all", "t=agent.registered", "s=info", "ts=agent.registered=info"]


def test_a_minute_is_one_catalog_map_one_agent_map_and_maps_of_its_dense_blocks():
    # Given 100 events of two agents inside one second
    start = counts.floor(BASE, counts.MINUTE)
    events = [build_event("t", EmitEventRequest(event_type="agent.registered", agent_id=f"a{i % 2}", severity="warn"),
                          datetime.fromtimestamp((start + 7 * i) / 1000, timezone.utc)) for i in range(100)]
    client = Recorder()
    # When the minute is written
    counts.CountWriter(client, "counts", "t").minute(start, events, 123)
    by_pk = {}
    for item in client.items:
        by_pk.setdefault(item["pk"]["S"], []).append(item)
    # Then the catalog map, written last, counts all, type, severity and the pair; the agent map each agent
    assert client.items[-1]["pk"]["S"] == "t#mc"
    catalog = by_pk["t#mc"][0]
    assert catalog["all"]["N"] == catalog["t=agent.registered"]["N"] == catalog["ts=agent.registered=warn"]["N"] == "100"
    agents = by_pk["t#mx"][0]
    assert {agents[f"a={counts.agent_key(a)}"]["N"] for a in ("a0", "a1")} == {"50"}
    assert {v["S"] for v in agents["v"]["M"].values()} == {"a0", "a1"}
    # And the dense blocks (more than SPLIT events: the minute, its ten seconds, its seconds) have sub-block maps
    assert sum(int(i["n"]["N"]) for i in by_pk["t#b18"]) == 100 and len(by_pk["t#b19"]) == 1
    assert all(i["expires_at"]["N"] == "123" for i in client.items)


def test_retention_expiry_is_whole_days_and_visibility_follows_the_current_setting():
    day = BASE - BASE % DAY_MS
    # The hot tier defaults to 30 days (the archive keeps a year): no setting, no env -> 30
    assert Retention().days == Retention().default == 30
    policy = Retention(days=365, default=365)
    # Given a 365-day deployment default: an event's TTL is the end of its UTC day + 365 days
    assert policy.expires_at(day + 5) == (day + DAY_MS + 365 * DAY_MS) // 1000
    # And today plus the 365 previous days are visible
    assert policy.visible_from(day + 10) == day - 365 * DAY_MS
    # When retention becomes 30 days; Then older days are hidden at once, TTLs change from tomorrow
    shorter = policy.with_days(30, day + 10)
    assert shorter.visible_from(day + 10) == day - 30 * DAY_MS
    assert shorter.expires_at(day + 5) == policy.expires_at(day + 5)
    assert shorter.expires_at(day + DAY_MS + 5) == (day + 2 * DAY_MS + 30 * DAY_MS) // 1000
    # When it goes back up to 365 days 40 days later; Then the days stored with a 30-day TTL stay gone
    longer = shorter.with_days(365, day + 40 * DAY_MS)
    assert longer.visible_from(day + 40 * DAY_MS + 10) == day + 10 * DAY_MS
