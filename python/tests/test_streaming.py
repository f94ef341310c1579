"""Real Spark Structured Streaming queries (local mode) writing through the writer."""

from __future__ import annotations

import base64
import datetime as dt
import math
import time
from decimal import Decimal
from typing import Any, List

import psycopg
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakebase_foreachwriter import LakebaseForeachWriter

ALL_TYPES = T.StructType([
    T.StructField("id", T.LongType(), False),
    T.StructField("c_byte", T.ByteType()), T.StructField("c_short", T.ShortType()),
    T.StructField("c_int", T.IntegerType()), T.StructField("c_long", T.LongType()),
    T.StructField("c_float", T.FloatType()), T.StructField("c_double", T.DoubleType()),
    T.StructField("c_dec", T.DecimalType(18, 4)), T.StructField("c_str", T.StringType()),
    T.StructField("c_bin", T.BinaryType()), T.StructField("c_bool", T.BooleanType()),
    T.StructField("c_date", T.DateType()), T.StructField("c_ts", T.TimestampType()),
    T.StructField("c_ntz", T.TimestampNTZType()),
    T.StructField("c_ints", T.ArrayType(T.IntegerType())),
    T.StructField("c_strs", T.ArrayType(T.StringType())),
    T.StructField("c_grid", T.ArrayType(T.ArrayType(T.LongType()))),
    T.StructField("c_tss", T.ArrayType(T.TimestampType())),
    T.StructField("c_struct", T.StructType([
        T.StructField("n", T.IntegerType()), T.StructField("s", T.StringType()),
        T.StructField("day", T.DateType()), T.StructField("xs", T.ArrayType(T.DoubleType()))])),
    T.StructField("c_map", T.MapType(T.StringType(), T.DoubleType())),
])

ALL_TYPES_DDL = """
    id bigint PRIMARY KEY, c_byte smallint, c_short smallint, c_int integer, c_long bigint,
    c_float real, c_double double precision, c_dec numeric(18, 4), c_str text, c_bin bytea,
    c_bool boolean, c_date date, c_ts timestamptz, c_ntz timestamp, c_ints integer[],
    c_strs text[], c_grid bigint[], c_tss timestamptz[], c_struct jsonb, c_map jsonb
"""

LOCAL = dt.datetime.fromtimestamp  # what PySpark hands over for TimestampType: local, naive


def all_types_rows() -> List[Row]:
    return [
        Row(id=1, c_byte=-128, c_short=-32768, c_int=-2147483648, c_long=-9223372036854775808,
            c_float=1.5, c_double=-2.25e-300, c_dec=Decimal("-12345678901234.5678"),
            c_str="tab\there\nnew line\r\\back\\slash \"quoted\" 'single' ünïcødé ✓",
            c_bin=bytearray(b"\x00\x01\\\xff\t\n"), c_bool=True, c_date=dt.date(1, 1, 1),
            c_ts=LOCAL(-1).replace(microsecond=999999), c_ntz=dt.datetime(1900, 2, 28, 23, 59, 59, 1),
            c_ints=[1, None, -3], c_strs=['a"b', "c\\d", None, "NULL", "", "{x,y}"],
            c_grid=[[1, 2], [None, 4]], c_tss=[LOCAL(0), None],
            c_struct=Row(n=7, s="q\"\\\n", day=dt.date(2024, 2, 29), xs=[0.5, None]),
            c_map={"k": 1.25, "nan": float("nan"), "t\tab": float("-inf")}),
        Row(id=2, c_byte=127, c_short=32767, c_int=2147483647, c_long=9223372036854775807,
            c_float=float("nan"), c_double=float("inf"), c_dec=Decimal("0.0001"), c_str="",
            c_bin=bytearray(b""), c_bool=False, c_date=dt.date(9999, 12, 31),
            c_ts=LOCAL(1_700_000_000).replace(microsecond=123456),
            c_ntz=dt.datetime(2038, 1, 19, 3, 14, 8, 999999), c_ints=[], c_strs=[],
            c_grid=[], c_tss=[], c_struct=Row(n=None, s=None, day=None, xs=None), c_map={}),
        Row(id=3, c_byte=0, c_short=0, c_int=0, c_long=0, c_float=float("-inf"),
            c_double=-0.0, c_dec=Decimal("99999999999999.9999"), c_str="x" * 5000,
            c_bin=bytearray(range(256)), c_bool=None, c_date=dt.date(1969, 12, 31),
            c_ts=LOCAL(-2_208_988_800), c_ntz=None, c_ints=None, c_strs=[None],
            c_grid=[[5]], c_tss=None, c_struct=None, c_map=None),
        Row(**{f.name: 4 if f.name == "id" else None for f in ALL_TYPES.fields}),
    ]


