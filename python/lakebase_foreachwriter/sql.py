"""SQL text for the direct sink, identifiers always quoted through psycopg.sql."""

from __future__ import annotations

from typing import Sequence

from psycopg import sql

from .target import Target

# PostgreSQL accepts at most 65535 bind parameters in one statement.
MAX_PARAMETERS = 65535
TARGET_ALIAS = "target"




def table_identifier(target: Target) -> sql.Identifier:
    if target.schema:
        return sql.Identifier(target.schema, target.table)
    return sql.Identifier(target.table)


def _column_list(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def rows_per_statement(target: Target, batch_size: int) -> int:
    """How many rows one multi-row VALUES statement may carry."""
    return max(1, min(batch_size, MAX_PARAMETERS // max(1, len(target.columns))))


def _values(ncolumns: int, nrows: int) -> sql.SQL:
    row = "(" + ", ".join(["%s"] * ncolumns) + ")"
    return sql.SQL(", ".join([row] * nrows))


def insert_statement(target: Target, nrows: int) -> sql.Composed:
    """INSERT INTO t (cols) VALUES (...), (...) with nrows rows of placeholders."""
    return sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        table_identifier(target), _column_list(target.columns),
        _values(len(target.columns), nrows))


def _update_assignment(target: Target, column: str) -> sql.Composed:
    col = sql.Identifier(column)
    if column in target.coalesce_columns:
        # Keep the stored value where the new one is NULL.
        return sql.SQL("{} = COALESCE(EXCLUDED.{}, {}.{})").format(
            col, col, sql.Identifier(TARGET_ALIAS), col)
    return sql.SQL("{} = EXCLUDED.{}").format(col, col)


def _conflict_action(target: Target) -> sql.Composable:
    updated = [c for c in target.columns if c not in target.primary_keys]
    if not updated:
        return sql.SQL("DO NOTHING")
    action = sql.SQL("DO UPDATE SET {}").format(
        sql.SQL(", ").join(_update_assignment(target, c) for c in updated))
    if target.version_column:
        # 0.1's rule (docs/ingest-protocol.md 6.3): the incoming row updates the stored one
        # when its version is greater, or when either version is NULL; equal does not.
        v = sql.Identifier(target.version_column)
        alias = sql.Identifier(TARGET_ALIAS)
        action = sql.SQL("{} WHERE EXCLUDED.{} IS NULL OR {}.{} IS NULL OR EXCLUDED.{} > {}.{}"
                         ).format(action, v, alias, v, v, alias, v)
    return action


def upsert_statement(target: Target, nrows: int) -> sql.Composed:
    """INSERT ... VALUES ... ON CONFLICT (keys) DO UPDATE SET ... (or DO NOTHING)."""
    return sql.SQL("INSERT INTO {} AS {} ({}) VALUES {} ON CONFLICT ({}) {}").format(
        table_identifier(target), sql.Identifier(TARGET_ALIAS), _column_list(target.columns),
        _values(len(target.columns), nrows), _column_list(target.primary_keys),
        _conflict_action(target))


def copy_statement(target: Target) -> sql.Composed:
    """COPY t (cols) FROM STDIN in the text format the encoder produces."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        table_identifier(target), _column_list(target.columns))
