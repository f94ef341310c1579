"""lakebase-foreachwriter 0.1 (christophergrant/lakebase-foreachwriter) as a migrating user
calls it, against this package: its constructor arguments, attributes and import lines, and its
integration scenarios (the 15 mode-by-type cases, batching, empty input, hostile strings, its
versioned-upsert and coalesce cases), rewritten here with real PySpark and PostgreSQL.

The calls are 0.1's, unmodified, except for where the server is: 0.1 always connects to port
5432 and, for `localhost`, silently turns TLS off and switches to database `postgres`; here
`port`, `dbname` and `sslmode` name the harness server (see conn01).
"""

from __future__ import annotations

import logging
import threading
import time
import types
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Dict

import psycopg
import pytest
from pyspark import cloudpickle
from pyspark.sql import Row
from pyspark.sql.types import (ArrayType, BooleanType, DateType, DecimalType, DoubleType,
                               FloatType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

from lakebase_foreachwriter import (ConfigurationError, LakebaseForeachWriter,
                                    oauth_credential_provider)

# ---- the constructor, attributes and imports (no server) -------------------------------

NAME_SCHEMA = StructType([StructField("id", IntegerType(), True),
                          StructField("name", StringType(), True)])


def fake_df(schema: StructType) -> Any:
    """0.1's tests pass any object with a .schema; so may users (a Mock, a stand-in)."""
    return types.SimpleNamespace(schema=schema)


def test_positional_order_and_readable_attributes():
    w = LakebaseForeachWriter("user", "pass", "table", fake_df(NAME_SCHEMA), host="host",
                              mode="UPSERT", primary_keys=["id"], batch_size=500,
                              batch_interval_ms=50)
    assert (w.username, w.table, w.mode, w.columns) == ("user", "table", "upsert", ["id", "name"])
    assert w.primary_keys == ["id"] and w.upsert_version_column is None
    assert w.upsert_coalesce_columns == [] and (w.batch_size, w.batch_interval_ms) == (500, 50)
    assert (w.max_queue_size, w.max_retries, w.retry_base_delay_s) == (10_000, 3, 0.5)
    assert w.host == "host" and not hasattr(w, "password")


def test_every_01_argument_is_accepted():
    w = LakebaseForeachWriter(
        username=None, password=None, table="public.events", df=fake_df(NAME_SCHEMA),
        credential_provider=lambda: ("u", "p"), lakebase_name="", host="db.example",
        sslmode=None, mode="Upsert", primary_keys=["id"], upsert_version_column=None,
        upsert_coalesce_columns="name", batch_size=10, batch_interval_ms=5,
        use_multirow_sql=True, max_queue_size=7, max_retries=1, retry_base_delay_s=0.1)
    assert w.upsert_coalesce_columns == ["name"] and w.use_multirow_sql is True
    assert (w.max_queue_size, w.config.sslmode, w.config.host) == (7, "require", "db.example")
    assert w.lakebase_name is None


@pytest.mark.parametrize("lakebase_name", [None, ""])
def test_empty_lakebase_name_with_host_means_none(lakebase_name):
    w = LakebaseForeachWriter("u", "p", "t", fake_df(NAME_SCHEMA), lakebase_name=lakebase_name,
                              host="db.example")
    assert (w.host, w.lakebase_name) == ("db.example", None)


def test_host_wins_over_lakebase_name_as_in_01(caplog):
    """0.1 uses `host` and never looks the name up; no Databricks call is made here either."""
    with caplog.at_level(logging.WARNING, logger="lakebase_foreachwriter"):
        w = LakebaseForeachWriter("u", "p", "t", fake_df(NAME_SCHEMA), lakebase_name="inst",
                                  host="db.example")
    assert w.host == "db.example"
    assert [r.message for r in caplog.records if "is not looked up" in r.message]


@pytest.mark.parametrize("mode", ["insert", "bulk-insert", "INSERT"])
def test_upsert_options_outside_upsert_are_ignored_with_one_warning(mode, caplog):
    schema = StructType(NAME_SCHEMA.fields + [StructField("ts", TimestampType())])
    with caplog.at_level(logging.WARNING, logger="lakebase_foreachwriter"):
        w = LakebaseForeachWriter("u", "p", "t", fake_df(schema), host="h", mode=mode,
                                  primary_keys=["id"], upsert_version_column="ts",
                                  upsert_coalesce_columns=["name"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "primary_keys, upsert_version_column, upsert_coalesce_columns" in warnings[0].message
    assert w.primary_keys == [] and w.upsert_version_column is None and w.mode == mode.lower()


def test_credential_provider_wins_over_username_and_password(caplog):
    with caplog.at_level(logging.WARNING, logger="lakebase_foreachwriter"):
        w = LakebaseForeachWriter("u", "p", "t", fake_df(NAME_SCHEMA), host="h",
                                  credential_provider=lambda: ("x", "y"))
    assert w.credential_provider() == ("x", "y")
    assert any("provider returns both" in r.message for r in caplog.records)


def test_upsert_without_primary_keys_is_a_value_error_with_01s_words():
    with pytest.raises(ValueError, match="primary_keys required for upsert mode"):
        LakebaseForeachWriter("u", "p", "t", fake_df(NAME_SCHEMA), host="h", mode="upsert",
                              primary_keys=None)


def test_01_import_lines_and_logger():
    from lakebase_foreachwriter.LakebaseForeachWriter import LakebaseForeachWriter as cls
    from lakebase_foreachwriter.LakebaseForeachWriter import logger as module_logger
    from lakebase_foreachwriter.LakebaseForeachWriter import oauth_credential_provider as ocp
    from lakebase_foreachwriter import logger
    assert cls is LakebaseForeachWriter and ocp is oauth_credential_provider
    assert module_logger is logger and logger.name == "lakebase_foreachwriter"
    # A handler on 0.1's logger sees the writer's messages, as 0.1's README configures it.
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        LakebaseForeachWriter("u", "p", "t", fake_df(NAME_SCHEMA), host="h", primary_keys=["id"])
    finally:
        logger.removeHandler(handler)
    assert any("ignored" in r.getMessage() for r in seen)


def test_oauth_provider_refuses_a_workspace_client_and_pickles_with_workspace_config():
    with pytest.raises(ValueError, match="Spark-serializable"):
        oauth_credential_provider("proj", workspace_client=object())
    provider = oauth_credential_provider("proj", "dev", "rw", {"profile": "test-profile"})
    copy = cloudpickle.loads(cloudpickle.dumps(provider))
    assert copy.endpoint == "projects/proj/branches/dev/endpoints/rw"
    assert oauth_credential_provider("proj", endpoint_id="e2").endpoint == \
        "projects/proj/branches/production/endpoints/e2"


# ---- 0.1's integration scenarios, against the harness server ---------------------------

SCENARIOS: Dict[str, Dict[str, Any]] = {
    "basic": {
        "schema": StructType([StructField("id", IntegerType(), False),
                              StructField("name", StringType(), True),
                              StructField("score", FloatType(), True)]),
        "data1": [(1, "Alice", 95.5), (2, "Bob", 88.0)],
        "data2": [(1, "Alice", 99.0), (3, "Charlie", 73.2)],
        "expected": [(1, "Alice", 99.0), (2, "Bob", 88.0), (3, "Charlie", 73.2)],
    },
    "all_types": {
        "schema": StructType([StructField("id", IntegerType(), False),
                              StructField("long_col", LongType(), True),
                              StructField("double_col", DoubleType(), True),
                              StructField("bool_col", BooleanType(), True),
                              StructField("date_col", DateType(), True),
                              StructField("time_col", TimestampType(), True),
                              StructField("decimal_col", DecimalType(10, 2), True)]),
        "data1": [(1, 10**10, 1.1, True, date(2023, 1, 1), datetime(2023, 1, 1, 12, 0, 0),
                   Decimal("10.10"))],
        "data2": [(1, 10**11, 2.2, False, date(2024, 1, 1), datetime(2024, 1, 1, 13, 0, 0),
                   Decimal("20.20"))],
        "expected": [(1, 10**11, 2.2, False, date(2024, 1, 1), datetime(2024, 1, 1, 13, 0, 0),
                      Decimal("20.20"))],
    },
    "with_arrays": {
        "schema": StructType([StructField("id", IntegerType(), False),
                              StructField("int_array", ArrayType(IntegerType()), True),
                              StructField("str_array", ArrayType(StringType()), True)]),
        "data1": [(1, [1, 2], ["a", "b"])],
        "data2": [(1, [3, 4], ["c", "d"])],
        "expected": [(1, [3, 4], ["c", "d"])],
    },
    "with_nulls": {
        "schema": StructType([StructField("id", IntegerType(), False),
                              StructField("name", StringType(), True)]),
        "data1": [(1, "not_null")],
        "data2": [(1, None)],
        "expected": [(1, None)],
    },
    "large_batch": {
        "schema": StructType([StructField("id", IntegerType(), False),
                              StructField("value", StringType(), True)]),
        "data1": [(i, f"value_{i}") for i in range(1, 501)],
        "data2": [(i, f"updated_value_{i}") for i in range(1, 251)]
        + [(i, f"new_value_{i}") for i in range(501, 601)],
        "expected": [(i, f"updated_value_{i}") for i in range(1, 251)]
        + [(i, f"value_{i}") for i in range(251, 501)]
        + [(i, f"new_value_{i}") for i in range(501, 601)],
    },
}

PG_TYPES = {IntegerType(): "INTEGER", StringType(): "TEXT", FloatType(): "REAL",
            LongType(): "BIGINT", DoubleType(): "DOUBLE PRECISION", BooleanType(): "BOOLEAN",
            DateType(): "DATE", TimestampType(): "TIMESTAMP", DecimalType(10, 2): "DECIMAL(10, 2)"}


def create_table(db: psycopg.Connection, name: str, schema: StructType, pk=("id",)) -> None:
    cols = []
    for f in schema.fields:
        t = f.dataType
        pg_type = (PG_TYPES[t.elementType] + "[]") if isinstance(t, ArrayType) else PG_TYPES[t]
        cols.append(f'"{f.name}" {pg_type}' + ("" if f.nullable else " NOT NULL"))
    cols.append(f"PRIMARY KEY ({', '.join(pk)})")
    db.execute(f'CREATE TABLE {name} ({", ".join(cols)})')


@pytest.fixture
def table01(db: psycopg.Connection):
    name = f"test_{uuid.uuid4().hex}"  # 0.1's unquoted lower-case names
    yield name
    db.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def conn01(pg: Any, conn_args: Dict[str, Any]) -> Dict[str, Any]:
    """Where the harness server is: the only arguments 0.1's calls do not have."""
    return dict(port=pg.port, dbname=pg.dbname, sslmode="verify-full")


def run_writer(df, mode, pk_keys, table_name, conn_args, conn01, batch_size=100,
               batch_interval_ms=100):
    """0.1's run_writer: lakebase_name is "" when its environment variable is unset."""
    writer = LakebaseForeachWriter(
        username=conn_args["username"], password=conn_args["password"], lakebase_name="",
        table=table_name, df=df, mode=mode, primary_keys=pk_keys, host=conn_args["host"],
        batch_size=batch_size, batch_interval_ms=batch_interval_ms, **conn01)
    writer.open(partition_id=0, epoch_id=0)
    for row in df.collect():
        writer.process(row)
    writer.close(error=None)


def normalize(row):
    return tuple(float(v) if isinstance(v, Decimal) else v for v in row)


@pytest.mark.parametrize("mode", ["insert", "bulk-insert", "upsert"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_writer_modes_and_types(spark, db, conn_args, conn01, table01, mode, scenario):
    s = SCENARIOS[scenario]
    create_table(db, table01, s["schema"])
    run_writer(spark.createDataFrame(s["data1"], s["schema"]), mode, ["id"], table01, conn_args,
               conn01)
    expected = s["data1"]
    if mode == "upsert":
        run_writer(spark.createDataFrame(s["data2"], s["schema"]), mode, ["id"], table01,
                   conn_args, conn01)
        expected = s["expected"]
    got = db.execute(f'SELECT * FROM "{table01}" ORDER BY id').fetchall()
    assert [normalize(r) for r in got] == sorted(normalize(r) for r in expected)


KV01 = StructType([StructField("id", IntegerType(), False), StructField("value", StringType())])


def test_batch_size_concurrent_writers_and_empty_input(spark, db, conn_args, conn01, table01):
    create_table(db, table01, KV01)
    run_writer(spark.createDataFrame([(i, f"v{i}") for i in range(1, 10)], KV01), "insert",
               ["id"], table01, conn_args, conn01, batch_size=3)
    run_writer(spark.createDataFrame([(i, f"v{i}") for i in range(10, 15)], KV01), "insert",
               ["id"], table01, conn_args, conn01)
    run_writer(spark.createDataFrame([], KV01), "insert", ["id"], table01, conn_args, conn01)
    assert db.execute(f"SELECT count(*) FROM {table01}").fetchone()[0] == 14


def test_sql_injection_is_just_a_string(spark, db, conn_args, conn01, table01):
    create_table(db, table01, KV01)
    run_writer(spark.createDataFrame([(1, "'; DROP TABLE users; --")], KV01), "insert", ["id"],
               table01, conn_args, conn01)
    assert db.execute(f"SELECT value FROM {table01}").fetchone()[0] == "'; DROP TABLE users; --"


def test_time_based_batching_commits_before_close(spark, db, conn_args, conn01, table01):
    """0.1's time-based case, made observable: the first row is committed while the writer is
    still open, by the interval alone (batch_size is far away)."""
    create_table(db, table01, KV01)
    writer = LakebaseForeachWriter(
        username=conn_args["username"], password=conn_args["password"], lakebase_name="",
        table=table01, df=spark.createDataFrame([], KV01), mode="insert", batch_size=1000,
        batch_interval_ms=50, host=conn_args["host"], **conn01)
    writer.open(partition_id=0, epoch_id=0)
    writer.process(Row(id=1, value="test1"))
    deadline = time.monotonic() + 30
    while db.execute(f"SELECT count(*) FROM {table01}").fetchone()[0] < 1:
        assert time.monotonic() < deadline, "the interval flush never committed"
        time.sleep(0.02)
    writer.process(Row(id=2, value="test2"))
    writer.close(error=None)
    assert db.execute(f"SELECT count(*) FROM {table01}").fetchone()[0] == 2


def test_connection_error_raises_from_open_instead_of_returning_false(spark):
    """0.1 returns False here, which Spark takes as "skip this partition": its rows would be
    dropped silently. This package raises, so the task fails and Spark retries it."""
    writer = LakebaseForeachWriter(username="invalid_user", password="invalid_password",
                                   host="invalid_host.invalid", table="test_table",
                                   df=spark.createDataFrame([(1, "test")], KV01), mode="insert",
                                   max_retries=0)
    with pytest.raises(Exception):
        writer.open(partition_id=0, epoch_id=0)


# 0.1's versioned upsert and coalesce cases (its test_local_postgres.py), one row per batch.

PAYMENTS = StructType([StructField("id", IntegerType(), False),
                       StructField("status", StringType(), True),
                       StructField("paymentmethodlastdigits", StringType(), True),
                       StructField("lastupdatedat", TimestampType(), True)])


@pytest.fixture
def payments(db: psycopg.Connection, table01: str) -> str:
    db.execute(f"CREATE TABLE {table01} (id INTEGER PRIMARY KEY, status TEXT, "
               "paymentmethodlastdigits TEXT, lastupdatedat TIMESTAMP)")
    return table01


def write_rows(conn_args, conn01, table_name, rows, **upsert_options):
    user, password = conn_args["username"], conn_args["password"]
    writer = LakebaseForeachWriter(
        credential_provider=lambda: (user, password), table=table_name, df=fake_df(PAYMENTS),
        host=conn_args["host"], mode="upsert", primary_keys=["id"], batch_size=1,
        batch_interval_ms=1, **upsert_options, **conn01)
    assert writer.open(partition_id=0, epoch_id=0) is True
    for row in rows:
        writer.process(row)
    writer.close(error=None)


def read_payment(db, table_name):
    return db.execute(f"SELECT id, status, paymentmethodlastdigits, lastupdatedat FROM "
                      f"{table_name} WHERE id = 1").fetchone()


T0, T1, T2 = datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 12), datetime(2024, 1, 3, 12)


def test_versioned_upsert_null_version_updates_and_coalesce_keeps_it(db, conn_args, conn01,
                                                                    payments):
    opts = dict(upsert_version_column="lastupdatedat", upsert_coalesce_columns=["lastupdatedat"])
    write_rows(conn_args, conn01, payments, [Row(id=1, status="authorized",
               paymentmethodlastdigits="1234", lastupdatedat=T1)], **opts)
    write_rows(conn_args, conn01, payments, [Row(id=1, status="finalized",
               paymentmethodlastdigits=None, lastupdatedat=None)], **opts)
    assert read_payment(db, payments) == (1, "finalized", None, T1)
    write_rows(conn_args, conn01, payments, [Row(id=1, status="older",
               paymentmethodlastdigits="9999", lastupdatedat=T0)], **opts)
    assert read_payment(db, payments) == (1, "finalized", None, T1)
    write_rows(conn_args, conn01, payments, [Row(id=1, status="settled",
               paymentmethodlastdigits="5678", lastupdatedat=T2)], **opts)
    assert read_payment(db, payments) == (1, "settled", "5678", T2)


def test_coalesce_columns_keep_the_stored_value(db, conn_args, conn01, payments):
    opts = dict(upsert_version_column="lastupdatedat",
                upsert_coalesce_columns=["paymentmethodlastdigits", "lastupdatedat"])
    write_rows(conn_args, conn01, payments, [Row(id=1, status="authorized",
               paymentmethodlastdigits="1234", lastupdatedat=T1)], **opts)
    write_rows(conn_args, conn01, payments, [Row(id=1, status="settled",
               paymentmethodlastdigits=None, lastupdatedat=T2)], **opts)
    assert read_payment(db, payments) == (1, "settled", "1234", T2)


def test_the_same_cases_in_one_batch_equal_one_at_a_time(db, conn_args, conn01, payments):
    """0.1 runs each row as its own statement; one batch here gives the same row."""
    rows = [Row(id=1, status="authorized", paymentmethodlastdigits="1234", lastupdatedat=T1),
            Row(id=1, status="finalized", paymentmethodlastdigits=None, lastupdatedat=None),
            Row(id=1, status="older", paymentmethodlastdigits="9999", lastupdatedat=T0),
            Row(id=1, status="equal", paymentmethodlastdigits="0000", lastupdatedat=T1)]
    user, password = conn_args["username"], conn_args["password"]
    writer = LakebaseForeachWriter(
        credential_provider=lambda: (user, password), table=payments, df=fake_df(PAYMENTS),
        host=conn_args["host"], mode="upsert", primary_keys=["id"], batch_size=100,
        upsert_version_column="lastupdatedat", upsert_coalesce_columns=["lastupdatedat"],
        **conn01)
    writer.open(0, 0)
    for row in rows:
        writer.process(row)
    writer.close(None)
    assert read_payment(db, payments) == (1, "finalized", None, T1)


# ---- max_queue_size: a bound on the rows a task holds ----------------------------------

def test_max_queue_size_bounds_buffered_rows_and_process_blocks(db, pg, conn_args, conn01,
                                                                table01):
    """With max_queue_size=2 the second row is written at once (batch_size is 1000), and
    process() blocks while that write waits: here behind a lock another session holds."""
    create_table(db, table01, KV01)
    writer = LakebaseForeachWriter(conn_args["username"], conn_args["password"], table01,
                                   fake_df(KV01), host=conn_args["host"], batch_size=1000,
                                   batch_interval_ms=600_000, max_queue_size=2, **conn01)
    writer.open(0, 0)
    writer.process(Row(id=1, value="a"))
    with psycopg.connect(pg.dsn()) as locker:
        locker.execute(f"LOCK TABLE {table01} IN ACCESS EXCLUSIVE MODE")
        second = threading.Thread(target=writer.process, args=(Row(id=2, value="b"),))
        second.start()
        deadline = time.monotonic() + 30
        while int(pg.admin_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                               f"'Lock' AND query LIKE '%{table01}%'")[0][0]) == 0:
            assert time.monotonic() < deadline, "no write waited for the lock"
            time.sleep(0.05)
        assert second.is_alive()  # process() is blocked in the write
    second.join(30)
    assert not second.is_alive()
    assert db.execute(f"SELECT count(*) FROM {table01}").fetchone()[0] == 2  # before close()
    writer.close(None)
