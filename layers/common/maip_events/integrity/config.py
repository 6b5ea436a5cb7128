"""Integrity settings from the environment (the template sets them deployed; local names are the template's)."""
from __future__ import annotations

import os

from maip_events.settings import TABLE_DEFAULTS


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def local() -> bool:
    return os.environ.get("MAIP_LOCAL", "0") == "1"


def table() -> str:
    return _env("MAIP_INTEGRITY_TABLE", TABLE_DEFAULTS["MAIP_INTEGRITY_TABLE"])


def seal_queue() -> str:
    return _env("MAIP_SEAL_QUEUE", TABLE_DEFAULTS["MAIP_SEAL_QUEUE"])


def signing_key() -> str:
    """KMS key id, ARN or alias of the ECC_NIST_P256 SIGN_VERIFY key (the local stack creates this alias)."""
    return _env("MAIP_SIGNING_KEY", "alias/maip-integrity-key")


def grace_seconds() -> float:
    """An event is sealed only once its id is older than this: longer than EmitFunction's timeout (10 s), so no
    write can still land before it. Locally nothing times out that way and a short grace keeps the lag small."""
    return float(_env("MAIP_SEAL_GRACE_SECONDS", "3" if local() else "30"))


def seal_interval_seconds() -> float:
    """Cutoffs are rounded down to this step, so seal requests of one tenant arriving within one step seal once:
    a tenant costs at most one seal (one transaction, one KMS signature, one checkpoint kept for good) per step
    instead of one per dispatcher batch. 60 s deployed: at 5 events/s that is 300 events per checkpoint, not 25
    (bench/cost.py: KMS and seal writes per event /12), and proofs still come ~1.5 minutes after an event."""
    return float(_env("MAIP_SEAL_INTERVAL_SECONDS", "1" if local() else "60"))
