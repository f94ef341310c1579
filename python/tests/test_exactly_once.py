"""exactly_once=True, directly (progress.py) and through lakebase-proxy (FlushProgress and
ProgressQuery, docs/ingest-protocol.md): a retried task or a restarted query replays
(partition, epoch) and the table still holds every source row once.

Spark cases use the Kafka source (tests/harness/kafkaharness.py) in micro-batch mode; the same
cases with exactly_once=False show the duplicates the option removes. The
writer-level cases call open/process/close as Spark does, with query_name standing in for
the streaming query's id.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import psycopg
import pytest
from pyspark import cloudpickle

import kafka_support as ks
from kafka_support import broker  # noqa: F401  (fixture)
from lakebase_foreachwriter import ConfigurationError, LakebaseForeachWriter
from lakebase_foreachwriter import ingest_protocol
from proxyproc import ProxyProcess, free_port, proxy_sections, start_proxy, write_ini

ROWS = 1000
FAIL_AFTER = 250  # rows of partition 0 processed before its first attempt fails
BATCH = 100  # so that 200 of them are committed when it fails
MODES = {"insert": {}, "bulk-insert": {}, "upsert": {"primary_keys": ["id"]}}

# FailOnce travels to Spark's Python workers by value: they cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailOnce:
    """A writer whose task for partition 0 raises after FAIL_AFTER rows on its first attempt,
    as a task that dies mid-epoch (Spark in local[2,4] retries it)."""

    def __init__(self, writer: LakebaseForeachWriter) -> None:
        self.writer = writer
        self.armed = False
        self.seen = 0

    def open(self, partition_id: int, epoch_id: int) -> bool:
        from pyspark import TaskContext

        self.armed = partition_id == 0 and TaskContext.get().attemptNumber() == 0
        self.seen = 0
        return self.writer.open(partition_id, epoch_id)

    def process(self, row: Any) -> None:
        self.seen += 1
        if self.armed and self.seen > FAIL_AFTER:
            raise RuntimeError("injected task failure")
        self.writer.process(row)

    def close(self, error: Optional[BaseException]) -> None:
        self.writer.close(error)


@pytest.fixture(scope="module")
def proxy(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = start_proxy(pg, tmp_path_factory.mktemp("proxy"),
                                pool={"min_size": 1, "max_size": 2})
    yield address
    assert proc.stop() == 0, proc.log[-5000:]


def make_writer(conn_args: Dict[str, Any], table: str, mode: str,
                exactly_once: bool, **kw: Any) -> LakebaseForeachWriter:
    return LakebaseForeachWriter(table=table, df=ks.SCHEMA, mode=mode, batch_size=BATCH,
                                 batch_interval_ms=50, exactly_once=exactly_once,
                                 progress_table=f"progress_{table}", **MODES[mode],
                                 **conn_args, **kw)


def duplicates(counts: Dict[int, int]) -> int:
    return sum(n - 1 for n in counts.values())


def check(counts: Dict[int, int], exactly_once: bool, upto: int = ROWS) -> None:
    """Every id below `upto` is there; once each with exactly_once, some twice without."""
    assert all(counts.get(i, 0) >= 1 for i in range(upto)), \
        [i for i in range(upto) if i not in counts][:10]
    if exactly_once:
        assert duplicates(counts) == 0, {i: n for i, n in counts.items() if n > 1}
    else:
        assert duplicates(counts) > 0


def start(spark: Any, broker: Any, topic: str, writer: Any, ck: str, **trigger: Any) -> Any:
    return (ks.kafka_rows(spark, broker, topic).writeStream.foreach(writer)
            .outputMode("update").option("checkpointLocation", ck).trigger(**trigger).start())


# ---- a task that fails once (micro-batch) ---------------------------------------------------

@pytest.mark.parametrize("mode,exactly_once,via", [
    ("insert", False, "direct"), ("insert", True, "direct"), ("bulk-insert", False, "direct"),
    ("bulk-insert", True, "direct"), ("upsert", True, "direct"),
    ("insert", False, "proxy"), ("insert", True, "proxy"), ("bulk-insert", True, "proxy"),
    ("upsert", True, "proxy")])
def test_failed_task_micro_batch(spark, broker, db, conn_args, table_name, tmp_path, mode,
                                 exactly_once, via, request):
    ks.create_table(db, table_name, keyed=mode == "upsert")
    topic = ks.new_topic(broker)
    ks.produce(broker, topic, 0, ROWS)
    where = conn_args if via == "direct" else {"proxy": request.getfixturevalue("proxy")}
    writer = FailOnce(make_writer(where, table_name, mode, exactly_once))
    query = start(spark, broker, topic, writer, str(tmp_path / "ck"), availableNow=True)
    query.awaitTermination(180)
    assert query.exception() is None, query.exception()
    counts = ks.id_counts(db, table_name)
    check(counts, exactly_once)
    assert max(counts) == ROWS - 1


# ---- the writer as Spark calls it -----------------------------------------------------------

def rows(first: int, count: int) -> List[Any]:
    from pyspark.sql import Row

    return [Row(id=i, part=0, payload=f"row {i}", event_time=None)
            for i in range(first, first + count)]


def key_of(first_id: int) -> int:
    """The progress key of a partition whose epoch starts with rows(first_id, ...): the first
    63 bits of SHA-256 of that row as COPY text (docs/ingest-protocol.md 6.5)."""
    line = f"{first_id}\t0\trow {first_id}\t\\N\n".encode()
    return int.from_bytes(hashlib.sha256(line).digest()[:8], "big") >> 1


def run_task(writer: LakebaseForeachWriter, epoch: int, batch: List[Any],
             fail_after: Optional[int] = None, partition: int = 0) -> bool:
    if not writer.open(partition, epoch):
        writer.close(None)
        return False
    for n, row in enumerate(batch):
        if fail_after is not None and n == fail_after:
            writer.close(RuntimeError("task failed"))
            return True
        writer.process(row)
    writer.close(None)
    return True


def progress_rows(db: psycopg.Connection, table: str) -> List[Any]:
    return db.execute(f'SELECT partition_id, epoch_id, rows_committed, complete FROM '
                      f'"progress_{table}" ORDER BY 1, 2').fetchall()


@pytest.mark.parametrize("via,mode", [("direct", "insert"), ("proxy", "insert"),
                                      ("proxy", "bulk-insert"), ("proxy", "upsert")])
def test_writer_replay_skips_committed_rows_and_complete_epochs(db, conn_args, table_name, via,
                                                                mode, request):
    ks.create_table(db, table_name, keyed=mode == "upsert")
    where = conn_args if via == "direct" else {"proxy": request.getfixturevalue("proxy")}
    writer = make_writer(where, table_name, mode, True, query_name="q1")
    batch = rows(0, 250)
    assert run_task(writer, 7, batch, fail_after=230)  # 200 committed, 30 dropped
    assert len(ks.id_counts(db, table_name)) == 200
    assert progress_rows(db, table_name) == [(key_of(0), 7, 200, False)]
    assert run_task(writer, 7, batch)  # the retry writes only the other 50
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(250)}
    assert progress_rows(db, table_name) == [(key_of(0), 7, 250, True)]
    assert run_task(writer, 7, batch)  # complete: the replay writes nothing
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(250)}
    # Real-time mode: Spark closes an epoch that query.stop() cut short with close(None), and
    # after the restart replays it past its old end: the rows after the committed ones are new.
    assert run_task(writer, 7, rows(0, 300))
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(300)}
    assert progress_rows(db, table_name) == [(key_of(0), 7, 300, True)]
    assert run_task(writer, 8, rows(300, 10))  # a newer epoch prunes the older
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(310)}
    assert progress_rows(db, table_name) == [(key_of(300), 8, 10, True)]


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_replay_under_other_partition_ids_skips_each_partitions_own_rows(
        db, conn_args, table_name, via, request):
    """Spark does not keep its partition ids across a query restart (a restored batch's Kafka
    partitions are planned in another order): the replay of what Spark partition 0 wrote comes
    as partition 1 and the other way round. Each is known by its first row and skips exactly
    its own committed rows; a task without rows writes no progress row."""
    ks.create_table(db, table_name)
    where = conn_args if via == "direct" else {"proxy": request.getfixturevalue("proxy")}
    writer = make_writer(where, table_name, "insert", True, query_name="q5")
    a, b = rows(0, 250), rows(1000, 250)
    assert run_task(writer, 5, a, fail_after=230, partition=0)  # 200 committed
    assert run_task(writer, 5, b, fail_after=130, partition=1)  # 100 committed
    assert run_task(writer, 5, [], partition=2)
    assert len(ks.id_counts(db, table_name)) == 300
    assert run_task(writer, 5, b, partition=0)  # after the restart: swapped
    assert run_task(writer, 5, a, partition=1)
    assert ks.id_counts(db, table_name) == {i: 1 for i in list(range(250))
                                            + list(range(1000, 1250))}
    assert progress_rows(db, table_name) == sorted([(key_of(0), 5, 250, True),
                                                    (key_of(1000), 5, 250, True)])


def test_writer_without_exactly_once_writes_the_replay_again(db, conn_args, table_name):
    ks.create_table(db, table_name)
    writer = make_writer(conn_args, table_name, "insert", False)
    batch = rows(0, 250)
    run_task(writer, 7, batch, fail_after=230)
    run_task(writer, 7, batch)
    assert duplicates(ks.id_counts(db, table_name)) == 200


def test_another_attempt_writing_the_same_partition_fails_instead_of_duplicating(
        db, conn_args, table_name):
    """Two attempts of one (partition, epoch) at once (a zombie task): the progress row
    serializes them; the same rows again are skipped, a different count is an error."""
    ks.create_table(db, table_name)
    first = make_writer(conn_args, table_name, "insert", True, query_name="q2")
    same = make_writer(conn_args, table_name, "insert", True, query_name="q2")
    other = LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, batch_size=BATCH // 2,
                                  exactly_once=True, progress_table=f"progress_{table_name}",
                                  query_name="q2", **conn_args)
    assert first.open(0, 1) and same.open(0, 1) and other.open(0, 1)
    batch = rows(0, BATCH)
    same.process(batch[0])  # each reads the count (0) at its first row
    other.process(batch[0])
    for row in batch:
        first.process(row)  # the 100th row flushes: progress 100
    for row in batch[1:]:
        same.process(row)  # its flush of the same 100 rows finds them committed
    with pytest.raises(Exception, match="another attempt of this partition"):
        for row in batch[1:BATCH // 2]:
            other.process(row)
    other.close(RuntimeError("failed"))
    same.close(None)
    first.close(None)
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(BATCH)}


def test_exactly_once_needs_a_query_id(db, conn_args, table_name):
    ks.create_table(db, table_name)
    writer = make_writer(conn_args, table_name, "insert", True)
    with pytest.raises(ConfigurationError, match="query_name"):
        writer.open(0, 0)


@pytest.mark.parametrize("bad", [dict(exactly_once="yes"), dict(progress_table="a.b.c"),
                                 dict(query_name=""), dict(progress_table="")])
def test_bad_exactly_once_arguments(conn_args, table_name, bad):
    with pytest.raises(ConfigurationError):
        LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, **conn_args,
                              **{"exactly_once": True, **bad})


def test_exactly_once_needs_a_proxy_that_speaks_1_1(db, proxy, table_name, monkeypatch):
    """A proxy older than protocol 1.1 cannot write progress rows: open() says so."""
    ks.create_table(db, table_name)
    monkeypatch.setattr(ingest_protocol, "PROGRESS_MINOR", 2)  # as if the proxy were older
    writer = make_writer({"proxy": proxy}, table_name, "insert", True, query_name="q")
    with pytest.raises(ConfigurationError, match=r"speaks ingest protocol 1\.1; .* needs 1\.2"):
        writer.open(0, 0)


# ---- through the proxy ------------------------------------------------------------------

def test_proxy_restart_between_flushes_replays_exactly_what_is_missing(pg, db, table_name,
                                                                       tmp_path):
    """The proxy stops after a task's first flush committed and before its next: the task
    fails; its retry, through the restarted proxy, skips the committed rows and writes the
    rest, each once."""
    ks.create_table(db, table_name)
    port = free_port()
    ini = write_ini(tmp_path / "proxy.ini", proxy_sections(pg, port))
    env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
    proc = ProxyProcess(ini, env)
    proc.wait_log(r"event=listening")
    writer = make_writer({"proxy": f"127.0.0.1:{port}"}, table_name, "insert", True,
                         query_name="q4", max_retries=0)
    batch = rows(0, 250)
    assert writer.open(0, 3)
    for row in batch[:150]:
        writer.process(row)  # the 100th row flushes (acknowledged before process() goes on)
    assert proc.stop() == 0, proc.log[-5000:]
    with pytest.raises(Exception):
        for row in batch[150:]:
            writer.process(row)  # the next flush finds the proxy gone
        writer.close(None)
    writer.close(RuntimeError("task failed"))
    committed = ks.id_counts(db, table_name)  # 100, or 150 if the writer's timer flushed
    assert len(committed) in (100, 150) and committed == {i: 1 for i in range(len(committed))}
    proc = ProxyProcess(ini, env)
    proc.wait_log(r"event=listening")
    try:
        assert run_task(writer, 3, batch)  # Spark's retry replays the partition
    finally:
        assert proc.stop() == 0, proc.log[-5000:]
    assert ks.id_counts(db, table_name) == {i: 1 for i in range(250)}
    assert progress_rows(db, table_name) == [(key_of(0), 3, 250, True)]


def test_progress_table_in_a_schema_is_created(db, conn_args, table_name):
    schema = f"s_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE SCHEMA "{schema}"')
    ks.create_table(db, table_name)
    writer = LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, exactly_once=True,
                                   progress_table=f"{schema}.Progress", query_name="q3",
                                   **conn_args)
    run_task(writer, 0, rows(0, 5))
    got = db.execute(f'SELECT rows_committed FROM "{schema}"."Progress"').fetchall()
    assert got == [(5,)]


# ---- a whole query stopped and restarted from its checkpoint (micro-batch) ---------------------

class HoldOnce:
    """A writer whose task for partition 0 stops after GATE rows of an epoch while `arm`
    exists, so that the query is stopped in the middle of that epoch: its first flushes are
    committed, the epoch is not in the checkpoint, and the restart replays it."""

    GATE = 250

    def __init__(self, writer: LakebaseForeachWriter, arm: str) -> None:
        self.writer, self.arm = writer, arm
        self.part, self.seen = -1, 0

    def open(self, partition_id: int, epoch_id: int) -> bool:
        self.part, self.seen = partition_id, 0
        return self.writer.open(partition_id, epoch_id)

    def process(self, row: Any) -> None:
        import os
        import time

        self.seen += 1
        if self.seen == 1:  # which Kafka partition this Spark partition reads, per run
            with open(self.arm + ".map", "a") as f:
                f.write(f"{os.path.exists(self.arm)} spark={self.part} kafka={row.part}\n")
        if self.part == 0 and self.seen == self.GATE and os.path.exists(self.arm):
            time.sleep(600)  # until the query is stopped
        self.writer.process(row)

    def close(self, error: Optional[BaseException]) -> None:
        self.writer.close(error)


@pytest.mark.parametrize("mode,via,exactly_once", [
    ("insert", "direct", True), ("insert", "proxy", True), ("bulk-insert", "proxy", True),
    ("insert", "proxy", False)])
def test_query_stopped_mid_stream_and_restarted(spark, broker, pg, db, conn_args, table_name,
                                                tmp_path, mode, via, exactly_once):
    """The query is stopped while an epoch is being written (its first flushes are in the
    table, the checkpoint does not have the epoch), restarted from its checkpoint and, through
    the proxy, the proxy restarted in between: the table holds every source row once (twice
    for some without exactly_once). Spark often gives the Kafka partitions other partition ids
    after the restart (printed); the writer-level case above makes that certain."""
    import time

    ks.create_table(db, table_name)
    topic = ks.new_topic(broker)
    ks.produce(broker, topic, 0, ROWS)
    proc: Optional[ProxyProcess] = None
    where: Dict[str, Any] = conn_args
    if via == "proxy":
        port = free_port()
        ini = write_ini(tmp_path / "proxy.ini", proxy_sections(pg, port))
        env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
        proc = ProxyProcess(ini, env)
        proc.wait_log(r"event=listening")
        where = {"proxy": f"127.0.0.1:{port}"}
    arm = tmp_path / "hold"
    arm.write_text("")
    writer = HoldOnce(make_writer(where, table_name, mode, exactly_once,
                                  query_name="stopped-query"), str(arm))
    ck = str(tmp_path / "ck")
    query = start(spark, broker, topic, writer, ck, availableNow=True)
    try:
        deadline = time.monotonic() + 120
        # partition 0 (the even ids) has its first flush committed, then holds
        first_flush = set(range(0, 2 * BATCH, 2))
        while time.monotonic() < deadline and query.exception() is None and \
                not first_flush <= ks.id_counts(db, table_name).keys():
            time.sleep(0.1)
        assert query.exception() is None, query.exception()
    finally:
        query.stop()  # mid-epoch
    written_before = len(ks.id_counts(db, table_name))
    assert 0 < written_before < ROWS
    arm.unlink()
    if proc is not None:
        assert proc.stop() == 0, proc.log[-5000:]
        proc = ProxyProcess(ini, env)
        proc.wait_log(r"event=listening")
    try:
        query = start(spark, broker, topic, writer, ck, availableNow=True)
        query.awaitTermination(180)
        assert query.exception() is None, query.exception()
    finally:
        if proc is not None:
            assert proc.stop() == 0, proc.log[-5000:]
    counts = ks.id_counts(db, table_name)
    print("partition map (armed, spark, kafka):", (tmp_path / "hold.map").read_text().split("\n"),
          "progress:", progress_rows(db, table_name) if exactly_once else None)
    check(counts, exactly_once)
    assert max(counts) == ROWS - 1
