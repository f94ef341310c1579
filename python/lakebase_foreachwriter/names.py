"""Matching the names a user wrote against the names the catalog holds (pure, shared rule).

The rule, the same on the direct path and in lakebase-proxy (docs/ingest-protocol.md, Open):
an exact (case-sensitive) match first; otherwise the one name that matches ignoring the case of
ASCII letters (as PostgreSQL folds unquoted names, and as Spark compares column names), so
Spark's `userId` finds a column created as `userid`; none or several: an error naming the
candidates. What is sent is always the catalog's name, quoted.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from .errors import ConfigurationError

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# The same fold in SQL, for catalog queries (translate() is ASCII-exact, lower() is not).
SQL_FOLD = "translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


def fold(name: str) -> str:
    """The name with ASCII letters lower-cased (nothing else changes)."""
    return name.translate(_ASCII_LOWER)


def match_name(wanted: str, candidates: Sequence[str], what: str, where: str = "") -> str:
    """The catalog's name for `wanted`: exact, else the unique case-insensitive match."""
    if wanted in candidates:
        return wanted
    found = unique_folded(wanted, candidates)
    if len(found) == 1:
        return found[0]
    place = f" {where}" if where else ""
    if found:
        raise ConfigurationError(
            f"{what} {wanted!r}{place} matches several names when case is ignored: "
            f"{', '.join(repr(f) for f in found)}; write the exact name")
    raise ConfigurationError(f"{what} {wanted!r}{place} does not exist (there are: "
                             f"{', '.join(repr(c) for c in candidates) or 'none'})")


def unique_folded(wanted: str, candidates: Sequence[str]) -> List[str]:
    """Candidates equal to `wanted` when ASCII case is ignored, each once, in order."""
    key = fold(wanted)
    seen: List[str] = []
    for c in candidates:
        if fold(c) == key and c not in seen:
            seen.append(c)
    return seen


def qualified(schema: Optional[str], table: str) -> str:
    return f"{schema}.{table}" if schema else table
