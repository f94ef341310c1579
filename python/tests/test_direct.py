"""The writer's open/process/close against the real PostgreSQL, in this process (no Spark)."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import psycopg
import pytest
from pyspark.sql import Row
from pyspark.sql import types as T

from lakebase_foreachwriter import (ConnectionFailedError, LakebaseForeachWriter, WriteError)

KV = T.StructType([T.StructField("id", T.LongType(), False), T.StructField("v", T.IntegerType()),
                   T.StructField("note", T.StringType())])
APP_FILTER = "application_name = 'lakebase_foreachwriter' AND usename = 'lbp_test'"


def create_kv(db: psycopg.Connection, name: str, note_type: str = "text") -> None:
    db.execute(f'CREATE TABLE "{name}" (id bigint PRIMARY KEY, v int, note {note_type})')


def rows_of(db: psycopg.Connection, name: str) -> List[tuple]:
    return db.execute(f'SELECT id, v, note FROM "{name}" ORDER BY id').fetchall()


def writer_connections(pg: Any) -> int:
    return int(pg.admin_sql(f"SELECT count(*) FROM pg_stat_activity WHERE {APP_FILTER}")[0][0])


def make(conn_args, table, **kw) -> LakebaseForeachWriter:
    args = dict(conn_args)
    for key in list(kw):
        if key in args:
            args[key] = kw.pop(key)
    return LakebaseForeachWriter(args.pop("username"), args.pop("password"), table, KV,
                                 **args, **kw)


def run(writer: LakebaseForeachWriter, rows, error: BaseException | None = None) -> None:
    writer.open(0, 0)
    for row in rows:
        writer.process(row)
    writer.close(error)


@pytest.mark.parametrize("mode", ["insert", "bulk-insert", "upsert"])
def test_each_mode_writes_rows_in_chunks(db, conn_args, table_name, mode):
    create_kv(db, table_name)
    extra = dict(primary_keys=["id"]) if mode == "upsert" else {}
    rows = [Row(id=i, v=i * 2, note=f"n\t{i}\\") for i in range(2500)]
    run(make(conn_args, table_name, mode=mode, batch_size=1000, **extra), rows)
    assert rows_of(db, table_name) == [(i, i * 2, f"n\t{i}\\") for i in range(2500)]


def test_upsert_last_write_wins_within_a_batch(db, conn_args, table_name):
    create_kv(db, table_name)
    db.execute(f'INSERT INTO "{table_name}" VALUES (1, 0, \'old\')')
    rows = [Row(id=1, v=1, note="a"), Row(id=2, v=1, note="x"), Row(id=1, v=2, note="b"),
            Row(id=1, v=3, note="c")]
    run(make(conn_args, table_name, mode="upsert", primary_keys=["id"]), rows)
    assert rows_of(db, table_name) == [(1, 3, "c"), (2, 1, "x")]


def test_upsert_version_column_only_newer_wins(db, conn_args, table_name):
    create_kv(db, table_name)
    db.execute(f'INSERT INTO "{table_name}" VALUES (1, 5, \'stored\'), (2, 5, \'stored\'), '
               f'(3, NULL, \'stored\')')
    rows = [Row(id=1, v=4, note="older"), Row(id=2, v=7, note="newer"), Row(id=2, v=6, note="mid"),
            Row(id=3, v=1, note="beats null"), Row(id=4, v=9, note="new"), Row(id=4, v=None, note="x")]
    run(make(conn_args, table_name, mode="upsert", primary_keys=["id"],
             upsert_version_column="v"), rows)
    # A NULL incoming version applies (0.1's rule), replayed in arrival order: 4 ends as "x".
    assert rows_of(db, table_name) == [(1, 5, "stored"), (2, 7, "newer"), (3, 1, "beats null"),
                                       (4, None, "x")]


def test_upsert_coalesce_columns_keep_old_value_for_null(db, conn_args, table_name):
    create_kv(db, table_name)
    db.execute(f'INSERT INTO "{table_name}" VALUES (1, 1, \'keep me\'), (2, 1, \'replace me\')')
    rows = [Row(id=1, v=None, note=None), Row(id=2, v=2, note="replaced")]
    run(make(conn_args, table_name, mode="upsert", primary_keys=["id"],
             upsert_coalesce_columns=["note"]), rows)
    assert rows_of(db, table_name) == [(1, None, "keep me"), (2, 2, "replaced")]


def test_upsert_with_only_key_columns_does_nothing_on_conflict(db, conn_args, table_name):
    db.execute(f'CREATE TABLE "{table_name}" (a bigint, b bigint, PRIMARY KEY (a, b))')
    db.execute(f'INSERT INTO "{table_name}" VALUES (1, 1)')
    schema = T.StructType([T.StructField("a", T.LongType()), T.StructField("b", T.LongType())])
    w = LakebaseForeachWriter(conn_args["username"], conn_args["password"], table_name, schema,
                              host=conn_args["host"], port=conn_args["port"],
                              dbname=conn_args["dbname"], sslmode="verify-full",
                              mode="upsert", primary_keys=["a", "b"])
    run(w, [Row(a=1, b=1), Row(a=1, b=2), Row(a=1, b=2)])
    assert db.execute(f'SELECT a, b FROM "{table_name}" ORDER BY 1, 2').fetchall() == [(1, 1), (1, 2)]


def test_schema_qualified_and_mixed_case_names(db, conn_args):
    db.execute('CREATE SCHEMA IF NOT EXISTS "Ingest"')
    db.execute('DROP TABLE IF EXISTS "Ingest"."Events"')
    db.execute('CREATE TABLE "Ingest"."Events" (id bigint, v int, note text)')
    run(make(conn_args, "Ingest.Events"), [Row(id=1, v=2, note="x")])
    assert db.execute('SELECT * FROM "Ingest"."Events"').fetchall() == [(1, 2, "x")]


def test_interval_flush_by_background_thread(db, conn_args, table_name):
    create_kv(db, table_name)
    threads_before = {t.name for t in threading.enumerate()}
    w = make(conn_args, table_name, batch_size=1000, batch_interval_ms=150)
    assert not any(t.name.startswith("lakebase-flush") for t in threading.enumerate())
    w.open(3, 7)
    assert "lakebase-flush-p3-e7" in {t.name for t in threading.enumerate()} - threads_before
    w.process(Row(id=1, v=1, note="timer"))
    deadline = time.monotonic() + 5
    while not rows_of(db, table_name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows_of(db, table_name) == [(1, 1, "timer")]
    w.close(None)
    assert not any(t.name.startswith("lakebase-flush") for t in threading.enumerate())


def test_size_flush_commits_before_close(db, conn_args, table_name):
    create_kv(db, table_name)
    w = make(conn_args, table_name, batch_size=2, batch_interval_ms=60_000)
    w.open(0, 0)
    for i in range(3):
        w.process(Row(id=i, v=i, note=None))
    assert [r[0] for r in rows_of(db, table_name)] == [0, 1]
    w.close(None)
    assert [r[0] for r in rows_of(db, table_name)] == [0, 1, 2]


def test_close_with_error_discards_unflushed_rows_and_disconnects(db, pg, conn_args, table_name):
    create_kv(db, table_name)
    w = make(conn_args, table_name, batch_size=100, batch_interval_ms=60_000)
    w.open(0, 0)
    w.process(Row(id=1, v=1, note="never"))
    assert writer_connections(pg) == 1
    w.close(RuntimeError("task failed"))
    assert rows_of(db, table_name) == []
    assert writer_connections(pg) == 0


def test_close_raises_when_final_flush_fails_and_still_disconnects(db, pg, conn_args, table_name):
    create_kv(db, table_name, note_type="int")
    w = make(conn_args, table_name, batch_size=100, batch_interval_ms=60_000)
    w.open(0, 0)
    w.process(Row(id=1, v=1, note="abc"))
    with pytest.raises(WriteError, match=r'22P02.*invalid input syntax for type integer: "abc"') as info:
        w.close(None)
    assert info.value.sqlstate == "22P02"
    assert writer_connections(pg) == 0


def test_background_flush_error_is_raised_by_next_process(db, conn_args, table_name):
    create_kv(db, table_name)
    db.execute(f'ALTER TABLE "{table_name}" ALTER COLUMN note SET NOT NULL')
    w = make(conn_args, table_name, batch_size=1000, batch_interval_ms=50)
    w.open(0, 0)
    w.process(Row(id=1, v=1, note=None))
    time.sleep(0.5)
    with pytest.raises(WriteError, match="23502"):
        w.process(Row(id=2, v=2, note="x"))
    w.close(RuntimeError("task failed"))


def test_open_raises_on_bad_password_without_retrying(conn_args, table_name):
    w = make(conn_args, table_name, password="wrong", max_retries=5, retry_base_delay_s=5)
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="rejected.*password authentication failed"):
        w.open(0, 0)
    assert time.monotonic() - started < 5


def test_open_retries_then_raises_when_server_unreachable(conn_args, table_name):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    w = make(conn_args, table_name, port=free_port, max_retries=2, retry_base_delay_s=0.01)
    with pytest.raises(ConnectionFailedError, match="after 3 attempts"):
        w.open(0, 0)


class RotatingPassword:
    """A picklable credential provider reading the current password from a file."""

    def __init__(self, user: str, path: str, calls_path: str) -> None:
        self.user, self.path, self.calls_path = user, path, calls_path

    def __call__(self):
        with open(self.calls_path, "a") as f:
            f.write("call\n")
        with open(self.path) as f:
            return self.user, f.read()


def test_credential_provider_called_on_each_reconnect(db, pg, pg_admin, conn_args, table_name,
                                                      tmp_path):
    create_kv(db, table_name)
    secret, calls = tmp_path / "secret", tmp_path / "calls"
    secret.write_text(pg.password)
    provider = RotatingPassword(pg.user, str(secret), str(calls))
    w = LakebaseForeachWriter(None, None, table_name, KV, credential_provider=provider,
                              host=conn_args["host"], port=conn_args["port"],
                              dbname=conn_args["dbname"], sslmode="verify-full", batch_size=1,
                              retry_base_delay_s=0.05)
    w.open(0, 0)
    w.process(Row(id=1, v=1, note="before"))
    # Rotate the password and kill the session: only a fresh provider call can log in again.
    secret.write_text("rotated-" + pg.password)
    pg.set_password("rotated-" + pg.password)
    pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {APP_FILTER}")
    w.process(Row(id=2, v=2, note="after"))
    w.close(None)
    assert rows_of(db, table_name) == [(1, 1, "before"), (2, 2, "after")]
    assert calls.read_text().count("call") == 2


def test_rows_map_to_columns_by_field_name(db, conn_args, table_name):
    """A Row built with keyword arguments in another order, or with extra fields, lands in the
    right columns; a plain tuple is taken by position; a Row lacking a column is refused."""
    from lakebase_foreachwriter import EncodingError

    create_kv(db, table_name)
    w = make(conn_args, table_name)
    w.open(0, 0)
    w.process(Row(note="by name", v=10, id=1))
    w.process(Row(extra="ignored", v=20, note="extra field", id=2))
    w.process((3, 30, "by position"))
    with pytest.raises(EncodingError, match="no field 'note'"):
        w.process(Row(v=1, id=4))
    w.close(None)
    assert rows_of(db, table_name) == [(1, 10, "by name"), (2, 20, "extra field"),
                                       (3, 30, "by position")]


@pytest.mark.parametrize("multirow,statements", [(None, 1), (True, 1), (False, 5)])
def test_use_multirow_sql_selects_the_statement_shape(db, conn_args, table_name, multirow,
                                                      statements):
    """0.1's flag: one multi-row INSERT per batch, or one statement per row (counted by a
    statement-level trigger); the rows are the same."""
    create_kv(db, table_name)
    db.execute(f'CREATE TABLE "{table_name}_n" (n int)')
    db.execute(f'CREATE FUNCTION "{table_name}_count"() RETURNS trigger LANGUAGE plpgsql AS '
               f'$$BEGIN INSERT INTO "{table_name}_n" VALUES (1); RETURN NULL; END$$')
    db.execute(f'CREATE TRIGGER count_statements AFTER INSERT ON "{table_name}" '
               f'FOR EACH STATEMENT EXECUTE FUNCTION "{table_name}_count"()')
    kw = {} if multirow is None else {"use_multirow_sql": multirow}
    run(make(conn_args, table_name, batch_size=1000, **kw),
        [Row(id=i, v=i, note="x") for i in range(5)])
    assert len(rows_of(db, table_name)) == 5
    assert db.execute(f'SELECT count(*) FROM "{table_name}_n"').fetchone()[0] == statements