# ---- expected values as psycopg reads them back -------------------------------------------

def to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc)


def json_double(x: float) -> Any:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def expected_row(row: Row) -> tuple:
    d = row.asDict()
    out = []
    for f in ALL_TYPES.fields:
        v = d[f.name]
        if v is None:
            out.append(None)
        elif f.name == "c_bin":
            out.append(bytes(v))
        elif f.name == "c_ts":
            out.append(to_utc(v))
        elif f.name == "c_tss":
            out.append([None if t is None else to_utc(t) for t in v])
        elif f.name == "c_struct":
            out.append({"n": v.n, "s": v.s, "day": v.day.isoformat() if v.day else None,
                        "xs": None if v.xs is None else [x for x in v.xs]})
        elif f.name == "c_map":
            out.append({k: json_double(x) for k, x in v.items()})
        else:
            out.append(v)
    return tuple(out)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b) or (isinstance(a, (int, float)) and a == b)


def read_table(db: psycopg.Connection, table: str) -> List[tuple]:
    names = ", ".join(f.name for f in ALL_TYPES.fields)
    return db.execute(f'SELECT {names} FROM "{table}" ORDER BY id').fetchall()


def assert_table_matches(db: psycopg.Connection, table: str, source: List[Row]) -> None:
    got = read_table(db, table)
    want = [expected_row(r) for r in sorted(source, key=lambda r: r.id)]
    assert len(got) == len(want)
    for g_row, w_row in zip(got, want):
        for field, g, w in zip(ALL_TYPES.fields, g_row, w_row):
            assert same(g, w), f"row id={w_row[0]} column {field.name}: table {g!r} != source {w!r}"


# ---- helpers ---------------------------------------------------------------------------

def writer_for(conn_args, table, schema, **kw) -> LakebaseForeachWriter:
    args = dict(conn_args)
    return LakebaseForeachWriter(args.pop("username"), args.pop("password"), table, schema,
                                 **args, **kw)


def direct_writers(conn_args):
    """make_writer for the direct path: the harness server's host and credentials."""
    return lambda table, schema, **kw: writer_for(conn_args, table, schema, **kw)


def write_parquet(spark, rows, schema, path) -> None:
    spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet(str(path))


def run_available_now(spark, source_dir, schema, writer, checkpoint) -> None:
    stream = spark.readStream.schema(schema).parquet(str(source_dir))
    query = (stream.writeStream.foreach(writer).trigger(availableNow=True)
             .option("checkpointLocation", str(checkpoint)).start())
    query.awaitTermination(120)
    assert query.exception() is None, query.exception()


MODES = [("insert", {}), ("bulk-insert", {}), ("upsert", {"primary_keys": ["id"]})]


def check_all_types(spark, db, table_name, tmp_path, make_writer, mode, extra) -> None:
    """Every supported type through a file source (availableNow), compared value by value.

    make_writer(table, schema, **options) builds the writer: direct here, proxied elsewhere.
    """
    db.execute(f'CREATE TABLE "{table_name}" ({ALL_TYPES_DDL})')
    rows = all_types_rows()
    write_parquet(spark, rows, ALL_TYPES, tmp_path / "src")
    source = spark.read.schema(ALL_TYPES).parquet(str(tmp_path / "src")).collect()
    writer = make_writer(table_name, ALL_TYPES, mode=mode, batch_size=2, **extra)
    run_available_now(spark, tmp_path / "src", ALL_TYPES, writer, tmp_path / "ckpt")
    assert_table_matches(db, table_name, source)
    # A few values spelled out in UTC, independent of the conversions above.
    utc = dt.timezone.utc
    ts, bin_, map_ = db.execute(f'SELECT c_ts, c_bin, c_map FROM "{table_name}" WHERE id = 1').fetchone()
    assert ts == dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc)
    assert bin_ == b"\x00\x01\\\xff\t\n" and map_["nan"] == "NaN"
    assert db.execute(f'SELECT c_ts FROM "{table_name}" WHERE id = 3').fetchone()[0] == \
        dt.datetime(1900, 1, 1, tzinfo=utc)


