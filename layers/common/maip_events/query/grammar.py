"""The `q` grammar: whitespace-separated terms, all of which must hold (AND).

    term      = ["-"] qualifier ":" value
    qualifier = "type" | "agent" | "resource" | "severity" | "created"
    value     = one or more of: a run of characters other than whitespace and '"', or a "quoted string"
                (inside quotes, \\" is a quote and \\\\ a backslash)

`type` and `severity` take a comma list (`type:agent.*,session.created`, `severity:warn,error`); `agent` and
`resource` take one id (quote it when it holds spaces); `created` takes `>=D`, `>D`, `<D`, `<=D`, `D` or `A..B`
(either side may be `*`), where a date (2026-11-01) stands for its whole UTC day and a date-time for its instant.
A leading `-` negates a term (not allowed on `created`: use the opposite comparison).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from maip_events.catalog import EVENT_TYPES, NAMESPACES, SEVERITIES
from maip_events.errors import InvalidRequest
from maip_events.models.formats import DATE_TIME_PATTERN

QUALIFIERS = ("type", "agent", "resource", "severity", "created")
Q_MAX_LENGTH = 2048

# The whole grammar as one pattern (JSON Schema/ECMA 262 and Python read it alike), published in the OpenAPI
# document: a value matches it exactly when the API accepts it. Terms are separated by spaces.
_TYPE = "(?:" + "|".join(re.escape(t) for t in sorted(EVENT_TYPES, key=len, reverse=True)) + "|" + \
    "|".join(f"{n}\\.\\*" for n in sorted(NAMESPACES)) + ")"
_SEVERITY = "(?:" + "|".join(SEVERITIES) + ")"
_DATE = DATE_TIME_PATTERN[1:-1]
_ID = '(?:[^ "]|"(?:[^"\\\\]|\\\\["\\\\])*")+'
_TERM = (f"(?:-?type:{_TYPE}(?:,{_TYPE})*|-?severity:{_SEVERITY}(?:,{_SEVERITY})*|-?(?:agent|resource):{_ID}"
         f"|created:(?:(?:>=|<=|>|<)?{_DATE}|(?:{_DATE}|\\*)\\.\\.(?:{_DATE}|\\*)))")
Q_PATTERN = f"^ *(?:{_TERM}(?: +{_TERM})*)? *$"
_Q = re.compile(Q_PATTERN)
SUPPORTED = ("supported qualifiers: type:TYPE[,TYPE|namespace.*], agent:ID, resource:ID, severity:info|warn|error[,...], "
             "created:>=DATE|>DATE|<DATE|<=DATE|DATE|DATE..DATE; prefix a term with - to negate it; quote values with spaces")


@dataclass(frozen=True)
class Term:
    qualifier: str
    value: str
    negated: bool = False


def invalid(problem: str) -> InvalidRequest:
    return InvalidRequest(f"`q` is invalid: {problem}; {SUPPORTED}.", details=[{"field": "q", "issue": problem}])


def _words(text: str) -> list[tuple[str, bool]]:
    """Space-separated words with quotes removed; (word, whether any part was quoted)."""
    words: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        chars: list[str] = []
        quoted = False
        while i < n and text[i] != " ":
            if text[i] != '"':
                chars.append(text[i])
                i += 1
                continue
            quoted, i = True, i + 1
            while True:
                if i >= n:
                    raise invalid("a quoted value is not closed")
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    chars.append(text[i + 1])
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    chars.append(text[i])
                    i += 1
        words.append(("".join(chars), quoted))
    return words


def _diagnose(text: str) -> InvalidRequest:
    """Why `text` does not follow the grammar, as precisely as the first offending word allows."""
    for word, quoted in _words(text):
        negated = word.startswith("-")
        qualifier, colon, value = (word[1:] if negated else word).partition(":")
        if not colon:
            return invalid(f"`{word}` is not a qualifier:value term (bare words are not searched)")
        if qualifier not in QUALIFIERS:
            return invalid(f"unknown qualifier `{qualifier}`")
        if value == "" and not quoted:
            return invalid(f"`{qualifier}:` has no value")
        if negated and qualifier == "created":
            return invalid("`created` cannot be negated (use the opposite comparison)")
        if not _Q.search(word):
            return invalid(f"`{word}` has a value {qualifier} does not take")
    return invalid("it does not follow the grammar")


def parse(text: str) -> list[Term]:
    """The terms of `q`; 400 `invalid_request` (naming the supported qualifiers) for anything else."""
    if len(text) > Q_MAX_LENGTH:
        raise invalid(f"longer than {Q_MAX_LENGTH} characters")
    if not _Q.search(text):
        raise _diagnose(text)
    if text.endswith("\n"):  # `$` (as JSON Schema validators read it) also matches before a final newline
        text = text[:-1]
    terms: list[Term] = []
    for word, _ in _words(text):
        negated = word.startswith("-")
        qualifier, _, value = (word[1:] if negated else word).partition(":")
        terms.append(Term(qualifier, value, negated))
    return terms


# Patterns of the comma-list parameters (exact: a matching value is always accepted).
EVENT_TYPE_LIST_PATTERN = f"^{_TYPE}(?:,{_TYPE})*$"
SEVERITY_LIST_PATTERN = f"^{_SEVERITY}(?:,{_SEVERITY})*$"

Q_DESCRIPTION = (
    "Qualifier search; every term must hold (AND), and so must the other parameters. Terms are separated by "
    "spaces: `type:agent.registered` (comma list of catalog types and `namespace.*`), `agent:ID`, `resource:ID`, "
    "`severity:warn,error`, `created:>=2026-11-01`, `created:<2026-11-02T10:00Z` (also `>`, `<=`, an exact "
    "`created:DATE`, and ranges `created:2026-11-01..2026-11-07` with `*` for an open side; a date stands for its "
    "whole UTC day, a date-time for its instant). A leading `-` negates a type, agent, resource or severity term "
    "(`-type:session.*`). Quote values holding spaces: `agent:\"build bot\"` (`\\\"` and `\\\\` inside quotes). "
    "Conditions that cannot all hold give an empty page. An unknown qualifier or a bare word is a 400 "
    "`invalid_request` listing the supported qualifiers."
)
