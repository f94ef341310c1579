"""exactly_once=True under Spark's real-time mode (`trigger(realTime=...)`, Kafka source): a
task that fails mid-epoch, and a query stopped mid-epoch and restarted from its checkpoint,
directly and through lakebase-proxy (restarted too); the same cases with exactly_once=False show
the duplicates the option removes.

What Spark 4.3 does (measured, python/README.md "Exactly-once"): a Python foreach writer that
raises in process() does not fail its real-time task at once. The JVM keeps reading the Kafka
partition into a buffer and learns of the error only when the epoch's time is up and it calls
close(). The retry (attemptNumber 1, same epoch) starts after the epoch's end time and so reads
no row; its end offset is the epoch's start offset. The next epoch then reads that Kafka
partition again from the start, under the same Spark partition id.

The queries here use a 5 s epoch (the smallest Spark allows by default) so that this happens
within a test. Every task's Spark partition, epoch, attempt, Kafka partition, first row and row
count is printed (the `.log` next to the arm file).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional

import pytest
from pyspark import cloudpickle

import kafka_support as ks
from kafka_support import broker  # noqa: F401  (fixture)
from lakebase_foreachwriter import LakebaseForeachWriter
from proxyproc import ProxyProcess, free_port, proxy_sections, write_ini
from test_exactly_once import check, duplicates, make_writer, start
from test_exactly_once import proxy  # noqa: F401  (fixture)

ROWS = 1000  # each burst: 500 rows per Kafka partition
EPOCH = "5 seconds"
LONG_EPOCH = "20 seconds"
TRICKLE_FIRST = 1_000_000  # ids of the rows that keep the stream going (kafka_support.Trickle)
FAIL_AFTER = 250  # rows of Spark partition 0 its first attempt takes before it raises
# Spark partition 0 stops at the 250th row of its second burst (ids ROWS..2*ROWS-1)
HOLD_AT = range(ROWS + 500, 2 * ROWS)

# Injected travels to Spark's Python workers by value: they cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Injected:
    """The writer, each task logged to `arm`.log, with a fault injected while the file `arm`
    exists: in Spark partition 0, past its first `after` rows of an epoch, at the first row whose
    id is in `ids`, "fail" raises (and removes `arm`: once), "hold" stops until the query is
    stopped. `swap` gives the writer the other of Spark partitions 0 and 1, as Spark itself did
    after a restart in micro-batch mode (python/README.md)."""

    def __init__(self, writer: LakebaseForeachWriter, arm: Path, fault: str, after: int = 0,
                 ids: range = range(sys.maxsize), swap: bool = False) -> None:
        self.writer, self.arm, self.fault = writer, str(arm), fault
        self.after, self.ids, self.swap = after, ids, swap
        self.task, self.part = "", -1
        self.seen, self.first = 0, None

    def open(self, partition_id: int, epoch_id: int) -> bool:
        from pyspark import TaskContext

        attempt = TaskContext.get().attemptNumber()
        self.task = f"epoch={epoch_id} spark={partition_id} attempt={attempt}"
        self.part = partition_id
        self.seen, self.first = 0, None
        if self.swap and partition_id in (0, 1):
            partition_id = 1 - partition_id
        return self.writer.open(partition_id, epoch_id)

    def process(self, row: Any) -> None:
        self.seen += 1
        if self.first is None:
            self.first = f"kafka={row.part} first={row.id}"
        if self.part == 0 and self.seen > self.after and row.id in self.ids:
            self._inject()
        self.writer.process(row)

    def close(self, error: Optional[BaseException]) -> None:
        self._log(f"rows={self.seen} error={type(error).__name__ if error else None}")
        self.writer.close(error)

    def _inject(self) -> None:
        import os

        if self.fault == "fail":
            try:
                os.remove(self.arm)
            except FileNotFoundError:
                return  # failed once already
            self._log(f"rows={self.seen - 1} raises")
            raise RuntimeError("injected task failure")
        if os.path.exists(self.arm):
            self._log(f"rows={self.seen - 1} holds")
            time.sleep(600)  # until the query is stopped (Spark kills this worker)

    def _log(self, what: str) -> None:
        with open(self.arm + ".log", "a") as f:
            f.write(f"{self.task} {self.first} {what}\n")


def task_log(arm: Path) -> List[str]:
    log = Path(str(arm) + ".log")
    return log.read_text().splitlines() if log.exists() else []


def wait_ids(db: Any, table: str, ids: Iterable[int], query: Any, timeout: float = 120) -> None:
    """Polls until every id is in the table; fails early if the query died."""
    want = set(ids)
    deadline = time.monotonic() + timeout
    while not want <= (have := ks.id_counts(db, table).keys()):
        if not query.isActive:
            raise AssertionError(f"query stopped with {len(want - have)} ids missing: "
                                 f"{query.exception()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(want - have)} ids missing after {timeout}s, "
                                 f"e.g. {sorted(want - have)[:10]}")
        time.sleep(0.2)


@contextmanager
def trickling(broker: Any, topic: str, arm: Path) -> Iterator[None]:
    """Keeps rows coming (ids from TRICKLE_FIRST on); at the end prints the tasks' log."""
    trickle = ks.Trickle(broker, topic, TRICKLE_FIRST, rows_per_s=1000)
    try:
        yield
    finally:
        trickle.stop()
        print("tasks:", *task_log(arm), sep="\n  ")