@pytest.mark.parametrize("mode,extra", MODES, ids=[m for m, _ in MODES])
def test_file_source_all_types_each_mode(spark, db, conn_args, table_name, tmp_path, mode, extra):
    check_all_types(spark, db, table_name, tmp_path, direct_writers(conn_args), mode, extra)


def rate_columns() -> list:
    return [
    F.col("value").alias("id"), F.col("timestamp").alias("ts"),
    (F.col("value") % 100).cast("int").alias("n"), (F.col("value") / 3).alias("third"),
    F.concat(F.lit("row\t"), F.col("value").cast("string")).alias("label"),
    F.array(F.col("value"), F.lit(None).cast("long")).alias("pair"),
    F.struct(F.col("value").alias("v"), F.to_date(F.col("timestamp")).alias("day")).alias("doc"),
    ]
RATE_DDL = ("id bigint PRIMARY KEY, ts timestamptz, n int, third double precision, label text, "
            "pair bigint[], doc jsonb")


def check_rate_source(spark, db, table_name, tmp_path, make_writer, mode, extra) -> None:
    """A rate source with a processingTime trigger: every completed micro-batch is in the table."""
    db.execute(f'CREATE TABLE "{table_name}" ({RATE_DDL})')
    stream = spark.readStream.format("rate").option("rowsPerSecond", 200) \
        .option("numPartitions", 2).load().select(*rate_columns())
    writer = make_writer(table_name, stream.schema, mode=mode, batch_size=50,
                         batch_interval_ms=50, **extra)
    query = (stream.writeStream.foreach(writer).trigger(processingTime="500 milliseconds")
             .option("checkpointLocation", str(tmp_path / "ckpt")).start())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = sum(p["numInputRows"] for p in query.recentProgress)
            if done >= 400 and len(query.recentProgress) >= 3:
                break
            time.sleep(0.2)
        assert query.exception() is None
    finally:
        query.stop()
    committed = sum(p["numInputRows"] for p in query.recentProgress)
    rows = db.execute(f'SELECT id, ts, n, third, label, pair, doc FROM "{table_name}" ORDER BY id').fetchall()
    ids = [r[0] for r in rows]
    # Every completed micro-batch is in the table (value ids are consecutive from 0) ...
    assert committed >= 400 and ids[:committed] == list(range(committed))
    # ... and every row in the table equals what Spark computed for it.
    for id_, ts, n, third, label, pair, doc in rows:
        assert (n, third, label, pair) == (id_ % 100, id_ / 3, f"row\t{id_}", [id_, None])
        assert ts.tzinfo is not None and doc == {"v": id_, "day": ts.astimezone().date().isoformat()}


@pytest.mark.parametrize("mode,extra", MODES, ids=[m for m, _ in MODES])
def test_rate_source_processing_time_trigger(spark, db, conn_args, table_name, tmp_path, mode, extra):
    check_rate_source(spark, db, table_name, tmp_path, direct_writers(conn_args), mode, extra)


KV = T.StructType([T.StructField("id", T.LongType()), T.StructField("v", T.StringType())])


