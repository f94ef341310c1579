"""The writer through lakebase-proxy: the real proxy binary (tests/harness/proxyproc.py) in front
of the harness PostgreSQL, and real Spark in local mode or the writer called as Spark calls it.

The Spark cases are test_streaming.py's, run with a proxied writer; the rest checks what only
the proxy path has: acknowledgements before close() returns, errors arriving in the background,
the proxy's limits, its token, and its bounded number of server connections.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import psycopg
import pytest
from pyspark.sql import Row

import test_streaming as st
from lakebase_foreachwriter import (ConfigurationError, ConnectionFailedError,
                                    LakebaseForeachWriter, WriteError)
from lakebase_foreachwriter.encoding import RowEncoder, copy_line
from lakebase_foreachwriter.validation import dataframe_columns
from proxyproc import ProxyProcess, free_port, start_proxy

# Small frames and flush units, so that the writer's splitting is exercised by every test.
INGEST_LIMITS = {"max_frame_bytes": 65536, "max_flush_bytes": 131072}
POOL = {"min_size": 1, "max_size": 2}


def launch(pg: Any, tmp: Path, **overrides: Any) -> tuple[ProxyProcess, str]:
    ingest = {**INGEST_LIMITS, **overrides.pop("ingest", {})}
    return start_proxy(pg, tmp, ingest=ingest, admin={"listen": f"127.0.0.1:{free_port()}"},
                       **overrides)


def stop(proc: ProxyProcess) -> None:
    rc = proc.stop()
    assert rc == 0, f"proxy exited with {rc}:\n{proc.log[-5000:]}"


@pytest.fixture(scope="module")
def proxy(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = launch(pg, tmp_path_factory.mktemp("proxy"), pool=POOL)
    yield address
    stop(proc)


def proxy_writers(address: str, **fixed: Any) -> Callable[..., LakebaseForeachWriter]:
    """make_writer for test_streaming's checks: no host, no credentials, only the proxy."""
    def make(table: str, schema: Any, **kw: Any) -> LakebaseForeachWriter:
        return LakebaseForeachWriter(table=table, df=schema, proxy=address, **fixed, **kw)
    return make


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


# ---- the streaming cases of test_streaming.py, through the proxy ------------------------

@pytest.mark.parametrize("mode,extra", st.MODES, ids=[m for m, _ in st.MODES])
def test_file_source_all_types_each_mode(spark, db, proxy, table_name, tmp_path, mode, extra):
    st.check_all_types(spark, db, table_name, tmp_path, proxy_writers(proxy), mode, extra)


@pytest.mark.parametrize("mode,extra", st.MODES, ids=[m for m, _ in st.MODES])
def test_rate_source_processing_time_trigger(spark, db, proxy, table_name, tmp_path, mode, extra):
    st.check_rate_source(spark, db, table_name, tmp_path, proxy_writers(proxy), mode, extra)


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_upsert_repeated_keys_in_one_micro_batch_keep_the_last(spark, db, proxy, table_name,
                                                               tmp_path, batch_size):
    st.check_upsert_keeps_the_last(spark, db, table_name, tmp_path, proxy_writers(proxy),
                                   batch_size)


def test_timestamps_follow_the_session_time_zone(spark, db, proxy, table_name, tmp_path):
    st.check_session_zone_timestamps(spark, db, table_name, tmp_path, proxy_writers(proxy))


@st.REJECTED
def test_rejected_row_fails_the_query_with_postgres_message(spark, db, proxy, table_name,
                                                            tmp_path, mode, ddl, message):
    st.check_rejected_row(spark, db, table_name, tmp_path, proxy_writers(proxy), mode, ddl,
                          message)


# ---- the writer called as Spark calls it ------------------------------------------------

def kv_table(db: psycopg.Connection, name: str, v_type: str = "text") -> None:
    db.execute(f'CREATE TABLE "{name}" (id bigint PRIMARY KEY, v {v_type})')


def kv_writer(address: str, table: str, **kw: Any) -> LakebaseForeachWriter:
    return LakebaseForeachWriter(table=f"public.{table}", df=st.KV, proxy=address, **kw)


def kv_rows(n: int, start: int = 0) -> List[Row]:
    return [Row(id=i, v=f"value {i}\twith tab") for i in range(start, start + n)]


def test_close_returns_only_after_every_row_is_committed(db, proxy, table_name):
    kv_table(db, table_name)
    # Far more than one flush unit (131072 bytes) and one frame; no timer flush in between.
    writer = kv_writer(proxy, table_name, batch_size=20000, batch_interval_ms=60000)
    writer.open(0, 0)
    for row in kv_rows(25000):
        writer.process(row)
    writer.close(None)
    # Seen from another connection at the moment close() returns.
    assert count(db, table_name) == 25000
    assert db.execute(f'SELECT v FROM "{table_name}" WHERE id = 7').fetchone()[0] == \
        "value 7\twith tab"