def check_table(db: Any, table: str, exactly_once: bool, upto: int) -> None:
    """check() on ids below `upto`, and with exactly_once no row at all twice (the trickle's
    included)."""
    counts = ks.id_counts(db, table)
    print("rows twice:", duplicates(counts))
    check(counts, exactly_once, upto)
    if exactly_once:
        assert set(counts.values()) == {1}, {i: n for i, n in counts.items() if n > 1}


# ---- a task that fails mid-epoch --------------------------------------------------------------

@pytest.mark.parametrize("mode,via,exactly_once", [
    ("insert", "direct", True), ("bulk-insert", "proxy", True),
    ("insert", "direct", False)])
def test_rtm_failed_task(spark, broker, db, conn_args, table_name, tmp_path, mode, via,
                         exactly_once, request):
    """Spark partition 0 raises after FAIL_AFTER rows (some of them committed); Spark replays
    its Kafka partition in the next epoch: every row once with exactly_once, the committed ones
    twice without."""
    ks.create_table(db, table_name)
    topic = ks.new_topic(broker)
    where = conn_args if via == "direct" else {"proxy": request.getfixturevalue("proxy")}
    arm = tmp_path / "fail"
    arm.write_text("")
    writer = Injected(make_writer(where, table_name, mode, exactly_once), arm, "fail",
                      FAIL_AFTER)
    with trickling(broker, topic, arm):
        query = start(spark, broker, topic, writer, str(tmp_path / "ck"), realTime=EPOCH)
        try:
            ks.produce(broker, topic, 0, ROWS, rows_per_s=3000)
            wait_ids(db, table_name, range(ROWS), query)
            assert not arm.exists(), "the task did not fail"
        finally:
            query.stop()
    check_table(db, table_name, exactly_once, ROWS)


# ---- the query stopped mid-epoch and restarted from its checkpoint ----------------------------

class Proxy:
    """A proxy on a fixed port that can be stopped and started again (or None: direct)."""

    def __init__(self, pg: Any, tmp_path: Path) -> None:
        self.port = free_port()
        self.ini = write_ini(tmp_path / "proxy.ini", proxy_sections(pg, self.port))
        self.env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
        self.proc: Optional[ProxyProcess] = None
        self.start()

    def start(self) -> None:
        self.proc = ProxyProcess(self.ini, self.env)
        self.proc.wait_log(r"event=listening")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            assert proc.stop() == 0, proc.log[-5000:]


@pytest.mark.parametrize("mode,via,exactly_once,swap", [
    ("insert", "direct", True, False), ("bulk-insert", "proxy", True, True),
    ("insert", "proxy", False, False)], ids=["direct", "proxy-swapped-ids", "proxy-no-eo"])
def test_rtm_query_stopped_mid_epoch_and_restarted(spark, broker, pg, db, conn_args,
                                                   table_name, tmp_path, mode, via,
                                                   exactly_once, swap):
    """Epoch 0 writes the first burst; in a later epoch Spark partition 0 stops at the 250th row
    of its second burst while the other partition writes all of its rows; the query is stopped
    (that epoch is not in the checkpoint), the proxy restarted, the query restarted from its
    checkpoint: the table holds every source row once (some twice without exactly_once).

    The two Kafka partitions have very different counts committed in the stopped epoch, so a
    replay that took one partition's count for the other would lose or repeat rows. Spark kept
    its partition ids across these restarts here (the log); the proxy case swaps them on the
    restart to cover what Spark did in micro-batch mode."""
    ks.create_table(db, table_name)
    topic = ks.new_topic(broker)
    proxy_proc = Proxy(pg, tmp_path) if via == "proxy" else None
    where = conn_args if proxy_proc is None else {"proxy": f"127.0.0.1:{proxy_proc.port}"}
    arm = tmp_path / "hold"
    arm.write_text("")
    ck = str(tmp_path / "ck")
    try:
        writer = Injected(make_writer(where, table_name, mode, exactly_once), arm, "hold",
                          ids=HOLD_AT)
        with trickling(broker, topic, arm):
            run_until_stopped_mid_epoch(spark, broker, db, table_name, topic, writer, ck, arm)
            if proxy_proc is not None:
                proxy_proc.stop()
                proxy_proc.start()
            writer.swap = swap
            query = start(spark, broker, topic, writer, ck, realTime=EPOCH)
            try:
                wait_ids(db, table_name, range(2 * ROWS), query)
            finally:
                query.stop()
    finally:
        if proxy_proc is not None:
            proxy_proc.stop()
    check_table(db, table_name, exactly_once, 2 * ROWS)


