"""A pool of worker processes that run the HTTP handlers, like warm Lambda containers: each worker handles one
event at a time, many workers run at once.

Why processes: Powertools keeps the current event and Lambda context on class attributes of its resolver
(`BaseRouter.current_event`, `BaseRouter.lambda_context`), so two requests resolved by threads of one process
would see each other's event. A process per concurrent request is what Lambda does, isolates that state with no
lock, and gives real parallelism past the GIL. The gateway stays in the parent and the embedded DynamoDB (moto)
in a process of its own (server.EmbeddedAws); workers reach DynamoDB over HTTP like the deployed functions do.

Workers are spawned on demand up to MAIP_LOCAL_WORKERS (default 4); MAIP_LOCAL_PREWARM of them (default 1) are
started, with every HTTP handler imported, before the stack reports ready, so the first request is warm.
A worker that dies or overruns its function's timeout is replaced, and that one request answers 500.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from maip_events_local.template import Function

log = logging.getLogger("maip_events_local.workers")
DEFAULT_WORKERS = 4


class WorkerFailed(Exception):
    """The worker died or overran the function's timeout; the request gets Lambda's 500."""


def _serve(conn: Connection, preload: list[Function], changes: Any = None) -> None:
    """The worker's loop: (function, event) in, ("ok", response) or ("error", repr) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    # The stack's stdout carries exactly one JSON document (the parent's ready line); handler logs go to stderr,
    # also those printed while the worker imports handlers, before the parent has printed that line.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from maip_events_local import functions

    if changes is not None:  # cache keys and tenant settings until the embedded DynamoDB changes them
        from maip_events import freshness

        freshness.install(lambda: changes.value)

    for function in preload:  # import handlers before reporting ready, so the first request is warm
        functions.load(function)
    conn.send("ready")
    while True:
        try:
            function, event = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        try:
            reply = ("ok", functions.invoke(function, event))
        except Exception as error:  # noqa: BLE001 - reported to the parent, which logs it and answers 500
            logging.getLogger("maip_events_local.workers").exception("handler %s failed", function.logical_id)
            reply = ("error", f"{type(error).__name__}: {error}")
        conn.send(reply)


class _Worker:
    def __init__(self, context: Any, preload: list[Function], changes: Any = None):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, preload, changes), daemon=True, name="maip-worker")
        self.process.start()
        child.close()
        self._ready = False

    def call(self, function: Function, event: dict[str, Any]) -> Any:
        if not self._ready:
            if self.conn.recv() != "ready":  # EOFError if it died while importing
                raise WorkerFailed("worker did not start")
            self._ready = True
        self.conn.send((function, event))
        if not self.conn.poll(function.timeout + 1):
            raise WorkerFailed(f"{function.logical_id} timed out after {function.timeout} s")
        outcome, value = self.conn.recv()
        if outcome != "ok":
            raise WorkerFailed(value)
        return value

    def wait_ready(self) -> None:
        if not self._ready:
            self._ready = self.conn.recv() == "ready"

    def stop(self) -> None:
        self.conn.close()
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class _Waiter:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.worker: _Worker | None = None


class WorkerPool:
    def __init__(self, size: int | None = None, preload: list[Function] | None = None):
        self.size = max(1, size or int(os.environ.get("MAIP_LOCAL_WORKERS") or DEFAULT_WORKERS))
        self._preload = preload or []
        # spawn, not fork: the parent runs threads (moto server, gateway, poller) that a fork would copy mid-flight.
        self._context = multiprocessing.get_context("spawn")
        # Shared with every worker: moto_patches bumps it after each write to the keys and tenants tables, so
        # workers cache those reads yet see a revocation or a settings change at once (maip_events.freshness).
        self.changes = self._context.RawValue("q", 0)
        self._idle: list[_Worker] = []  # a stack: the warmest worker serves next
        # Requests waiting for a worker, served strictly first come first served: a freed worker is handed to the
        # oldest waiter, never taken by a newcomer (with barging, one request of many clients can wait unboundedly).
        self._waiters: deque[_Waiter] = deque()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def prewarm(self, count: int | None = None) -> None:
        """Start `count` workers (default: MAIP_LOCAL_PREWARM, else 1) now; wait until each has imported the handlers."""
        if count is None:
            count = int(os.environ.get("MAIP_LOCAL_PREWARM") or 1)
        with self._lock:
            started = [self._spawn() for _ in range(min(count, self.size) - len(self._all))]
        for worker in started:
            worker.wait_ready()
            self._release(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self._preload, self.changes)
        self._all.append(worker)
        return worker

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerFailed("the local stack is stopping")
            if self._idle:
                return self._idle.pop()
            if len(self._all) < self.size:
                return self._spawn()
            waiter = _Waiter()
            self._waiters.append(waiter)
        waiter.ready.wait()
        if waiter.worker is None:
            raise WorkerFailed("the local stack is stopping")
        return waiter.worker

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.worker = worker
                waiter.ready.set()
            else:
                self._idle.append(worker)

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        """One invocation on an idle worker (waiting, first come first served, when all are busy)."""
        worker = self._acquire()
        try:
            result = worker.call(function, event)
        except BaseException as error:
            # Retire it: its state is unknown (dead, still running a timed-out request, or a half-sent message),
            # and hand a fresh one to the next request so that waiters never starve.
            with self._lock:
                self._all.remove(worker)
                replacement = None if self._closed else self._spawn()
            worker.process.kill()
            if replacement is not None:
                self._release(replacement)
            if isinstance(error, (WorkerFailed, EOFError, OSError)):
                raise WorkerFailed(str(error)) from None
            raise
        self._release(worker)
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), []
            waiters, self._waiters = list(self._waiters), deque()
        for waiter in waiters:
            waiter.ready.set()
        for worker in workers:  # every worker sees its pipe close and exits at once (each takes ~0.3 s to exit)
            worker.conn.close()
        for worker in workers:
            worker.stop()
