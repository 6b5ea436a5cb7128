"""Loads the real Lambda handlers named in template.yaml, once, and calls them like Lambda does."""
from __future__ import annotations

import importlib
import sys
import threading
import time
import uuid
from typing import Any, Callable

from maip_events_local.template import Function, template_path

_handlers: dict[str, Callable] = {}
_locks: dict[str, threading.Lock] = {}
_registry_lock = threading.Lock()


class LambdaContext:
    memory_limit_in_mb = 512

    def __init__(self, function: Function):
        self.function_name = function.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function.logical_id}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.logical_id}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _make_handlers_importable() -> None:
    """Handlers are `functions.<name>.app` beside template.yaml; a console script (`maip-events serve`)
    does not put that folder on sys.path the way pytest's pythonpath does."""
    root = str(template_path().resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def load(function: Function, instance: int | str = 0) -> tuple[Callable, threading.Lock]:
    """The function's handler, imported once per process, and the lock of this instance (a warm Lambda container
    runs one event at a time)."""
    with _registry_lock:
        if function.logical_id not in _handlers:
            _make_handlers_importable()
            module = importlib.import_module(function.module)
            _handlers[function.logical_id] = getattr(module, function.handler)
        return _handlers[function.logical_id], _locks.setdefault(f"{function.logical_id}#{instance}", threading.Lock())


def invoke(function: Function, event: dict[str, Any], instance: int | str = 0) -> Any:
    """One invocation in this process; each instance runs one event at a time, like one warm Lambda container
    (the gateway runs HTTP functions in a pool of worker processes for concurrency: workers.py)."""
    handler, lock = load(function, instance)
    with lock:
        return handler(event, LambdaContext(function))
