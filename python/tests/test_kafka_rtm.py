"""Spark's real-time mode (`trigger(realTime=...)`, Kafka source only) with a real Kafka broker:
the writer directly and through lakebase-proxy, in all three modes.

The epoch is made longer than the test (realTime="5 minutes"), so the task that reads a Kafka
partition never ends while the rows arrive: every row must reach the table through the
writer's timer (`batch_interval_ms`) while process() keeps being called, not at close().
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

import kafka_support as ks
from kafka_support import broker  # noqa: F401  (fixture)
from lakebase_foreachwriter import LakebaseForeachWriter
from proxyproc import free_port, start_proxy

ROWS = 1000
LONG_EPOCH = "5 minutes"
MODES = [("insert", {}), ("bulk-insert", {}), ("upsert", {"primary_keys": ["id"]})]


@pytest.fixture(scope="module")
def proxy(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = start_proxy(pg, tmp_path_factory.mktemp("proxy"),
                                admin={"listen": f"127.0.0.1:{free_port()}"},
                                pool={"min_size": 1, "max_size": 2})
    yield address
    assert proc.stop() == 0, proc.log[-5000:]


def run_rtm(spark: Any, broker: Any, db: Any, table: str, tmp_path: Any,
            writer: LakebaseForeachWriter) -> None:
    topic = ks.new_topic(broker)
    query = (ks.kafka_rows(spark, broker, topic).writeStream.foreach(writer)
             .outputMode("update").option("checkpointLocation", str(tmp_path / "ck"))
             .trigger(realTime=LONG_EPOCH).start())
    trickle = None
    try:
        ks.produce(broker, topic, 0, ROWS, rows_per_s=3000)
        trickle = ks.Trickle(broker, topic, ROWS, rows_per_s=1000)
        ks.wait_rows(db, table, ROWS, query)
        # Still the first epoch: nothing of this came from close().
        assert query.isActive and not query.recentProgress, query.recentProgress
    finally:
        query.stop()
        end = trickle.stop() if trickle is not None else ROWS
    counts = ks.id_counts(db, table)
    assert {i: counts.get(i) for i in range(ROWS)} == {i: 1 for i in range(ROWS)}
    # The rows of the trickle that made it before the stop: each once, none unknown.
    assert set(counts.values()) == {1} and max(counts) < end
    bad = db.execute(f'SELECT count(*) FROM "{table}" WHERE payload <> \'row \' || id '
                     f'OR part <> id % 2 OR event_time IS NULL').fetchone()[0]
    assert bad == 0


@pytest.mark.parametrize("mode,extra", MODES, ids=[m for m, _ in MODES])
def test_rtm_direct(spark, broker, db, conn_args, table_name, tmp_path, mode, extra):
    ks.create_table(db, table_name, keyed=mode == "upsert")
    writer = LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, mode=mode, **conn_args,
                                   batch_interval_ms=50, **extra)
    run_rtm(spark, broker, db, table_name, tmp_path, writer)


@pytest.mark.parametrize("mode,extra", MODES, ids=[m for m, _ in MODES])
def test_rtm_through_proxy(spark, broker, db, proxy, table_name, tmp_path, mode, extra):
    ks.create_table(db, table_name, keyed=mode == "upsert")
    writer = LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, mode=mode, proxy=proxy,
                                   batch_interval_ms=50, **extra)
    run_rtm(spark, broker, db, table_name, tmp_path, writer)


def test_quiet_task_keeps_its_proxy_session(pg, db, table_name, tmp_path, monkeypatch):
    """A real-time task whose partition has no rows for longer than the proxy's idle timeout
    keeps its session (empty flushes), and its later rows are written."""
    from lakebase_foreachwriter import proxy_sink
    from pyspark.sql import Row

    monkeypatch.setattr(proxy_sink, "KEEPALIVE_S", 0.5)
    proc, address = start_proxy(pg, tmp_path, admin={"listen": f"127.0.0.1:{free_port()}"},
                                ingest={"idle_timeout_s": 2})
    try:
        ks.create_table(db, table_name)
        writer = LakebaseForeachWriter(table=table_name, df=ks.SCHEMA, proxy=address,
                                       batch_interval_ms=20)
        assert writer.open(0, 0)
        writer.process(Row(id=1, part=1, payload="row 1", event_time=None))
        time.sleep(5)  # longer than idle_timeout_s: only the keepalives hold the session
        writer.process(Row(id=3, part=1, payload="row 3", event_time=None))
        writer.close(None)
    finally:
        assert proc.stop() == 0, proc.log[-5000:]
    assert ks.id_counts(db, table_name) == {1: 1, 3: 1}
