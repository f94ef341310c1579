"""exactly_once's names and replay counting, psycopg-free (the proxy path runs without it).

The progress table and its rows are described in progress.py (the direct path, which writes
them itself) and docs/ingest-protocol.md (FlushProgress, ProgressQuery: the proxy writes and
reads them for the proxy path); both use one table layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from .errors import ConfigurationError

log = logging.getLogger(__name__)

QUERY_ID_PROPERTY = "sql.streaming.queryId"  # set by Spark on every task of a streaming query


@dataclass(frozen=True)
class ProgressName:
    """Where the progress rows live: 'table' or 'schema.table' (plain data, pickled)."""

    schema: Optional[str]
    table: str


def split_progress_table(name: Any) -> ProgressName:
    if not isinstance(name, str) or not name or name.count(".") > 1 or "" in name.split("."):
        raise ConfigurationError(f"progress_table {name!r}: expected 'table' or 'schema.table'")
    parts = name.split(".")
    return ProgressName(parts[0], parts[1]) if len(parts) == 2 else ProgressName(None, parts[0])


def task_query_id(query_name: Optional[str]) -> str:
    """query_name when given, else the id of the streaming query running this task."""
    if query_name:
        return query_name
    from pyspark import TaskContext

    ctx = TaskContext.get()
    qid = ctx.getLocalProperty(QUERY_ID_PROPERTY) if ctx is not None else None
    if not qid:
        raise ConfigurationError("exactly_once=True needs a streaming query (Spark sets its id "
                                 "on every task) or query_name=")
    return qid


class ReplayCount:
    """One task's count: rows of this (query, partition, epoch) durable in the table, and the
    leading rows of the replay process() still drops."""

    def __init__(self, name: ProgressName, query_id: str, partition_id: int,
                 epoch_id: int) -> None:
        self.name = name
        self.key = (query_id, partition_id, epoch_id)
        self.committed = 0
        self.to_skip = 0
        self.complete = False

    def loaded(self, committed: int, complete: bool) -> None:
        """What the table said at open()."""
        self.committed, self.complete = committed, complete
        self.to_skip = committed
        if committed:
            log.info("exactly_once: query %s partition %d epoch %d has %d rows committed%s",
                     *self.key, committed, " (complete)" if complete else "")

    def skip(self) -> bool:
        """True for a replayed row that is already in the table (process() drops it)."""
        if self.to_skip > 0:
            self.to_skip -= 1
            return True
        return False
