"""Statement builders: identifiers quoted, upsert variants (pure)."""

from lakebase_foreachwriter.sql import (Target, copy_statement, insert_statement,
                                        rows_per_statement, upsert_statement)


def text(composed):
    return composed.as_string(None)


def test_insert_quotes_identifiers():
    t = Target("My Schema", 'we"ird', ("id", "Name"))
    assert text(insert_statement(t, 2)) == (
        'INSERT INTO "My Schema"."we""ird" ("id", "Name") VALUES (%s, %s), (%s, %s)')


def test_copy_statement():
    assert text(copy_statement(Target(None, "t", ("a", "b")))) == 'COPY "t" ("a", "b") FROM STDIN'


def test_upsert_plain_version_and_coalesce():
    t = Target(None, "t", ("id", "v", "c", "d"), "upsert", ("id",), "v", ("c",))
    assert text(upsert_statement(t, 1)) == (
        'INSERT INTO "t" AS "target" ("id", "v", "c", "d") VALUES (%s, %s, %s, %s) '
        'ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v", '
        '"c" = COALESCE(EXCLUDED."c", "target"."c"), "d" = EXCLUDED."d" '
        'WHERE EXCLUDED."v" IS NULL OR "target"."v" IS NULL OR EXCLUDED."v" > "target"."v"')


def test_upsert_all_keys_does_nothing():
    t = Target("s", "t", ("a", "b"), "upsert", ("a", "b"))
    assert text(upsert_statement(t, 1)).endswith('ON CONFLICT ("a", "b") DO NOTHING')


def test_rows_per_statement_respects_parameter_limit():
    wide = Target(None, "t", tuple(f"c{i}" for i in range(100)))
    assert rows_per_statement(wide, 1000) == 655
    assert rows_per_statement(Target(None, "t", ("a",)), 10) == 10
