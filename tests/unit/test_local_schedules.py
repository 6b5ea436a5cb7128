"""The local stack's scheduled functions and archive bucket come from template.yaml (never retyped): every function
with a Schedule event runs on the local scheduler with an EventBridge-shaped event, every S3 bucket is created."""
from __future__ import annotations

import threading
from pathlib import Path

import yaml

from maip_events import settings
from maip_events_local import template
from maip_events_local.schedules import Scheduler

REPO_ROOT = Path(__file__).resolve().parents[2]


class _AnyTagLoader(yaml.SafeLoader):
    """Reads the template independently of the code under test."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: {
    suffix: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)})


def _raw() -> dict:
    with open(REPO_ROOT / "template.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_AnyTagLoader)  # noqa: S506 - SafeLoader subclass


def test_every_function_with_a_schedule_event_is_scheduled_locally():
    # Given the functions of the template with a Schedule event
    raw = _raw()["Resources"]
    expected = {name for name, r in raw.items() if r["Type"] == "AWS::Serverless::Function"
                and any(e["Type"] == "Schedule" for e in (r["Properties"].get("Events") or {}).values())}
    # Then the local stack schedules exactly those (compaction among them), as importable handlers
    found = {f.logical_id: f for f in template.scheduled_functions()}
    assert set(found) == expected and "CompactFunction" in expected
    assert found["CompactFunction"].module == "functions.archive_compact.app"


def test_every_bucket_of_the_template_gets_its_local_name(monkeypatch):
    # Given the template's buckets and no names in the environment
    for var in settings.TABLE_DEFAULTS:
        monkeypatch.delenv(var, raising=False)
    raw = _raw()
    buckets = {n for n, r in raw["Resources"].items() if r["Type"] == "AWS::S3::Bucket"}
    env = raw["Globals"]["Function"]["Environment"]["Variables"]
    # Then each is named as the functions' settings name it (MAIP_ARCHIVE_BUCKET -> maip-archive)
    names = {settings.TABLE_DEFAULTS[var] for var, value in env.items() if isinstance(value, dict) and value.get("Ref") in buckets}
    assert set(template.bucket_names()) == names == {settings.get_settings().archive_bucket}


def test_the_scheduler_invokes_each_scheduled_function_with_an_eventbridge_event_every_interval():
    # Given a scheduler of the template's scheduled functions, ticking fast
    calls: list[tuple[str, dict]] = []
    twice = threading.Event()

    def invoke(function, event):
        calls.append((function.logical_id, event))
        if sum(1 for name, _ in calls if name == "CompactFunction") >= 2:
            twice.set()

    scheduler = Scheduler(invoke=invoke, seconds=0.01)
    scheduler.start()
    try:
        # Then it runs compaction again and again
        assert twice.wait(timeout=60)
    finally:
        scheduler.stop()
    name, event = next(c for c in calls if c[0] == "CompactFunction")
    # With the event EventBridge sends for a schedule
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event" and event["detail"] == {}
    assert event["resources"][0].endswith(":rule/CompactFunction")


def test_the_schedule_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAIP_LOCAL_SCHEDULE_SECONDS", "2.5")
    assert Scheduler(scheduled=[]).seconds == 2.5
    monkeypatch.delenv("MAIP_LOCAL_SCHEDULE_SECONDS")
    assert Scheduler(scheduled=[]).seconds == 30.0
