"""Names as users write them (Spark's userId, table="Events") against the catalog's names:
exact first, else the unique case-insensitive match, else an error at open() naming the
candidates. The matching itself (pure), then the direct path against the real server."""

from __future__ import annotations

import pytest
from pyspark.sql import Row
from pyspark.sql import types as T

from lakebase_foreachwriter import ConfigurationError, LakebaseForeachWriter
from lakebase_foreachwriter.catalog import pick_table
from lakebase_foreachwriter.names import fold, match_name


def test_match_name_prefers_exact_then_unique_folded():
    assert match_name("userId", ["id", "userid"], "column") == "userid"
    assert match_name("id", ["ID", "id"], "column") == "id"
    assert match_name("Id", ["ID"], "column") == "ID"
    with pytest.raises(ConfigurationError, match="'Id' matches several.*'ID', 'id'"):
        match_name("Id", ["ID", "id"], "column")
    with pytest.raises(ConfigurationError, match=r"'x' does not exist \(there are: 'a', 'b'\)"):
        match_name("x", ["a", "b"], "column")


def test_fold_is_ascii_only_as_postgres_folds_unquoted_names():
    assert fold("ÄbC_1") == "Äbc_1"  # non-ASCII letters keep their case
    with pytest.raises(ConfigurationError):
        match_name("äbc", ["Äbc"], "column")


def test_pick_table_exact_first_in_path_order_else_unique():
    rows = [("s1", "events", 1, 1), ("s2", "Events", 2, 2)]
    assert pick_table(None, "Events", rows) == ("s2", "Events", 2)
    assert pick_table(None, "events", rows) == ("s1", "events", 1)
    with pytest.raises(ConfigurationError, match="'EVENTS' matches several tables.*s1.events"):
        pick_table(None, "EVENTS", rows)
    assert pick_table("S2", "EVENTS", [("s2", "Events", 2, None)]) == ("s2", "Events", 2)
    with pytest.raises(ConfigurationError, match="does not exist in schema 'x'"):
        pick_table("x", "t", [])


SPARK_STYLE = T.StructType([T.StructField("eventId", T.LongType()),
                            T.StructField("userId", T.StringType())])


def writer(conn_args, table, **kw):
    args = dict(conn_args)
    return LakebaseForeachWriter(args.pop("username"), args.pop("password"), table, SPARK_STYLE,
                                 **args, **kw)


def test_spark_names_find_unquoted_postgres_names(db, conn_args):
    db.execute("CREATE TABLE IF NOT EXISTS events_ci (eventid bigint PRIMARY KEY, userid text)")
    try:
        for mode in ("insert", "upsert"):
            db.execute("TRUNCATE events_ci")
            w = writer(conn_args, "public.Events_CI", mode=mode,
                       **({"primary_keys": ["eventId"]} if mode == "upsert" else {}))
            w.open(0, 0)
            w.process(Row(eventId=1, userId="u1"))
            w.close(None)
            assert db.execute("SELECT eventid, userid FROM events_ci").fetchall() == [(1, "u1")]
    finally:
        db.execute("DROP TABLE events_ci")


def test_exact_names_win_over_folded_ones(db, conn_args, table_name):
    db.execute(f'CREATE TABLE "{table_name}" ("eventId" bigint, eventid bigint, "userId" text)')
    w = writer(conn_args, table_name)
    w.open(0, 0)
    w.process(Row(eventId=7, userId="u"))
    w.close(None)
    assert db.execute(f'SELECT "eventId", eventid, "userId" FROM "{table_name}"').fetchall() == [
        (7, None, "u")]


def test_ambiguous_or_missing_names_fail_open_naming_candidates(db, conn_args, table_name):
    db.execute(f'CREATE TABLE "{table_name}" ("EventId" bigint, "EVENTID" bigint, userid text)')
    with pytest.raises(ConfigurationError, match="'eventId'.*several.*'EventId', 'EVENTID'"):
        writer(conn_args, table_name).open(0, 0)
    db.execute(f'CREATE TABLE "{table_name}_2" (eventid bigint)')
    with pytest.raises(ConfigurationError, match="'userId'.*does not exist.*'eventid'"):
        writer(conn_args, f"{table_name}_2").open(0, 0)
    for spelling in ("ab", "AB", "Ab"):
        db.execute(f'CREATE TABLE "{table_name}_{spelling}" (eventid bigint, userid text)')
    with pytest.raises(ConfigurationError, match=f"matches several tables.*{table_name}_AB"):
        writer(conn_args, f"{table_name}_aB").open(0, 0)
    with pytest.raises(ConfigurationError, match="does not exist in the search_path"):
        writer(conn_args, "no_such_table").open(0, 0)
