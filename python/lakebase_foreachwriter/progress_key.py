"""exactly_once's names and replay counting, psycopg-free (the proxy path runs without it).

The progress table and its rows are described in progress.py (the direct path, which writes
them itself) and docs/ingest-protocol.md (FlushProgress, ProgressQuery: the proxy writes and
reads them for the proxy path); both use one table layout.

A partition's progress is keyed by its epoch's first row, not by Spark's partition_id: Spark
does not keep the mapping from source partitions (Kafka topic-partitions) to its partition ids
across a query restart (it plans a restored batch's partitions in another order than the live
one), while a replay of a source partition starts with the same row. The key is the first 63
bits of SHA-256 of that row as COPY text, so it fits the table's `partition_id bigint` and the
ingest protocol's non-negative int64.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from .encoding import EncodedRow, copy_line
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


def partition_key(first_row: EncodedRow) -> int:
    """The progress key of a partition whose epoch starts with first_row (see above)."""
    text = copy_line(first_row.fields).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


class ReplayCount:
    """One task's count: rows of this (query, partition, epoch) durable in the table, and the
    leading rows of the replay process() still drops. `key` is None until identify() saw the
    epoch's first row; a task that gets no row has no progress row."""

    def __init__(self, name: ProgressName, query_id: str, spark_partition: int,
                 epoch_id: int) -> None:
        self.name = name
        self.query_id, self.epoch_id = query_id, epoch_id
        self.spark_partition = spark_partition  # for messages only
        self.key: Optional[Tuple[str, int, int]] = None
        self.committed = 0
        self.to_skip = 0
        self.complete = False

    def identify(self, first_row: EncodedRow) -> None:
        self.key = (self.query_id, partition_key(first_row), self.epoch_id)

    def loaded(self, committed: int, complete: bool) -> None:
        """What the table said when the first row came."""
        self.committed, self.complete = committed, complete
        self.to_skip = committed
        if committed:
            log.info("exactly_once: query %s Spark partition %d epoch %d (key %d) has %d rows "
                     "committed%s", self.query_id, self.spark_partition, self.epoch_id,
                     self.key[1] if self.key else -1, committed,
                     " (complete)" if complete else "")

    def skip(self) -> bool:
        """True for a replayed row that is already in the table (process() drops it)."""
        if self.to_skip > 0:
            self.to_skip -= 1
            return True
        return False