def check_upsert_keeps_the_last(spark, db, table_name, tmp_path, make_writer, batch_size) -> None:
    """Repeated keys inside one micro-batch: the last row of each key wins."""
    db.execute(f'CREATE TABLE "{table_name}" (id bigint PRIMARY KEY, v text)')
    rows = [Row(id=1, v="a"), Row(id=2, v="x"), Row(id=1, v="b"), Row(id=3, v="y"),
            Row(id=1, v="c"), Row(id=2, v="z")]
    write_parquet(spark, rows, KV, tmp_path / "src")
    writer = make_writer(table_name, KV, mode="upsert", primary_keys=["id"],
                         batch_size=batch_size)
    run_available_now(spark, tmp_path / "src", KV, writer, tmp_path / "ckpt")
    assert db.execute(f'SELECT id, v FROM "{table_name}" ORDER BY id').fetchall() == [
        (1, "c"), (2, "z"), (3, "y")]


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_upsert_repeated_keys_in_one_micro_batch_keep_the_last(spark, db, conn_args, table_name,
                                                               tmp_path, batch_size):
    check_upsert_keeps_the_last(spark, db, table_name, tmp_path, direct_writers(conn_args),
                                batch_size)


def check_session_zone_timestamps(spark, db, table_name, tmp_path, make_writer) -> None:
    """TimestampType into `timestamp`: the wall clock in spark.sql.session.timeZone (captured on
    the driver; Tokyo here, while the executors' local zone is TEST_TZ); into `timestamptz`: the
    instant. As Spark's JDBC writer stores them."""
    db.execute(f'CREATE TABLE "{table_name}" (id bigint, ts timestamp, tstz timestamptz, '
               'tss timestamp[])')
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        src = spark.sql("SELECT 1L AS id, TIMESTAMP '2024-07-01 09:30:00.123456' AS ts, "
                        "TIMESTAMP '2024-07-01 09:30:00.123456' AS tstz, "
                        "array(TIMESTAMP '1969-12-31 23:00:00', NULL) AS tss")
        src.coalesce(1).write.mode("overwrite").parquet(str(tmp_path / "src"))
        writer = make_writer(table_name, src.schema)
        run_available_now(spark, tmp_path / "src", src.schema, writer, tmp_path / "ckpt")
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    got = db.execute(f'SELECT ts, tstz, tss FROM "{table_name}"').fetchall()
    assert got == [(dt.datetime(2024, 7, 1, 9, 30, 0, 123456),
                    dt.datetime(2024, 7, 1, 0, 30, 0, 123456, tzinfo=dt.timezone.utc),
                    [dt.datetime(1969, 12, 31, 23, 0), None])]


def test_timestamps_follow_the_session_time_zone(spark, db, conn_args, table_name, tmp_path):
    check_session_zone_timestamps(spark, db, table_name, tmp_path, direct_writers(conn_args))


REJECTED = pytest.mark.parametrize("mode,ddl,message", [
    ("insert", "id bigint, v int", 'invalid input syntax for type integer: "not a number"'),
    ("bulk-insert", "id bigint, v text NOT NULL", 'null value in column "v"'),
], ids=["text-into-int", "not-null"])


def check_rejected_row(spark, db, table_name, tmp_path, make_writer, mode, ddl, message) -> None:
    """A row PostgreSQL rejects fails the query with PostgreSQL's message and SQLSTATE."""
    db.execute(f'CREATE TABLE "{table_name}" ({ddl})')
    write_parquet(spark, [Row(id=1, v="ok" if mode == "bulk-insert" else "1"),
                          Row(id=2, v="not a number" if mode == "insert" else None)],
                  KV, tmp_path / "src")
    writer = make_writer(table_name, KV, mode=mode)
    stream = spark.readStream.schema(KV).parquet(str(tmp_path / "src"))
    query = (stream.writeStream.foreach(writer).trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / "ckpt")).start())
    with pytest.raises(Exception) as info:
        query.awaitTermination(120)
    text = str(info.value)
    assert message in text
    assert ("22P02" if mode == "insert" else "23502") in text
    # The failed batch committed nothing.
    assert db.execute(f'SELECT count(*) FROM "{table_name}"').fetchone()[0] == 0


@REJECTED
def test_rejected_row_fails_the_query_with_postgres_message(spark, db, conn_args, table_name,
                                                            tmp_path, mode, ddl, message):
    check_rejected_row(spark, db, table_name, tmp_path, direct_writers(conn_args), mode, ddl,
                       message)