@pytest.mark.parametrize("exactly_once", [True, False], ids=["eo", "no-eo"])
def test_rtm_proxy_restarted_while_the_query_runs(spark, broker, pg, db, table_name, tmp_path,
                                                  exactly_once):
    """The proxy is stopped (SIGTERM: it answers what it holds and exits) and started again on
    its port while a real-time query writes through it, part of the first burst committed:
    the tasks whose session it ended fail at the epoch's end, Spark replays their input in the
    next epoch, and the table holds every source row once with exactly_once (the replayed
    committed rows twice without). Its epochs are long (LONG_EPOCH), so that the proxy stops
    while the first epoch's tasks still hold their sessions."""
    ks.create_table(db, table_name)
    topic = ks.new_topic(broker)
    proxy_proc = Proxy(pg, tmp_path)
    arm = tmp_path / "log"  # no fault: the file only names the tasks' log
    writer = Injected(make_writer({"proxy": f"127.0.0.1:{proxy_proc.port}"}, table_name,
                                  "bulk-insert", exactly_once), arm, "none", ids=range(0))
    try:
        with trickling(broker, topic, arm):
            query = start(spark, broker, topic, writer, str(tmp_path / "ck"),
                          realTime=LONG_EPOCH)
            try:
                ks.produce(broker, topic, 0, ROWS, rows_per_s=3000)
                wait_rows(db, table_name, ROWS // 5, query)
                proxy_proc.stop()
                proxy_proc.start()
                wait_ids(db, table_name, range(ROWS), query)
            finally:
                query.stop()
    finally:
        proxy_proc.stop()
    assert any(" error=" in line and "error=None" not in line for line in task_log(arm)), \
        "no task lost its session"
    check_table(db, table_name, exactly_once, ROWS)


def wait_rows(db: Any, table: str, n: int, query: Any, timeout: float = 120) -> None:
    """Polls until at least n ids below ROWS are in the table."""
    deadline = time.monotonic() + timeout
    while len([i for i in ks.id_counts(db, table) if i < ROWS]) < n:
        assert query.isActive, query.exception()
        assert time.monotonic() < deadline, f"fewer than {n} rows after {timeout}s"
        time.sleep(0.05)


def run_until_stopped_mid_epoch(spark: Any, broker: Any, db: Any, table: str, topic: str,
                                writer: Injected, ck: str, arm: Path) -> None:
    """The first run of test_rtm_query_stopped_mid_epoch_and_restarted: both bursts produced,
    the query stopped while Spark partition 0 holds in the middle of the second."""
    query = start(spark, broker, topic, writer, ck, realTime=EPOCH)
    try:
        ks.produce(broker, topic, 0, ROWS, rows_per_s=3000)
        wait_ids(db, table, range(ROWS), query)
        wait_epoch_committed(query)
        ks.produce(broker, topic, ROWS, ROWS, rows_per_s=3000)
        held = wait_held(arm, query)
        other = 1 - held  # its rows of the second burst all committed
        wait_ids(db, table, range(ROWS + other, 2 * ROWS, ks.PARTITIONS), query)
    finally:
        query.stop()  # mid-epoch
    before = ks.id_counts(db, table)
    print("before the restart:", len(before), "rows")
    assert len([i for i in before if ROWS <= i < 2 * ROWS]) < ROWS
    arm.unlink()


def wait_epoch_committed(query: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while query.lastProgress is None:
        assert query.isActive, query.exception()
        assert time.monotonic() < deadline, "no epoch committed"
        time.sleep(0.2)


def wait_held(arm: Path, query: Any, timeout: float = 120) -> int:
    """Waits until Spark partition 0 holds; returns the Kafka partition it reads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in task_log(arm):
            if line.endswith(" holds"):
                return int(line.split(" kafka=")[1].split()[0])
        assert query.isActive, query.exception()
        time.sleep(0.2)
    raise AssertionError(f"Spark partition 0 did not hold: {task_log(arm)}")
