"""FTS5 match expressions built from parsed terms: everything typed is a quoted string, never syntax."""

from __future__ import annotations

from .query import Term


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def term_sql(term: Term) -> str:
    return quoted(term.text) + ("*" if term.kind == "prefix" else "")


def fts_all(clauses: list[list[Term]]) -> str:
    """Every clause must match; the alternatives of one clause (a OR b) are any of them."""
    return " AND ".join("(" + " OR ".join(term_sql(t) for t in clause) + ")" for clause in clauses)


def fts_any(terms: list[Term]) -> str:
    return " OR ".join(term_sql(term) for term in terms)


def all_terms(clauses: list[list[Term]]) -> list[Term]:
    return [term for clause in clauses for term in clause]
