"""Exactly-once writes (exactly_once=True): a progress row per (query, partition, epoch).

Spark calls open(partition_id, epoch_id) on every attempt of a task, and a retried task or a
query restarted from its checkpoint replays the same input for the same epoch, though not
always under the same partition_id (progress_key.py): the partition is identified by its
epoch's first row instead. Each flush commits, in the same transaction as its rows, how many
rows of this (query, partition, epoch) are now durable:

    <progress_table> (query_id text, partition_id bigint, epoch_id bigint,
                      rows_committed bigint, complete boolean, updated_at timestamptz)

(partition_id holds the partition's key.) The first process() reads that count; the writer then
skips exactly that many leading rows of the replayed partition and writes what follows
(complete, set by close(None), is informational: in real-time mode a replayed "complete" epoch
can hold more rows, writer.py). This is exact only if the replay yields the same rows in the
same order, and no two partitions of an epoch start with the same row (see python/README.md
for what happens when they do).

Each flush's progress statement comes first in its transaction and only advances the count
from the value this attempt expects, so it also takes the row lock that serializes two
attempts of one partition (a zombie task, speculative execution): the loser sees another
count and fails instead of writing twice. A retry of a flush whose commit was lost finds its
own count already there and skips the rows. The first flush of a task deletes the query's rows
of older epochs (Spark never replays an epoch once a later one has started).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import psycopg
from psycopg import sql

from .errors import WriteError
from .progress_key import (QUERY_ID_PROPERTY, ProgressName, ReplayCount,  # noqa: F401
                           split_progress_table, task_query_id)
from .validation import DEFAULT_PROGRESS_TABLE

DEFAULT_TABLE = DEFAULT_PROGRESS_TABLE


def _ident(schema: Optional[str], table: str) -> sql.Identifier:
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


@dataclass(frozen=True)
class ProgressTable(ProgressName):
    """The table's name (plain data, pickled) and the statements on it."""

    def create(self) -> sql.Composed:
        return sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (query_id text NOT NULL, partition_id bigint NOT NULL,"
            " epoch_id bigint NOT NULL, rows_committed bigint NOT NULL,"
            " complete boolean NOT NULL DEFAULT false,"
            " updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (query_id, partition_id, epoch_id))").format(self._name())

    def read(self) -> sql.Composed:
        return sql.SQL("SELECT rows_committed, complete FROM {} WHERE query_id = %s"
                       " AND partition_id = %s AND epoch_id = %s").format(self._name())

    def advance(self) -> sql.Composed:
        """Sets the count to %(new)s if it is %(old)s (or absent and %(old)s is 0)."""
        return sql.SQL(
            "INSERT INTO {t} AS p (query_id, partition_id, epoch_id, rows_committed, complete)"
            " VALUES (%(q)s, %(p)s, %(e)s, %(new)s, %(complete)s)"
            " ON CONFLICT (query_id, partition_id, epoch_id) DO UPDATE SET"
            " rows_committed = EXCLUDED.rows_committed, complete = p.complete OR EXCLUDED.complete,"
            " updated_at = now() WHERE p.rows_committed = %(old)s"
            " RETURNING 1").format(t=self._name())

    def prune(self) -> sql.Composed:
        """The query's rows of older epochs, whatever their key (it changes every epoch)."""
        return sql.SQL("DELETE FROM {} WHERE query_id = %s AND epoch_id < %s").format(
            self._name())

    def _name(self) -> sql.Identifier:
        return _ident(self.schema, self.table)


def parse_progress_table(name: Any) -> ProgressTable:
    parsed = split_progress_table(name)
    return ProgressTable(parsed.schema, parsed.table)


class Progress(ReplayCount):
    """One task's progress: rows to skip in process(), the count to advance at each flush."""

    def __init__(self, table: ProgressTable, query_id: str, spark_partition: int,
                 epoch_id: int) -> None:
        super().__init__(table, query_id, spark_partition, epoch_id)
        self.table = table
        self._pruned = False

    def load(self, conn: psycopg.Connection) -> None:
        """Creates the table if missing and reads this partition's count (own transaction);
        after identify()."""
        assert self.key is not None
        try:
            conn.execute(self.table.create())
            conn.commit()
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            conn.rollback()  # another task created it at the same moment
        row = conn.execute(self.table.read(), self.key).fetchone()
        conn.commit()
        self.loaded(*((int(row[0]), bool(row[1])) if row else (0, False)))

    def claim(self, cur: psycopg.Cursor[Any], rows: int, complete: bool = False) -> bool:
        """First statement of a flush's transaction. False: this flush already committed
        (a retry after a lost commit), so the caller rolls back and writes nothing."""
        assert self.key is not None
        new = self.committed + rows
        params = dict(q=self.key[0], p=self.key[1], e=self.key[2], old=self.committed, new=new,
                      complete=complete)
        if cur.execute(self.table.advance(), params).fetchone() is not None:
            if not self._pruned:
                cur.execute(self.table.prune(), (self.query_id, self.epoch_id))
            return True
        found = cur.execute(self.table.read(), self.key).fetchone()
        if found is not None and int(found[0]) == new:
            return False
        raise WriteError(f"exactly_once: progress of query {self.key[0]} partition key "
                         f"{self.key[1]} (Spark partition {self.spark_partition}) epoch "
                         f"{self.key[2]} is {found and found[0]}, expected {self.committed}: "
                         "another attempt of this partition is writing it, or another "
                         "partition of this epoch starts with the same row (exactly_once "
                         "needs them to differ: python/README.md)", "40001")

    def committed_now(self, rows: int) -> None:
        """The flush's transaction committed (or had committed before)."""
        self.committed += rows
        self._pruned = True

    def finish(self, conn: psycopg.Connection) -> None:
        """Marks the epoch complete (close(None) came; informational, see open())."""
        with conn.cursor() as cur:
            done = self.claim(cur, 0, complete=True)
        if done:
            conn.commit()
        else:
            conn.rollback()
        self.complete = True
