"""Runs the template's scheduled functions locally (EventBridge Schedule events): each one every
MAIP_LOCAL_SCHEDULE_SECONDS (default 30) instead of its rate, with an EventBridge-shaped event, on one thread
per function so a long run never delays another function's (a run is never started while the last one runs)."""
from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from maip_events.settings import get_settings
from maip_events_local import functions
from maip_events_local.template import Function, scheduled_functions

log = logging.getLogger("maip_events_local.schedules")
DEFAULT_SECONDS = 30.0


def interval() -> float:
    return float(os.environ.get("MAIP_LOCAL_SCHEDULE_SECONDS") or DEFAULT_SECONDS)


def scheduled_event(function: Function) -> dict[str, Any]:
    region = get_settings().region
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "region": region,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": [f"arn:aws:events:{region}:000000000000:rule/{function.logical_id}"], "detail": {}}


class Scheduler:
    def __init__(self, scheduled: list[Function] | None = None, invoke: Callable[..., Any] | None = None,
                 seconds: float | None = None):
        self.functions = scheduled if scheduled is not None else scheduled_functions()
        self._invoke = invoke or functions.invoke
        self.seconds = seconds if seconds is not None else interval()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, args=(f,), daemon=True, name=f"schedule-{f.logical_id}")
                         for f in self.functions]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _run(self, function: Function) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self._invoke(function, scheduled_event(function))
            except Exception:  # noqa: BLE001 - logged; the next tick runs it again, as the schedule would
                log.exception("scheduled %s failed", function.logical_id)