def test_close_with_error_discards_unflushed_rows(db, proxy, table_name):
    kv_table(db, table_name)
    writer = kv_writer(proxy, table_name, batch_size=10, batch_interval_ms=60000)
    writer.open(0, 0)
    for row in kv_rows(25):  # two flushes of 10 go out; 5 rows wait for the next one
        writer.process(row)
    writer.close(RuntimeError("the task failed"))
    # Flushed units still commit (their answers are not awaited); the last 5 rows never do.
    deadline = time.monotonic() + 10
    while count(db, table_name) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    ids = [r[0] for r in db.execute(f'SELECT id FROM "{table_name}" ORDER BY id')]
    assert ids == list(range(20))


def test_close_with_error_before_any_flush_writes_nothing(db, proxy, table_name):
    kv_table(db, table_name)
    writer = kv_writer(proxy, table_name, batch_size=1000, batch_interval_ms=60000)
    writer.open(0, 0)
    for row in kv_rows(100):
        writer.process(row)
    writer.close(RuntimeError("the task failed"))
    time.sleep(0.5)
    assert count(db, table_name) == 0


def test_rejected_flush_is_raised_from_a_later_process_with_its_row(db, proxy, table_name):
    kv_table(db, table_name, "int")
    writer = kv_writer(proxy, table_name, batch_size=3, batch_interval_ms=60000)
    writer.open(3, 1)
    for row in [Row(id=1, v="1"), Row(id=2, v="two"), Row(id=3, v="3")]:
        writer.process(row)  # the third row sends flush 1; its answer comes in the background
    error: Optional[WriteError] = None
    deadline = time.monotonic() + 30
    next_id = 4
    while error is None and time.monotonic() < deadline:
        try:
            writer.process(Row(id=next_id, v=str(next_id)))
            next_id += 1
            time.sleep(0.01)
        except WriteError as exc:
            error = exc
    assert error is not None, "the FlushError never reached process()"
    assert error.sqlstate == "22P02" and error.row == 2
    assert 'invalid input syntax for type integer: "two"' in str(error)
    assert "row 2 of flush 1" in str(error) and "row 2 of this task" in str(error)
    writer.close(error)  # Spark's close(error) after a failed process(): never raises
    assert db.execute(f'SELECT count(*) FROM "{table_name}" WHERE id <= 3').fetchone()[0] == 0


def test_rejected_final_flush_is_raised_from_close(db, proxy, table_name):
    db.execute(f'CREATE TABLE "{table_name}" (id bigint PRIMARY KEY, v text NOT NULL)')
    writer = kv_writer(proxy, table_name, mode="bulk-insert", batch_size=1000)
    writer.open(0, 0)
    for row in [Row(id=1, v="a"), Row(id=2, v="b"), Row(id=3, v=None)]:
        writer.process(row)
    with pytest.raises(WriteError) as info:
        writer.close(None)
    assert info.value.sqlstate == "23502" and info.value.row == 3
    assert 'null value in column "v"' in str(info.value)
    assert count(db, table_name) == 0


def test_a_row_larger_than_the_proxy_accepts_fails_clearly(db, proxy, table_name):
    kv_table(db, table_name)
    writer = kv_writer(proxy, table_name)
    writer.open(0, 0)
    writer.process(Row(id=1, v="x" * 70000))  # over max_frame_bytes (65536)
    with pytest.raises(WriteError, match="row 1 of this task is 70003 bytes") as info:
        writer.close(None)
    assert info.value.sqlstate == "54000"


def test_unreachable_proxy_fails_open(proxy, table_name):
    writer = kv_writer(f"127.0.0.1:{free_port()}", table_name, max_retries=0)
    with pytest.raises(ConnectionFailedError, match="could not open an ingest session"):
        writer.open(0, 0)


def test_unknown_table_fails_open_with_the_proxys_sqlstate(proxy, table_name):
    writer = kv_writer(proxy, table_name)
    with pytest.raises(ConfigurationError) as info:
        writer.open(0, 0)
    assert info.value.sqlstate == "42P01"


