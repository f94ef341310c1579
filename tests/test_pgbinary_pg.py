"""The Bind parameter codec (src/pgbinary.c, through tests/tools/lbp_pgbinary.c) against a real
PostgreSQL. For edge values and a few hundred seeded random byte strings of every supported type
(valid values from the server's own send functions, and raw bits that are often out of range or
malformed), the value an INSERT with the bytes as a binary Bind parameter stores is, byte for byte
(the type's send function), the value a COPY of the codec's field stores; the COPY runs in a
session with another TimeZone and DateStyle. When the server refuses the parameter, the codec
refuses it too or its field fails the same way in COPY; the codec refuses a value the server
takes only in the two documented cases (a bool byte other than 0 and 1, a NaN other than the
server's own)."""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261201


def tool() -> Path:
    for c in (os.environ.get("LBP_BUILD_DIR", ""), ROOT / "build-san", ROOT / "build"):
        if c and (Path(c) / "lbp-pgbinary").is_file():
            return Path(c) / "lbp-pgbinary"
    raise FileNotFoundError("lbp-pgbinary is not built: run scripts/setup.sh first")


def codec(requests: list[str]) -> list[bytes]:
    """One answer line per request line (see tests/tools/lbp_pgbinary.c)."""
    res = subprocess.run([str(tool())], input="".join(r + "\n" for r in requests).encode(),
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(requests) + 1
    return lines[:-1]


def fields(oid: int, values: list[bytes]) -> list[bytes | None]:
    """The codec's COPY field of each binary value, None where it refuses."""
    out = codec([f"bin {oid} {v.hex()}" for v in values])
    assert all(o.startswith((b"ok ", b"err ")) for o in out)
    return [o[3:] if o.startswith(b"ok ") else None for o in out]


@dataclass(frozen=True)
class PgType:
    name: str       # the column type
    oid: int
    send: str       # its send function


TYPES = {t.name: t for t in [
    PgType("boolean", 16, "boolsend"), PgType("smallint", 21, "int2send"),
    PgType("integer", 23, "int4send"), PgType("bigint", 20, "int8send"),
    PgType("real", 700, "float4send"), PgType("double precision", 701, "float8send"),
    PgType("numeric", 1700, "numeric_send"), PgType("text", 25, "textsend"),
    PgType("character varying", 1043, "varcharsend"), PgType("bpchar", 1042, "bpcharsend"),
    PgType("bytea", 17, "byteasend"), PgType("date", 1082, "date_send"),
    PgType("timestamp without time zone", 1114, "timestamp_send"),
    PgType("timestamp with time zone", 1184, "timestamptz_send"),
    PgType("uuid", 2950, "uuid_send"), PgType("json", 114, "json_send"),
    PgType("jsonb", 3802, "jsonb_send"),
]}


@pytest.fixture
def direct(pg):
    """The session that INSERTs binary parameters (its TimeZone must not matter either)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as c:
        c.execute("SET TimeZone = 'America/New_York'")
        yield c


@pytest.fixture(params=[("UTC", "ISO, MDY"), ("Pacific/Chatham", "SQL, DMY")],
                ids=["utc-iso", "chatham-sql-dmy"])
def copier(pg, request):
    """The session that COPYs the fields, in another TimeZone and DateStyle."""
    with psycopg.connect(pg.dsn(), autocommit=True) as c:
        c.execute(f"SET TimeZone = '{request.param[0]}'")
        c.execute(f"SET DateStyle = '{request.param[1]}'")
        yield c


def insert_binary(conn, table: str, i: int, oid: int, value: bytes) -> str | None:
    """INSERTs value as a binary Bind parameter of type oid; the SQLSTATE, None if it landed."""
    res = conn.pgconn.exec_params(f"INSERT INTO {table} VALUES ($1, $2)".encode(),
                                  [str(i).encode(), value], [23, oid], [0, 1])
    if res.status == pq.ExecStatus.COMMAND_OK:
        return None
    return res.error_field(pq.DiagnosticField.SQLSTATE).decode()


def copy_rows(conn, table: str, rows: list[tuple[int, bytes]]) -> str | None:
    """COPYs (id, field) rows; the SQLSTATE, None if they landed."""
    try:
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as cp:
            cp.write(b"".join(str(i).encode() + b"\t" + f + b"\n" for i, f in rows))
    except psycopg.Error as e:
        return e.sqlstate
    return None


def stored(conn, table: str, send: str) -> dict[int, bytes]:
    return {i: bytes(b) for i, b in conn.execute(f"SELECT id, {send}(v) FROM {table}")}


def conservative(t: PgType, v: bytes) -> bool:
    """The values the codec refuses although the server takes them (docs/sql-recognizer.md)."""
    if t.name == "boolean":
        return len(v) == 1 and v[0] > 1
    if t.name == "real" and len(v) == 4:
        return math.isnan(struct.unpack(">f", v)[0]) and v != bytes.fromhex("7fc00000")
    if t.name == "double precision" and len(v) == 8:
        return math.isnan(struct.unpack(">d", v)[0]) and v != bytes.fromhex("7ff8000000000000")
    return False


def compare(direct, copier, param: PgType, column: str, send: str,
            values: list[bytes]) -> dict[str, int]:
    """The heart of it: the binary INSERT of each value against COPY of its field, into a
    column of type column (send: its send function). Returns counts of what happened."""
    direct.execute(f"CREATE TEMP TABLE pgb_d (id int, v {column})")
    copier.execute(f"CREATE TEMP TABLE pgb_c (id int, v {column})")
    fs = fields(param.oid, values)
    counts = {"same": 0, "both_refused": 0, "codec_refused": 0, "copy_failed_too": 0}
    batch = []
    for i, (v, f) in enumerate(zip(values, fs)):
        state = insert_binary(direct, "pgb_d", i, param.oid, v)
        if f is None:
            if state is None:
                assert conservative(param, v), (
                    f"{param.name} {v.hex()}: the server takes it, the codec refuses it")
                counts["codec_refused"] += 1
            else:
                counts["both_refused"] += 1
        elif state is None:
            batch.append((i, f))
        else:
            # Text the type's input refuses (invalid JSON): COPY must fail the same way.
            assert copy_rows(copier, "pgb_c", [(i, f)]) == state, (param.name, v.hex(), f)
            counts["copy_failed_too"] += 1
    assert copy_rows(copier, "pgb_c", batch) is None
    want, got = stored(direct, "pgb_d", send), stored(copier, "pgb_c", send)
    for i, f in batch:
        assert got[i] == want[i], (f"{param.name} -> {column}: {values[i].hex()} as {f!r} "
                                   f"stored {got[i].hex()}, the binary INSERT {want[i].hex()}")
    counts["same"] = len(batch)
    return counts


# ---- values ----


def server_sends(conn, t: PgType, texts: list[str]) -> list[bytes]:
    """The server's binary form of each text value."""
    return [bytes(conn.execute(f"SELECT {t.send}(%s::{t.name})", (s,)).fetchone()[0])
            for s in texts]


def raw(rnd: random.Random, n: int, sizes: list[int]) -> list[bytes]:
    return [rnd.randbytes(rnd.choice(sizes)) for _ in range(n)]


def integers(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    size = {21: 2, 23: 4, 20: 8}[t.oid]
    lo, hi = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    edges = [lo, hi, 0, -1, 1, lo + 1, hi - 1]
    return ([v.to_bytes(size, "big", signed=True) for v in edges]
            + raw(rnd, 300, [size] * 9 + [0, size - 1, size + 1]))


def floats(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    fmt = ">f" if t.oid == 700 else ">d"
    nice = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-300, 5e-324, 1.4e-45, 1.7976931348623157e308,
            3.4028234663852886e38, -2.2250738585072014e-308, math.inf, -math.inf, math.nan,
            math.pi, 16777217.0, 123456789.123456789]
    out = []
    for x in nice:
        try:
            out.append(struct.pack(fmt, x))
        except OverflowError:
            pass
    out += server_sends(conn, t, ["NaN", "-0", "1e-40", "-Infinity", "0.3"])
    size = struct.calcsize(fmt)
    nans = [bytes.fromhex("fff8000000000000"), bytes.fromhex("7ff0000000000001"),
            bytes.fromhex("ffc00000"), bytes.fromhex("7fc00001"), bytes.fromhex("7f800001")]
    out += [n for n in nans if len(n) == size]
    out += [struct.pack(fmt, rnd.uniform(-1e6, 1e6)) for _ in range(100)]
    return out + raw(rnd, 250, [size] * 12 + [0, size - 1, size + 4])


def booleans(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    return [b"\x00", b"\x01", b"\x02", b"\xff", b"", b"\x00\x00"]


NUMERIC_TEXTS = ["0", "0.000", "-0.5", "1.5", "-12345.678", "0.0001", "1e-8", "NaN",
                 "Infinity", "-Infinity", "99999999999999999999.99999999999999999999",
                 "-1e100", "1e-100", "0." + "0" * 16382 + "1", "1" + "0" * 131071,
                 "-" + "9" * 131072 + "." + "9" * 16383, "123456789012345678.5"]


def numerics(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    texts = NUMERIC_TEXTS + [
        f"{rnd.choice(['', '-'])}{rnd.randrange(10 ** rnd.randrange(1, 40))}"
        f".{rnd.randrange(10 ** 12):0{rnd.randrange(12, 20)}d}" for _ in range(150)]
    out = server_sends(conn, t, texts)
    for _ in range(250):   # headers the server may or may not take
        n = rnd.choice([0, 1, 2, 3, 5])
        weight = rnd.choice([-32768, -4000, -2, -1, 0, 1, 3, 4096, 32766, 32767,
                             rnd.randrange(-32768, 32768)])
        sign = rnd.choice([0, 0x4000, 0, 0x4000, 0xC000, 0xD000, 0xF000, 0x8000,
                           rnd.randrange(65536)])
        dscale = rnd.choice([0, 1, 2, 4, 7, 100, 16383, 16384, rnd.randrange(65536)])
        digits = [rnd.choice([0, 9999, rnd.randrange(10000), rnd.randrange(10000),
                              10000, 65535]) for _ in range(n)]
        v = struct.pack(">HhHH", n, weight, sign, dscale) + b"".join(
            struct.pack(">H", d) for d in digits)
        out.append(v[:rnd.choice([len(v)] * 8 + [rnd.randrange(len(v) + 1)])])
    return out


ALPHABET = ["a", "Z", " ", "\t", "\n", "\r", "\\", "\\.", "\\N", ".", "'", '"', "é", "€", "😀",
            "\x01", "\x7f", ",", "|", "{", "}"]


def strings(rnd: random.Random, n: int) -> list[str]:
    return ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(0, 12)))
            for _ in range(n)] + ["", "\\N", "\\.", "a   ", "   "]


def texts(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    bad = [b"a\x00b", b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
    return [s.encode() for s in strings(rnd, 250)] + bad + raw(rnd, 40, [1, 2, 3, 8])


def json_doc(rnd: random.Random, depth: int = 0):
    k = rnd.randrange(7 if depth < 3 else 4)
    if k == 0:
        return rnd.choice(strings(rnd, 1))
    if k == 1:
        return rnd.choice([0, -1, 1.5, 1e300, 12345678901234567890, -0.0])
    if k == 2:
        return rnd.choice([True, False, None])
    if k == 3:
        return rnd.choice(["", "\u0000", "\\u0000", "x\ty"])
    if k in (4, 5):
        return {rnd.choice(strings(rnd, 1)): json_doc(rnd, depth + 1)
                for _ in range(rnd.randrange(4))}
    return [json_doc(rnd, depth + 1) for _ in range(rnd.randrange(4))]


def json_texts(rnd: random.Random) -> list[bytes]:
    docs = [json.dumps(json_doc(rnd), ensure_ascii=rnd.random() < 0.5) for _ in range(200)]
    docs += ['{"a": 1, "a": 2}', ' [1, 2] ', '"\\ud83d\\ude00"', "1e400", "{", "[1,]", "",
             "nul", "'x'", '{"a":\t"b\\n"}\n']
    return [d.encode() for d in docs]


def jsons(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    return json_texts(rnd) + [b"\x00", b"{\"a\":\xff}"]


def jsonbs(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    docs = json_texts(rnd)
    return ([b"\x01" + d for d in docs] + server_sends(conn, t, ['{"b": 1, "a": [true]}'])
            + [b"", b"\x01", b"\x02{}", b"\x00{}", b"\x01\x00", b"{}"])


def byteas(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    return [b"", b"\\", b"\\x00", b"\x00\xff\n\t\r\\"] + raw(rnd, 200, list(range(0, 40)))


MIN_DATE, END_DATE = -2451545, 2147483494 - 2451545
MIN_TS, END_TS = -211813488000000000, 9223371331200000000


def dates(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    edges = [0, -1, 59, -36466, -36465, -730119, -730120, -730485, -730486, MIN_DATE,
             MIN_DATE - 1, END_DATE - 1, END_DATE, -(1 << 31), (1 << 31) - 1, -(1 << 31) + 1,
             (1 << 31) - 2]
    rand = [rnd.randrange(MIN_DATE, END_DATE) for _ in range(150)]
    rand += [rnd.randrange(-(1 << 31), 1 << 31) for _ in range(100)]
    return ([struct.pack(">i", d) for d in edges + rand]
            + server_sends(conn, t, ["infinity", "-infinity", "4714-11-24 BC", "0044-03-15 BC"])
            + [b"", b"\x00\x00\x00", b"\x00" * 5])


def timestamps(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    day = 86400000000
    edges = [0, 1, -1, 762525296500000, MIN_TS, MIN_TS - 1, MIN_TS + 1, END_TS - 1, END_TS,
             -730119 * day, -730119 * day - 1, -730485 * day, -(1 << 63), (1 << 63) - 1,
             -(1 << 63) + 1, (1 << 63) - 2, 59 * day + 1234567]
    rand = [rnd.randrange(MIN_TS, END_TS) for _ in range(150)]
    rand += [rnd.randrange(-(1 << 63), 1 << 63) for _ in range(100)]
    rand += [rnd.randrange(-100 * 365, 100 * 365) * day + rnd.randrange(day) for _ in range(50)]
    return ([struct.pack(">q", x) for x in edges + rand]
            + server_sends(conn, t, ["infinity", "-infinity", "2020-02-29 12:00:00.25"])
            + [b"", b"\x00" * 7, b"\x00" * 9])


def uuids(conn, t: PgType, rnd: random.Random) -> list[bytes]:
    return (server_sends(conn, t, ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"])
            + [b"\x00" * 16, b"\xff" * 16] + raw(rnd, 100, [16] * 9 + [0, 15, 17]))


MAKERS = {
    "boolean": booleans, "smallint": integers, "integer": integers, "bigint": integers,
    "real": floats, "double precision": floats, "numeric": numerics, "text": texts,
    "character varying": texts, "bpchar": texts, "bytea": byteas, "date": dates,
    "timestamp without time zone": timestamps, "timestamp with time zone": timestamps,
    "uuid": uuids, "json": jsons, "jsonb": jsonbs,
}


@pytest.mark.parametrize("name", list(TYPES))
def test_copy_of_the_field_stores_what_the_binary_insert_stores(direct, copier, name) -> None:
    t = TYPES[name]
    values = MAKERS[name](direct, t, random.Random(f"{SEED}-{name}"))
    counts = compare(direct, copier, t, name, t.send, values)
    # The values are meant to exercise both sides: most land, some are refused.
    assert counts["same"] >= (2 if name == "boolean" else 5), counts
    if name not in ("text", "character varying", "bpchar", "bytea", "json"):
        assert counts["both_refused"] >= 1, counts


# ---- parameters into columns of other types ----

# (parameter type, column type, the column type's send function): pgb_param_fits says yes.
FITS = [
    ("smallint", "integer", "int4send"), ("smallint", "bigint", "int8send"),
    ("integer", "bigint", "int8send"), ("integer", "numeric", "numeric_send"),
    ("bigint", "numeric(30,2)", "numeric_send"), ("smallint", "numeric(5,1)", "numeric_send"),
    ("numeric", "numeric(10,2)", "numeric_send"),
    ("timestamp without time zone", "timestamp(3) without time zone", "timestamp_send"),
    ("timestamp with time zone", "timestamp(0) with time zone", "timestamptz_send"),
    ("text", "character varying", "varcharsend"), ("text", "character varying(5)", "varcharsend"),
    ("text", "character(4)", "bpcharsend"), ("character varying", "text", "textsend"),
    ("character varying", "character(6)", "bpcharsend"),
    ("character varying(3)", "character varying(3)", "varcharsend"),
]


@pytest.mark.parametrize("param,column,send", FITS, ids=[f"{p}->{c}" for p, c, _ in FITS])
def test_a_parameter_that_fits_a_column_stores_what_the_insert_stores(direct, copier, param,
                                                                       column, send) -> None:
    """INSERT casts the parameter to the column's type (with its typmod: rounding, length
    errors), COPY reads the field with the column's input function: same value, same error."""
    t = TYPES[param.split("(")[0]]
    col_oid = direct.execute("SELECT %s::regtype::oid", (column,)).fetchone()[0]
    assert codec([f"fits {t.oid} {col_oid}"]) == [b"yes"]
    values = MAKERS[t.name](direct, t, random.Random(f"{SEED}-{param}-{column}"))
    counts = compare(direct, copier, t, column, send, values)
    assert counts["same"] >= 5, counts


# A pair pgb_param_fits refuses, and a value that shows why.
DONT_FIT = [
    ("real", "double precision", "0.1"),          # the cast widens exactly; "0.100000001" does not
    ("bpchar", "text", "ab  "),                   # the cast drops trailing spaces
    ("date", "timestamp with time zone", "2020-01-01"),   # midnight in the session's TimeZone
]


@pytest.mark.parametrize("param,column,text", DONT_FIT, ids=[p for p, _, _ in DONT_FIT])
def test_a_parameter_that_does_not_fit_would_store_another_value(direct, copier, param, column,
                                                                 text) -> None:
    t = TYPES[param]
    col_oid = direct.execute("SELECT %s::regtype::oid", (column,)).fetchone()[0]
    assert codec([f"fits {t.oid} {col_oid}"]) == [b"no"]
    [v] = server_sends(direct, t, [text])
    direct.execute(f"CREATE TEMP TABLE dont_d (id int, v {column})")
    copier.execute(f"CREATE TEMP TABLE dont_c (id int, v {column})")
    assert insert_binary(direct, "dont_d", 1, t.oid, v) is None
    [f] = fields(t.oid, [v])
    assert copy_rows(copier, "dont_c", [(1, f)]) is None
    # Compared as the instants or the bytes the server keeps, not as session-dependent text.
    d = direct.execute("SELECT v::text, v::text::bytea FROM dont_d").fetchone()
    c = copier.execute("SELECT v::text, v::text::bytea FROM dont_c").fetchone()
    if "zone" in column:
        d = direct.execute("SELECT extract(epoch FROM v) FROM dont_d").fetchone()
        c = copier.execute("SELECT extract(epoch FROM v) FROM dont_c").fetchone()
    assert d != c


# ---- the catalog's type names ----


def test_format_type_names_map_to_the_column_types(direct) -> None:
    cols = ["boolean", "smallint", "integer", "bigint", "real", "double precision", "numeric",
            "numeric(10,2)", "numeric(5)", "text", "varchar", "varchar(20)", "char(5)", "bpchar",
            "char", "bytea", "date", "timestamp", "timestamp(3)", "timestamptz",
            "timestamptz(0)", "uuid", "json", "jsonb",
            # not ours
            "int[]", "\"char\"", "name", "interval", "time", "pg_temp.pgb_dom", "numeric(10,2)[]"]
    direct.execute("CREATE DOMAIN pg_temp.pgb_dom AS integer")
    direct.execute("CREATE TEMP TABLE names (" +
                   ", ".join(f"c{i} {c}" for i, c in enumerate(cols)) + ")")
    rows = direct.execute(
        "SELECT format_type(atttypid, atttypmod), atttypid FROM pg_attribute "
        "WHERE attrelid = 'names'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
    answers = codec([f"name {n}" for n, _ in rows])
    for (name, oid), answer, col in zip(rows, answers, cols):
        typname, got = answer.decode().split(" ")
        want = oid if oid in {t.oid for t in TYPES.values()} else 0
        assert int(got) == want, (col, name, answer)
