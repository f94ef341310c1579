"""The direct path's catalog lookup: the target table and its columns as the server has them.

Run once per task, in open(). Names are matched with names.match_name (exact first, else the
unique case-insensitive match); anything missing or ambiguous is a ConfigurationError naming
the candidates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import psycopg

from .errors import ConfigurationError
from .names import SQL_FOLD, match_name, qualified
from .target import Target

# Relations a row can be written to: tables, partitioned tables, views, foreign tables.
# Without a schema, the schemas PostgreSQL itself searches (temporary schema, pg_catalog and
# search_path, in that order) with their position; with one, schemas matching it.
_TABLES_SQL = f"""
SELECT n.nspname, c.relname, c.oid::bigint,
       array_position(current_schemas(true), n.nspname) AS path_position
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'f')
  AND {SQL_FOLD.format('c.relname')} = {SQL_FOLD.format('%(table)s')}
  AND CASE WHEN %(schema)s::text IS NULL THEN n.nspname = ANY(current_schemas(true))
           ELSE {SQL_FOLD.format('n.nspname')} = {SQL_FOLD.format('%(schema)s')} END
ORDER BY path_position NULLS LAST, n.nspname, c.relname
"""

_COLUMNS_SQL = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = %(oid)s::oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Resolved:
    """The target with the catalog's names, and each column's format_type(), in order."""

    target: Target
    types: Tuple[str, ...]


def pick_table(schema: Optional[str], table: str,
               rows: List[Tuple[str, str, int, Optional[int]]]) -> Tuple[str, str, int]:
    """(schema, table, oid) among the case-insensitive candidates `rows` (ordered by search
    path position): an exact match (the first in the path), else the only candidate."""
    wanted = qualified(schema, table)
    exact = [r for r in rows if r[1] == table and (schema is None or r[0] == schema)]
    if exact:
        return exact[0][0], exact[0][1], exact[0][2]
    if len(rows) == 1:
        return rows[0][0], rows[0][1], rows[0][2]
    if rows:
        raise ConfigurationError(
            f"table {wanted!r} matches several tables when case is ignored: "
            f"{', '.join(repr(qualified(r[0], r[1])) for r in rows)}; write the exact name")
    where = "in schema " + repr(schema) if schema else "in the search_path"
    raise ConfigurationError(f"table {wanted!r} does not exist {where} (nor any table of that "
                             "name in another letter case)")


def resolve(conn: psycopg.Connection, target: Target) -> Resolved:
    """The target with its table and column names as the catalog spells them."""
    with conn.cursor() as cur:
        cur.execute(_TABLES_SQL, {"schema": target.schema, "table": target.table})
        schema, table, oid = pick_table(target.schema, target.table, cur.fetchall())
        cur.execute(_COLUMNS_SQL, {"oid": oid})
        catalog: Dict[str, str] = dict(cur.fetchall())
    conn.rollback()  # the lookup's transaction; the batches open their own
    where = f"of table {qualified(schema, table)!r}"
    names = {c: match_name(c, list(catalog), "column", where) for c in target.columns}
    resolved = dataclasses.replace(
        target, schema=schema, table=table, columns=tuple(names[c] for c in target.columns),
        primary_keys=tuple(names[c] for c in target.primary_keys),
        version_column=names[target.version_column] if target.version_column else None,
        coalesce_columns=tuple(names[c] for c in target.coalesce_columns))
    duplicates = sorted({n for n in resolved.columns if resolved.columns.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"several DataFrame columns map to the same column {where}: "
                                 f"{duplicates}")
    return Resolved(resolved, tuple(catalog[n] for n in resolved.columns))