def test_spark_names_find_postgres_names_through_the_proxy(db, proxy, table_name):
    """The proxy resolves names by the direct path's rule: Spark's eventId finds eventid,
    table "Events_x" finds events_x; ambiguity fails open() naming the candidates."""
    from pyspark.sql import types as T

    spark_style = T.StructType([T.StructField("eventId", T.LongType()),
                                T.StructField("userId", T.StringType())])
    db.execute(f'CREATE TABLE "{table_name}" (eventid bigint PRIMARY KEY, userid text)')
    writer = LakebaseForeachWriter(table=table_name.upper(), df=spark_style, proxy=proxy,
                                   mode="upsert", primary_keys=["eventId"])
    writer.open(0, 0)
    writer.process(Row(eventId=1, userId="u1"))
    writer.close(None)
    assert db.execute(f'SELECT eventid, userid FROM "{table_name}"').fetchall() == [(1, "u1")]
    db.execute(f'ALTER TABLE "{table_name}" ADD COLUMN "UserId" text')
    writer = LakebaseForeachWriter(table=table_name, df=spark_style, proxy=proxy)
    with pytest.raises(ConfigurationError, match='"userid", "UserId"') as info:
        writer.open(0, 0)
    assert info.value.sqlstate == "42702"


def test_encoder_output_is_within_the_proxys_copy_subset():
    """docs/ingest-protocol.md section 5: escapes \\\\ \\t \\n \\r \\b \\f \\v and \\N only,
    no raw carriage return, no zero byte."""
    encoder = RowEncoder(dataframe_columns(st.ALL_TYPES))
    for row in st.all_types_rows():
        line = copy_line(encoder.encode(row).fields)
        assert "\r" not in line and "\x00" not in line and line.endswith("\n")
        for field in line[:-1].split("\t"):
            i = 0
            while i < len(field):
                if field[i] == "\\":
                    assert field[i + 1:i + 2] in ("\\", "t", "n", "r", "b", "f", "v", "N")
                    assert field[i + 1] != "N" or field == "\\N"
                    i += 2
                else:
                    i += 1


# ---- what the proxy itself brings: a token, a bounded pool ------------------------------

def test_proxy_token_is_required_when_the_proxy_has_one(pg, db, table_name, tmp_path):
    proc, address = launch(pg, tmp_path, ingest={"auth_token": "s3cret-token"})
    try:
        kv_table(db, table_name)
        for token in (None, "wrong"):
            writer = kv_writer(address, table_name, proxy_token=token, max_retries=0)
            with pytest.raises(ConnectionFailedError) as info:
                writer.open(0, 0)
            assert info.value.sqlstate == "28000", info.value
        writer = kv_writer(address, table_name, proxy_token="s3cret-token")
        writer.open(0, 0)
        writer.process(Row(id=1, v="in"))
        writer.close(None)
        assert count(db, table_name) == 1
        assert "s3cret-token" not in proc.log
    finally:
        stop(proc)


def established_to(port: int) -> int:
    """TCP connections accepted on `port` right now (the proxy's end of each ingest session)."""
    total = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    total += 1
    return total


def test_server_connections_stay_within_the_pool_while_8_partitions_write(
        spark, pg, db, table_name, tmp_path):
    max_size = 1  # below Spark's 2 concurrent tasks, so that sharing is proven
    # Its own application_name: the module's proxy keeps its connections open meanwhile.
    app = "lakebase-proxy-pool-test"
    proc, address = launch(pg, tmp_path, pool={"min_size": 1, "max_size": max_size},
                           upstream={"application_name": app})
    try:
        kv_table(db, table_name)
        rows = kv_rows(80000)
        st.write_parquet(spark, rows, st.KV, tmp_path / "src")
        seen = {"server": 0, "clients": 0}
        done = threading.Event()

        def sample() -> None:
            port = int(address.rsplit(":", 1)[1])
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                while not done.is_set():
                    n = conn.execute("SELECT count(*) FROM pg_stat_activity "
                                     "WHERE application_name = %s", (app,)).fetchone()[0]
                    seen["server"] = max(seen["server"], n)
                    seen["clients"] = max(seen["clients"], established_to(port))
                    time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stream = spark.readStream.schema(st.KV).parquet(str(tmp_path / "src")).repartition(8)
        writer = proxy_writers(address)(table_name, st.KV, batch_size=500)
        query = (stream.writeStream.foreach(writer).trigger(availableNow=True)
                 .option("checkpointLocation", str(tmp_path / "ckpt")).start())
        query.awaitTermination(120)
        done.set()
        sampler.join(10)
        assert query.exception() is None, query.exception()
        assert count(db, table_name) == 80000
        partitions = {line.split("partition ")[1].split()[0]
                      for line in proc.log.splitlines() if "event=open" in line}
        assert partitions == {str(p) for p in range(8)}, proc.log[-3000:]
        assert 1 <= seen["server"] <= max_size, seen
        assert seen["clients"] >= 2, seen  # more ingest sessions than server connections
    finally:
        stop(proc)
