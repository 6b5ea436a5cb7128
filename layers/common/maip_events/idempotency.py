"""Idempotency-Key (CONTRACT §6): Powertools idempotency on IdempotencyTable, scoped per tenant and key.

A retry with the same key within 24 h gets the first response back and stores nothing; the same key with a
different body, or while the first request is still running, is a 409 `conflict`.
"""
from __future__ import annotations

import re
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Callable

from maip_events import aws
from maip_events.errors import Conflict, InvalidRequest
from maip_events.settings import get_settings

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[!-~]{1,255}$"  # 1-255 visible ASCII characters (a UUID, a hash, "order-42/retry"...)
EXPIRES_AFTER_SECONDS = 24 * 3600
REPLAYED_HEADER = "Idempotent-Replayed"

_KEY = re.compile(KEY_PATTERN)
# Set when the response came from the store (the resolver is re-entrant per thread, hence a ContextVar).
_REPLAYED: ContextVar[bool] = ContextVar("maip_idempotent_replayed", default=False)


def validate_key(key: str | None) -> str | None:
    """None when the header is absent; the key when well formed; 400 otherwise."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            f"{HEADER} must be 1-255 visible ASCII characters.",
            details=[{"field": HEADER, "issue": "1-255 visible ASCII characters, no spaces"}],
        )
    return key


def _mark_replayed(response: Any, _record: Any) -> Any:
    _REPLAYED.set(True)
    return response


@lru_cache(maxsize=8)
def _persistence(operation: str, table: str, client: Any) -> Any:
    """One persistence layer per operation and (re)configured client; Powertools configures a layer only once."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table, boto3_client=client)


def _run(request: dict[str, Any], compute: Callable[[], Any]) -> Any:
    return compute()


@lru_cache(maxsize=8)
def _idempotent(operation: str, persistence: Any) -> tuple[Callable[..., Any], Any]:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    config = IdempotencyConfig(
        event_key_jmespath="[tenant, key]",  # two tenants may use the same key
        payload_validation_jmespath="body",  # same key, other body -> IdempotencyValidationError
        expires_after_seconds=EXPIRES_AFTER_SECONDS,
        response_hook=_mark_replayed,
    )
    # key_prefix: stable across functions and the local stack (the default includes the Lambda's name).
    function = idempotent_function(_run, data_keyword_argument="request", persistence_store=persistence,
                                   config=config, key_prefix=operation)
    return function, config


def once(operation: str, tenant_id: str, key: str | None, body: Any, compute: Callable[[], dict[str, Any]],
         lambda_context: Any = None) -> tuple[dict[str, Any], bool]:
    """`compute()` at most once per (operation, tenant, key) in 24 h; returns (response document, replayed).

    `body` identifies the request (a JSON-able value); `compute` returns a JSON-able dict.
    """
    if key is None:
        return compute(), False
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    function, config = _idempotent(operation, _persistence(operation, get_settings().idempotency_table, aws.dynamodb()))
    # With the invocation's context an in-progress record expires with an invocation that died mid-way.
    config.register_lambda_context(lambda_context)
    token = _REPLAYED.set(False)
    try:
        response = function(request={"tenant": tenant_id, "key": key, "body": body}, compute=compute)
        return response, _REPLAYED.get()
    except IdempotencyValidationError:
        raise Conflict(
            f"This {HEADER} was already used with a different request body.",
            details=[{"field": HEADER, "issue": "reused with a different body"}],
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(
            f"A request with this {HEADER} is still in progress; retry shortly.",
            details=[{"field": HEADER, "issue": "in progress"}],
        ) from None
    finally:
        _REPLAYED.reset(token)
