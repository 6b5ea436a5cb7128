"""Event queries: the `q` qualifier grammar and the list/export parameters, combined into one store filter."""
from maip_events.query.filters import build_filter
from maip_events.query.grammar import QUALIFIERS, Term, parse

__all__ = ["QUALIFIERS", "Term", "build_filter", "parse"]
