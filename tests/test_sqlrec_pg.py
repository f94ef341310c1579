"""The statement recognizer (src/sqlrec.c, through tests/tools/lbp_sqlrec.c) against a real
PostgreSQL: every statement it accepts runs on the server, and COPY of the fields it makes of
an INSERT's values lands exactly the rows the INSERT itself lands (text and CSV), for strings of
every kind, numbers, booleans, NULL and typed literals. COPY options it reports are the ones
the server applies."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool() -> Path:
    for c in (os.environ.get("LBP_BUILD_DIR", ""), ROOT / "build-san", ROOT / "build"):
        if c and (Path(c) / "lbp-sqlrec").is_file():
            return Path(c) / "lbp-sqlrec"
    raise FileNotFoundError("lbp-sqlrec is not built: run scripts/setup.sh first")


def recognize(sql: str) -> dict:
    res = subprocess.run([str(tool())], input=sql.encode(), capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    return json.loads(res.stdout)


BASIC = "(a int, b text, c numeric, d float8, e bool, f bigint)"
TYPED = ("(ts timestamptz, j jsonb, v varchar(5), ia int[], n numeric(5,2), d date, u uuid, "
         "by bytea, iv interval, ta text[])")

CASES = [
    (BASIC, "INSERT INTO t_a VALUES (1, 'x', 1.5, -0.0, TRUE, -9223372036854775808)"),
    (BASIC, "insert into T_A (a, b, c, d, e, f) values (-2, E'a\\tb\\\\c\\nd\\re', -1e3, "
            "1.5e-3, false, +7), (0, U&'d!0061t!+000061' UESCAPE '!', 007, -0, NULL, - 0)"),
    (BASIC, "INSERT INTO t_a (b, d) VALUES ('it''s', -0e5), ($$dollar $ quote$$, 1e300), "
            "($x$a$$b$x$, .5), ('con'\n'tinued', 2.), ('a'  -- c\n  'b', -.0)"),
    (BASIC, "INSERT INTO t_a (b) VALUES (E'\\u00e9\\U0001F600'), (E'\\101\\x41\\x4'), "
            "(U&'\\D83D\\DE00'), ('back\\slash'), (''), (E'\\r\\n\\t'), ('\\N'), (E'\\\\N'), "
            "(NULL), (E'\\q\\''), (E'a'\n'\\n'), (U&'a'\n'\\0062'), ('\";|,')"),
    (BASIC, "/* c */ INSERT -- x\n INTO t_a /* y /* nested */ */ (a, b) VALUES (/* z */ 42, "
            "';') -- end\n;"),
    (TYPED, "INSERT INTO t_a VALUES ('2020-01-01 00:00:00+00'::timestamptz, "
            "'{\"a\": [1, \"x\\ty\"]}'::jsonb, 'abc'::varchar(5), '{1,2}'::int[], "
            "CAST('1.234' AS numeric(5,2)), date '2020-02-03', "
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', interval '1 day 2 hours', "
            "'{\"a b\",NULL,\"c\\\\d\"}'::text[])"),
    (TYPED, "INSERT INTO t_a (ts, d, by) VALUES (timestamp with time zone '2021-06-01 12:00', "
            "NULL::date, E'\\\\x00ff'), (NULL, CAST(NULL AS date), '')"),
]


@pytest.fixture
def conn(pg):
    with psycopg.connect(pg.dsn(), autocommit=True) as c:
        yield c


def rows(conn, table: str) -> list[str]:
    return sorted(r[0] for r in conn.execute(f"SELECT t::text FROM {table} t"))


def copy_rows(conn, stmt: dict, csv: bool) -> None:
    fields = "csv" if csv else "copy_text"
    data = "".join((',' if csv else '\t').join(v[fields] for v in row) + "\n"
                   for row in stmt["rows"])
    cols = f"({', '.join(stmt['cols'])})" if stmt["cols"] else ""
    with conn.cursor() as cur:
        with cur.copy(f"COPY t_b {cols} FROM STDIN" + (" (FORMAT csv)" if csv else "")) as cp:
            cp.write(data.encode())


@pytest.mark.parametrize("ddl,sql", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_copy_of_the_recognized_values_lands_what_the_insert_lands(conn, ddl, sql) -> None:
    stmt = recognize(sql)
    assert stmt["ok"], stmt
    assert stmt["kind"] == "insert" and stmt["table"] == "t_a"
    for t in ("t_a", "t_b"):
        conn.execute(f"CREATE TEMP TABLE {t} {ddl}")
    conn.execute(sql)
    inserted = rows(conn, "t_a")
    assert len(inserted) == len(stmt["rows"])
    for csv in (False, True):
        conn.execute("TRUNCATE t_b")
        copy_rows(conn, stmt, csv)
        assert rows(conn, "t_b") == inserted, f"csv={csv}"


def test_negative_zero_is_not_copied_as_negative(conn) -> None:
    """INSERT of -0.0 stores +0 in a float8 column (numeric has no -0); COPY of "-0.0" would
    store -0. The recognizer gives "0.0": this is what the comparison above relies on."""
    conn.execute("CREATE TEMP TABLE z (d float8)")
    conn.execute("INSERT INTO z VALUES (-0.0)")
    assert conn.execute("SELECT d::text FROM z").fetchone()[0] == "0"
    assert recognize("INSERT INTO z VALUES (-0.0)")["rows"][0][0]["copy_text"] == "0.0"


UPSERTS = [
    "INSERT INTO t_a VALUES (1, 'a') ON CONFLICT (k) DO NOTHING",
    "INSERT INTO t_a AS x (k, v) VALUES (1, 'b'), (2, $$c$$) ON CONFLICT (k) DO UPDATE SET "
    "v = EXCLUDED.v",
    "insert into T_A (\"k\", v) values (3, 'd') on conflict (k) do update set v = excluded . v, "
    "k = \"excluded\".k;",
]


def test_recognized_upserts_run_on_the_server(conn) -> None:
    conn.execute("CREATE TEMP TABLE t_a (k int PRIMARY KEY, v text)")
    for sql in UPSERTS:
        stmt = recognize(sql)
        assert stmt["ok"] and stmt["conflict"] in ("nothing", "update"), stmt
        assert stmt["keys"] == ["k"]
        conn.execute(sql)
    assert conn.execute("SELECT k, v FROM t_a ORDER BY k").fetchall() == [
        (1, "b"), (2, "c"), (3, "d")]


COPIES = [
    "COPY t_a FROM STDIN",
    "copy t_a (a, b) from stdin with csv header delimiter as '|' null as 'NA'",
    "COPY t_a FROM STDIN (FORMAT csv, HEADER true, DELIMITER ';', NULL 'NA', QUOTE '''')",
    "COPY t_a FROM STDIN (DELIMITER ',', NULL '')",
    "COPY t_a FROM STDIN WITH (FORMAT 'csv', QUOTE '$', ESCAPE '!')",
]


@pytest.mark.parametrize("sql", COPIES)
def test_copy_options_are_the_ones_the_server_applies(conn, sql) -> None:
    stmt = recognize(sql)
    assert stmt["ok"] and stmt["kind"] == "copy", stmt
    o = stmt["copy"]
    d, null = o["delimiter"], o["null"]
    if o["format"] == "csv":
        q = o["quote"]
        data = (f"a{d}b\n" if o["header"] else "") + f"1{d}{null}\n2{d}{q}x{d}y{q}\n"
        want = [(1, None), (2, f"x{d}y")]
    else:
        data = f"1{d}{null}\n2{d}x\n"
        want = [(1, None), (2, "x")]
    conn.execute("CREATE TEMP TABLE t_a (a int, b text)")
    with conn.cursor() as cur:
        with cur.copy(sql) as cp:
            cp.write(data.encode())
    assert conn.execute("SELECT a, b FROM t_a ORDER BY a").fetchall() == want


def test_refused_statements_say_why() -> None:
    out = recognize("INSERT INTO t_a VALUES (now())")
    assert not out["ok"] and out["reason"] == "function call or bad type modifier"
    out = recognize("INSERT INTO t_a VALUES ('abc")
    assert not out["ok"] and out["lex"] == "unterminated quoted string"


ALPHABET = ["a", "Z", " ", "'", "\\", '"', "$", "\t", "\n", "\r", "é", "€", "😀", ";", "-", "/",
            "*", "!", "+", "0", "f", "?", ":"]


def lit_standard(rnd, s: str) -> str:
    body = s.replace("'", "''")
    if len(body) > 1 and rnd.random() < 0.3:   # continued across a newline
        cut = rnd.randrange(1, len(body))
        if body[cut - 1] != "'" and body[cut] != "'":
            return f"'{body[:cut]}'\n  -- c\n'{body[cut:]}'"
    return f"'{body}'"


def e_char(rnd, c: str) -> str:
    o, r = ord(c), rnd.random()
    if c in "'\\":
        return "\\" + c if r < 0.5 else ("''" if c == "'" else "\\\\")
    if o < 128 and r < 0.25:
        return f"\\{o:03o}"
    if o < 128 and r < 0.5:
        return f"\\x{o:02x}"
    if o < 0x10000 and r < 0.7:
        return f"\\u{o:04x}"
    if o >= 0x10000 and r < 0.7:
        hi, lo = 0xD800 + ((o - 0x10000) >> 10), 0xDC00 + ((o - 0x10000) & 0x3FF)
        return f"\\u{hi:04X}\\u{lo:04x}" if r < 0.6 else f"\\U{o:08x}"
    return {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(c, c) if r < 0.85 else c


def u_char(rnd, c: str, esc: str) -> str:
    o = ord(c)
    if c == "'":
        return "''"
    if c == esc:
        return esc + esc
    if rnd.random() < 0.5:
        return f"{esc}{o:04X}" if o < 0x10000 and rnd.random() < 0.5 else f"{esc}+{o:06x}"
    return c


def literal(rnd, s: str) -> str:
    kind = rnd.randrange(5)
    if kind == 0:
        return lit_standard(rnd, s)
    if kind == 1:
        return "E'" + "".join(e_char(rnd, c) for c in s) + "'"
    if kind == 2:
        return "U&'" + "".join(u_char(rnd, c, "\\") for c in s) + "'"
    if kind == 3:
        return "U&'" + "".join(u_char(rnd, c, "!") for c in s) + "' UESCAPE '!'"
    tag = "$q$" if "$q" not in s else "$zz$"
    return f"{tag}{s}{tag}" if "$zz" not in s else lit_standard(rnd, s)


def test_random_literals_decode_as_the_server_decodes_them(conn) -> None:
    """Seeded random strings written as every kind of string constant: the text the recognizer
    decodes is the text the server stores."""
    import random
    rnd = random.Random(20261201)
    strings = ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(0, 12)))
               for _ in range(300)]
    sql = "INSERT INTO t_a (n, b) VALUES " + ", ".join(
        f"({i}, {literal(rnd, s)})" for i, s in enumerate(strings))
    stmt = recognize(sql)
    assert stmt["ok"], stmt
    conn.execute("CREATE TEMP TABLE t_a (n int, b text)")
    conn.execute(sql)
    stored = [r[0] for r in conn.execute("SELECT b FROM t_a ORDER BY n")]
    assert stored == strings
    assert [row[1]["text"] for row in stmt["rows"]] == strings
