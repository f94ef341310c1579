"""Property: an upsert batch, on the direct path and through lakebase-proxy, leaves the table
exactly as applying its rows one at a time in arrival order does (docs/ingest-protocol.md 6.3),
for random rows over few keys, versions with NULLs and ties, NULLs in coalesce columns, and
random stored rows to start from.

The reference applies each row as its own single-row statement with plain SQL: the rule itself
(update when the incoming version is greater or either is NULL; coalesce columns keep the stored
value where the incoming one is NULL). Hypothesis is derandomized and keeps no example database,
so every run (and CI) tries the same examples.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from lakebase_foreachwriter import LakebaseForeachWriter

COLUMNS = ("k", "v", "a", "b")
SCHEMA = T.StructType([T.StructField("k", T.IntegerType(), False),
                       T.StructField("v", T.IntegerType()), T.StructField("a", T.StringType()),
                       T.StructField("b", T.StringType())])
DDL = "k int PRIMARY KEY, v int, a text, b text"
EXAMPLES = 150

Row4 = Tuple[int, Optional[int], Optional[str], Optional[str]]

rows = st.tuples(st.integers(1, 3), st.one_of(st.none(), st.integers(0, 3)),
                 st.sampled_from([None, "x", "y"]), st.sampled_from([None, "p", "q"]))
cases = st.fixed_dictionaries({
    "stored": st.lists(rows, max_size=3, unique_by=lambda r: r[0]),
    "rows": st.lists(rows, min_size=1, max_size=12),
    "version": st.sampled_from([None, "v"]),
    "coalesce": st.sampled_from([(), ("a",), ("a", "b"), ("v",), ("v", "a")]),
    "batch_size": st.sampled_from([1, 2, 5, 1000]),
})


def reference_statement(table: str, version: Optional[str], coalesce: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, t.{c})" if c in coalesce
                     else f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
    guard = (f" WHERE EXCLUDED.{version} IS NULL OR t.{version} IS NULL "
             f"OR EXCLUDED.{version} > t.{version}") if version else ""
    return (f'INSERT INTO "{table}" AS t VALUES (%s, %s, %s, %s) '
            f"ON CONFLICT (k) DO UPDATE SET {sets}{guard}")


def table_rows(db: psycopg.Connection, table: str) -> List[Row4]:
    return db.execute(f'SELECT k, v, a, b FROM "{table}" ORDER BY k').fetchall()


def start(db: psycopg.Connection, table: str, stored: List[Row4]) -> None:
    db.execute(f'TRUNCATE "{table}"')
    with db.cursor() as cur:
        cur.executemany(f'INSERT INTO "{table}" VALUES (%s, %s, %s, %s)', stored)


def write(make_writer: Any, table: str, case: dict) -> None:
    opts = dict(mode="upsert", primary_keys=["k"], batch_size=case["batch_size"],
                batch_interval_ms=600_000, upsert_version_column=case["version"],
                upsert_coalesce_columns=list(case["coalesce"]) or None)
    if case["version"] is None and "v" in case["coalesce"]:
        opts["upsert_coalesce_columns"] = [c for c in case["coalesce"] if c != "v"] or None
    writer = make_writer(table, **opts)
    writer.open(0, 0)
    for row in case["rows"]:
        writer.process(row)
    writer.close(None)


def check(db: psycopg.Connection, table: str, make_writer: Any, case: dict) -> None:
    coalesce = [c for c in case["coalesce"] if case["version"] or c != "v"]
    start(db, f"{table}_ref", case["stored"])
    with db.cursor() as cur:
        for row in case["rows"]:
            cur.execute(reference_statement(f"{table}_ref", case["version"], coalesce), row)
    start(db, table, case["stored"])
    write(make_writer, table, case)
    assert table_rows(db, table) == table_rows(db, f"{table}_ref"), case


@pytest.fixture
def tables(db: psycopg.Connection, table_name: str) -> str:
    db.execute(f'CREATE TABLE "{table_name}" ({DDL})')
    db.execute(f'CREATE TABLE "{table_name}_ref" ({DDL})')
    return table_name


PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def direct_writer(conn_args: dict):
    def make(table: str, **kw: Any) -> LakebaseForeachWriter:
        args = dict(conn_args)
        return LakebaseForeachWriter(args.pop("username"), args.pop("password"), table, SCHEMA,
                                     **args, **kw)
    return make


@PROPERTY
@given(case=cases)
def test_direct_upsert_equals_one_at_a_time(db, conn_args, tables, case):
    check(db, tables, direct_writer(conn_args), case)


@pytest.fixture(scope="module")
def proxy(pg: Any, tmp_path_factory: pytest.TempPathFactory):
    """One lakebase-proxy for the module; several flushes of a task may share a batch."""
    from proxyproc import free_port, start_proxy

    proc, address = start_proxy(pg, tmp_path_factory.mktemp("proxy"),
                                admin={"listen": f"127.0.0.1:{free_port()}"},
                                pool={"min_size": 1, "max_size": 2})
    yield address
    assert proc.stop() == 0, proc.log[-5000:]


def proxy_writer(address: str):
    def make(table: str, **kw: Any) -> LakebaseForeachWriter:
        return LakebaseForeachWriter(table=table, df=SCHEMA, proxy=address, **kw)
    return make


@PROPERTY
@given(case=cases)
def test_proxy_upsert_equals_one_at_a_time(db, proxy, tables, case):
    check(db, tables, proxy_writer(proxy), case)
