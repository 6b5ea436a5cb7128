"""Exact grammars of the text the API accepts, shared by request models and the OpenAPI document, so that a
schema-valid value is always accepted and anything else refused (a fuzzer or generated client trusts them).

Patterns use only what JSON Schema (ECMA 262), Python and pydantic's Rust engine read alike: no lookarounds,
ASCII classes instead of \\d."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from maip_events.catalog import EVENT_TYPES, NAMESPACES

_YEAR = "(?:19[7-9][0-9]|2[0-9]{3})"  # 1970-2999: every offset keeps the UTC instant within datetime's range
_MONTH_DAY = ("(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              "|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_DAY = "(?:19(?:7[26]|8[048]|9[26])|2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00)-02-29"
_TIME = "T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
_OFFSET = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# ISO 8601 (RFC 3339 profile) calendar date, optionally with a time and an offset; no offset means UTC.
DATE_TIME_PATTERN = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})(?:{_TIME}{_OFFSET}?)?$"
DATE_TIME_DESCRIPTION = "ISO 8601 date or date-time, e.g. 2026-11-23T07:00:00Z (UTC if no offset)"

_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_REST = f"{_LABEL}(?:\\.{_LABEL})*(?::{_PORT})?(?:[/?][!\"$-~]*)?$"
# Absolute URL: a DNS host name, an optional port, then any printable ASCII but '#' (no credentials, no fragment,
# no spaces). Deployed only https is accepted (the SSRF guard also refuses hosts that resolve to non-public
# addresses); the local stack also accepts http, so the model admits both and the served OpenAPI document
# narrows URL_PATTERN to HTTPS_URL_PATTERN unless the stack is local (api/docs.py).
HTTPS_URL_PATTERN = f"^https://{_REST}"
URL_PATTERN = f"^https?://{_REST}"
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=URL_PATTERN)]

# What a subscription may name: a catalog type, `namespace.*` or `*`.
EVENT_TYPE_PATTERNS: tuple[str, ...] = ("*", *sorted(f"{n}.*" for n in NAMESPACES), *EVENT_TYPES)
EventTypePattern = Literal[EVENT_TYPE_PATTERNS]  # type: ignore[valid-type]
