"""The ingest port and the coalescer against a real PostgreSQL: the promises of DESIGN.md.

Each test starts its own proxy; clients speak the ingest protocol with the package's client
(lakebase_foreachwriter.ingest_protocol). What is asserted is what landed in the table and what
each client was told.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lakebase_foreachwriter.ingest_protocol import (Ack, FlushError, IngestConnection,
                                                    ProtocolError, ProxyError, encode_flush,
                                                    encode_hello, encode_rows, frame)
from pgharness import PgServer
from proxyproc import SMALL_ASAN_QUARANTINE, start_proxy


def sql(pg: PgServer, text: str) -> list[list[str]]:
    return pg.admin_sql(text)


def make_table(pg: PgServer, name: str, ddl: str) -> None:
    sql(pg, f'DROP TABLE IF EXISTS "{name}"; CREATE TABLE "{name}" ({ddl}); '
            f'GRANT ALL ON "{name}" TO {pg.user}')


def rows_text(rows) -> bytes:
    return "".join("\t".join(r) + "\n" for r in rows).encode()


def count(pg: PgServer, table: str) -> int:
    return int(sql(pg, f'SELECT count(*) FROM "{table}"')[0][0])


class TableLocked:
    """Holds a SHARE lock on a table from another session, so the proxy's first batch waits and
    the units sent meanwhile queue up and go out together in the next batch."""

    def __init__(self, pg: PgServer, table: str) -> None:
        self.pg, self.table = pg, table

    def __enter__(self) -> "TableLocked":
        self.proc = subprocess.Popen(
            [os.path.join(self.pg.pgbin, "psql"), "-X", "-q", "-h", self.pg.sockdir, "-p",
             str(self.pg.port), "-U", "postgres", "-d", self.pg.dbname, "-c",
             f'BEGIN; LOCK TABLE "{self.table}" IN SHARE MODE; SELECT pg_sleep(600)'],
            env={**os.environ, "PGAPPNAME": "locker"})
        deadline = time.monotonic() + 30
        while sql(self.pg, f"SELECT count(*) FROM pg_locks WHERE granted AND relation = "
                           f"'\"{self.table}\"'::regclass AND mode = 'ShareLock'") != [["1"]]:
            assert time.monotonic() < deadline, "lock not taken"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        sql(self.pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'locker'")
        self.proc.wait(30)


@pytest.fixture
def proxy(pg: PgServer, tmp_path: Path):
    p, addr = start_proxy(pg, tmp_path)
    yield p, addr
    assert p.stop() == 0, p.log


def test_one_client_flushes_are_acked_after_commit(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "ev1", "id bigint PRIMARY KEY, name text, ts timestamptz, v double precision")
    c = IngestConnection(addr, client_name="t1")
    assert c.hello.major == 1 and c.hello.max_flush_bytes > 0
    cols = c.open("ev1", "insert", ["id", "name", "ts", "v"], schema="public")
    assert cols == [("id", "bigint"), ("name", "text"), ("ts", "timestamp with time zone"),
                    ("v", "double precision")]
    ids = []
    for f in range(10):
        batch = [(str(f * 100 + i), f"n\\t{i}", "2026-11-24 12:00:00+00", "1.5")
                 for i in range(100)]
        ids += [int(r[0]) for r in batch]
        c.send_rows(rows_text(batch))
        c.flush()
    answers = [c.read_answer() for _ in range(10)]
    assert answers == [Ack(i + 1, 100) for i in range(10)]
    # Acked means committed: visible from another session right now.
    assert count(pg, "ev1") == 1000
    assert sql(pg, "SELECT name FROM ev1 WHERE id = 5") == [["n\t5"]]
    assert c.close() == []
    assert "event=open" in proc.log


def client_worker(addr: str, table: str, client: int, flushes: int, per_flush: int,
                  acked: list, errors: list, barrier: threading.Barrier | None = None) -> None:
    try:
        c = IngestConnection(addr, client_name=f"c{client}")
        c.open(table, "insert", ["client", "seq", "payload"])
        if barrier:
            barrier.wait()
        sent: dict[int, list[int]] = {}
        seq = 0
        for _ in range(flushes):
            rows = []
            for _ in range(per_flush):
                rows.append((str(client), str(seq), f"p{client}-{seq}"))
                seq += 1
            # Rows of one unit may come in several messages.
            half = len(rows) // 2
            if half:
                c.send_rows(rows_text(rows[:half]))
            c.send_rows(rows_text(rows[half:]))
            fid = c.flush()
            sent[fid] = [int(r[1]) for r in rows]
        for _ in range(flushes):
            a = c.read_answer()
            if isinstance(a, Ack):
                assert a.rows == len(sent[a.flush_id])
                acked.extend((client, s) for s in sent[a.flush_id])
            else:
                errors.append((client, a))
        c.close()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append((client, repr(e)))


def test_64_clients_every_acked_row_exactly_once(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "ev64", "client int NOT NULL, seq int NOT NULL, payload text")
    acked: list = []
    errors: list = []
    threads = [threading.Thread(target=client_worker,
                                args=(addr, "ev64", i, 20, random.Random(i).randint(1, 30),
                                      acked, errors)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    landed = sql(pg, "SELECT client, seq, count(*) FROM ev64 GROUP BY 1, 2 HAVING count(*) > 1")
    assert landed == []  # nothing twice
    assert count(pg, "ev64") == len(acked)
    rows = {(int(a), int(b)) for a, b in sql(pg, "SELECT client, seq FROM ev64")}
    assert rows == set(acked)
    # Coalescing happened: the 1280 flush units went out in fewer batches.
    m = proc.wait_log(r"units_committed=1280 units_failed=0 batches=(\d+) ")
    assert int(m.group(1)) < 1280


def test_bad_rows_fail_only_their_own_unit(pg: PgServer, tmp_path: Path) -> None:
    # One batch at a time, so that good and bad units share the next batch.
    proc, addr = start_proxy(pg, tmp_path, batch={"max_inflight": 1})
    make_table(pg, "evbad", "id int PRIMARY KEY, n int NOT NULL, s text")
    sql(pg, "INSERT INTO evbad VALUES (999999, 0, 'taken')")
    good = [IngestConnection(addr, client_name=f"good{i}") for i in range(5)]
    bad = IngestConnection(addr, client_name="bad")
    for c in good + [bad]:
        c.open("evbad", "insert", ["id", "n", "s"])
    bad_units = [
        ([("500001", "1", "a"), ("500002", "x", "b")], "22P02", 2),        # text into int
        ([("500003", "1", "a"), ("500004", "\\N", "b")], "23502", 2),      # NULL into NOT NULL
        ([("999999", "1", "dup")], "23505", 1),                               # duplicate key
    ]
    with TableLocked(pg, "evbad"):
        for i, c in enumerate(good):
            c.send_rows(rows_text([(str(i * 1000 + k), str(k), "ok") for k in range(50)]))
            c.flush()
        for rows, _, _ in bad_units:
            bad.send_rows(rows_text(rows))
            bad.flush()
        for i, c in enumerate(good):
            c.send_rows(rows_text([(str(i * 1000 + 500 + k), str(k), "ok2")
                                   for k in range(50)]))
            c.flush()
        proc.wait_log(r"rows_received=505 ")  # all units are in the proxy
    for (rows, state, row), fid in zip(bad_units, range(1, 4)):
        a = bad.read_answer()
        assert isinstance(a, FlushError), a
        assert (a.flush_id, a.sqlstate, a.row) == (fid, state, row), a
        assert a.message  # PostgreSQL's message
    for c in good:
        assert [c.read_answer() for _ in range(2)] == [Ack(1, 50), Ack(2, 50)]
    assert count(pg, "evbad") == 1 + 5 * 100
    assert sql(pg, "SELECT count(*) FROM evbad WHERE id > 500000 AND id < 999999") == [["0"]]
    proc.wait_log(r"batch_retries=[1-9]")
    for c in good + [bad]:
        c.close()
    assert proc.stop() == 0


def test_malformed_rows_are_caught_before_the_server(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "evfmt", "a int, b text")
    c = IngestConnection(addr)
    c.open("evfmt", "insert", ["a", "b"])
    cases = [
        (b"1\tx\n2\n", "22P04", 2),               # too few fields
        (b"1\tx\ty\n", "22P04", 1),               # too many
        (b"1\tx\\q\n", "22P04", 1),               # bad escape
        (b"1\t\\.\n", "22P04", 1),                # end marker smuggled in
        (b"1\tx\ry\n", "22P04", 1),               # raw carriage return
        (b"1\tx\x00\n", "22P04", 1),              # NUL
        (b"1\t\xff\xfe\n", "22021", 1),           # not UTF-8
        (b"1\tx", "22P04", 1),                    # no newline
    ]
    for data, _, _ in cases:
        c.send_rows(data)
        c.flush()
    for i, (data, state, row) in enumerate(cases, 1):
        a = c.read_answer()
        assert isinstance(a, FlushError) and (a.flush_id, a.sqlstate, a.row) == (i, state, row), \
            (data, a)
    # The stream is still usable and nothing of the bad units landed.
    c.send_rows(b"7\tfine\n")
    c.flush()
    assert c.read_answer() == Ack(len(cases) + 1, 1)
    assert sql(pg, "SELECT a, b FROM evfmt") == [["7", "fine"]]
    c.close()
    # One log line for each failed flush, with what its client was told.
    for i, (_, state, row) in enumerate(cases, 1):
        proc.wait_log(rf"event=flush_failed flush_id={i} sqlstate={state} row={row} ")


def test_oversized_flush_unit_fails_and_stream_continues(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, ingest={
        "max_flush_bytes": 65536, "client_buffer_bytes": 131072})
    make_table(pg, "evbig", "a int, b text")
    c = IngestConnection(addr)
    assert c.hello.max_flush_bytes == 65536
    c.open("evbig", "insert", ["a", "b"])
    row = b"1\t" + b"x" * 1000 + b"\n"
    for _ in range(100):  # 100 KB in one unit
        c.send_rows(row)
    c.flush()
    a = c.read_answer()
    assert isinstance(a, FlushError) and a.sqlstate == "54000" and "65536" in a.message
    c.send_rows(row)
    c.flush()
    assert c.read_answer() == Ack(2, 1)
    c.close()
    assert count(pg, "evbig") == 1
    assert proc.stop() == 0


def raw_session(addr: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def read_error(s: socket.socket) -> tuple[str, str]:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    # Skip a HelloOk if the Hello was fine; the last message must be the Error.
    while data[:1] == b"h":
        data = data[1 + struct.unpack("!I", data[1:5])[0]:]
    assert data[:1] == b"E", data
    body = data[5:5 + struct.unpack("!I", data[1:5])[0] - 4]
    state, msg = body.split(b"\0")[:2]
    return state.decode(), msg.decode()


HOSTILE = [
    ("garbage", lambda: b"GET / HTTP/1.1\r\n\r\n", "08P01"),
    ("length below 4", lambda: b"H\x00\x00\x00\x02", "08P01"),
    ("huge frame before hello", lambda: b"H\x7f\xff\xff\xff" + b"x" * 100, "08P01"),
    ("rows before hello", lambda: frame(b"D", b"1\n"), "08P01"),
    ("version 2", lambda: frame(b"H", struct.pack("!HH", 2, 0) + b"x\0\0"), "08P01"),
    ("truncated hello", lambda: frame(b"H", struct.pack("!HH", 1, 0) + b"x"), "08P01"),
    ("rows before open", lambda: encode_hello("x") + frame(b"D", b"1\n"), "08P01"),
    ("unknown type", lambda: encode_hello("x") + frame(b"Z", b""), "08P01"),
]


@pytest.mark.parametrize("name,payload,state", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bytes_get_an_error_and_hurt_nobody(pg: PgServer, proxy, name, payload,
                                                    state) -> None:
    proc, addr = proxy
    make_table(pg, "evhost", "a int")
    good = IngestConnection(addr, client_name="bystander")
    good.open("evhost", "insert", ["a"])
    good.send_rows(b"1\n")
    s = raw_session(addr)
    s.sendall(payload())
    got_state, msg = read_error(s)
    assert got_state == state, msg
    assert msg
    good.send_rows(b"2\n")
    good.flush()
    assert good.read_answer() == Ack(1, 2)
    good.close()
    assert proc.proc.poll() is None


OPEN_ERRORS = [
    ("unknown table", dict(table="no_such_table", mode="insert", columns=["a"]), "42P01"),
    ("unknown column", dict(table="evopen", mode="insert", columns=["a", "nope"]), "42703"),
    ("hostile table name", dict(table='evopen"; DROP TABLE evopen; --', mode="insert",
                                columns=["a"]), "42P01"),
    ("name too long", dict(table="t" * 64, mode="insert", columns=["a"]), "42602"),
    ("duplicate column", dict(table="evopen", mode="insert", columns=["a", "a"]), "22023"),
    ("upsert without keys", dict(table="evopen", mode="upsert", columns=["a"]), "22023"),
    ("upsert keys not unique", dict(table="evopen", mode="upsert", columns=["a", "b"],
                                    keys=["b"]), "42P10"),
    ("keys in insert mode", dict(table="evopen", mode="insert", columns=["a"], keys=["a"]),
     "22023"),
    ("two names of one column", dict(table="evopen", mode="insert", columns=["a", "A"]),
     "42701"),
]


@pytest.mark.parametrize("name,kwargs,state", OPEN_ERRORS, ids=[o[0] for o in OPEN_ERRORS])
def test_bad_open_is_refused_clearly(pg: PgServer, proxy, name, kwargs, state) -> None:
    proc, addr = proxy
    make_table(pg, "evopen", "a int PRIMARY KEY, b text")
    c = IngestConnection(addr)
    with pytest.raises(ProxyError) as e:
        c.open(**kwargs)
    assert e.value.sqlstate == state, e.value
    assert count(pg, "evopen") == 0
    assert sql(pg, "SELECT to_regclass('evopen') IS NOT NULL") == [["t"]]


def test_names_resolve_exact_first_then_ignoring_case(pg: PgServer, proxy) -> None:
    """Open's names follow the rule of docs/ingest-protocol.md: an exact match, else the only
    one equal ignoring ASCII case; OpenOk answers the catalog's names; rows land there."""
    proc, addr = proxy
    make_table(pg, "evnames", '"eventId" bigint PRIMARY KEY, eventid bigint, userid text, '
                              '"Note" text, "NOTE" text')
    c = IngestConnection(addr)
    assert c.open("EVNAMES", "upsert", ["eventId", "USERID"], schema="Public",
                  keys=["eventId"]) == [("eventId", "bigint"), ("userid", "text")]
    c.send_rows(b"1\tu1\n")
    c.flush()
    assert c.read_answer() == Ack(1, 1)
    c.close()
    assert sql(pg, 'SELECT "eventId", eventid IS NULL, userid FROM evnames') == [["1", "t", "u1"]]
    c = IngestConnection(addr)
    with pytest.raises(ProxyError) as e:
        c.open("evnames", "insert", ["eventId", "note"])
    assert e.value.sqlstate == "42702"
    assert '"Note", "NOTE"' in e.value.message and "write the exact name" in e.value.message
    c = IngestConnection(addr)
    with pytest.raises(ProxyError) as e:
        c.open("evnames", "insert", ["nope"])
    assert e.value.sqlstate == "42703" and '"eventId", "eventid", "userid"' in e.value.message


def test_ambiguous_table_names_are_refused_naming_them(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "evtwin", "a int")
    make_table(pg, "EvTwin", "a int")
    c = IngestConnection(addr)
    with pytest.raises(ProxyError) as e:
        c.open("EVTWIN", "insert", ["a"])
    assert e.value.sqlstate == "42P01"
    assert '"EvTwin"' in e.value.message and "public.evtwin" in e.value.message
    c = IngestConnection(addr)  # an exact match still wins
    c.open("EvTwin", "insert", ["a"])
    c.send_rows(b"7\n")
    c.flush()
    assert c.read_answer() == Ack(1, 1)
    c.close()
    assert sql(pg, 'SELECT a FROM "EvTwin"') == [["7"]]


def test_token_required_when_configured(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, ingest={"auth_token": "sesame-123"})
    with pytest.raises(ProxyError) as e:
        IngestConnection(addr, token="wrong")
    assert e.value.sqlstate == "28000"
    c = IngestConnection(addr, token="sesame-123")
    c.abort()
    assert "sesame-123" not in proc.log
    assert proc.stop() == 0


def test_too_many_clients(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, ingest={"max_clients": 2})
    a, b = IngestConnection(addr), IngestConnection(addr)
    with pytest.raises(ProxyError) as e:
        IngestConnection(addr)
    assert e.value.sqlstate == "53300"
    a.abort()
    b.abort()
    assert proc.stop() == 0


def replay(rows, keys_idx, ncols):
    state: dict = {}
    for r in rows:
        state[tuple(r[i] for i in keys_idx)] = r
    return state


def test_upsert_matches_sequential_replay(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "evup", "k int PRIMARY KEY, v text, n int")
    rng = random.Random(7)
    per_client: dict[int, list] = {}
    clients = []
    for ci in range(8):
        c = IngestConnection(addr, client_name=f"u{ci}")
        c.open("evup", "upsert", ["k", "v", "n"], keys=["k"])
        clients.append(c)
        per_client[ci] = []
    # Keys are split between clients (each key has one writer, so order is defined), and
    # repeat inside units and across units.
    flushes = 0
    for step in range(30):
        for ci, c in enumerate(clients):
            unit = []
            for _ in range(rng.randint(1, 40)):
                k = ci * 100 + rng.randint(0, 20)
                unit.append((str(k), f"s{step}-{rng.random():.6f}", str(rng.randint(0, 9))))
            per_client[ci].extend(unit)
            c.send_rows(rows_text(unit))
            c.flush()
    for c in clients:
        for _ in range(30):
            assert isinstance(c.read_answer(), Ack)
        c.close()
    expected = {}
    for ci in range(8):
        expected.update(replay(per_client[ci], [0], 3))
    got = {(r[0],): tuple(r) for r in sql(pg, "SELECT k, v, n FROM evup")}
    assert got == expected


def test_upsert_coalesce_and_version_columns(pg: PgServer, proxy) -> None:
    proc, addr = proxy
    make_table(pg, "evco", "k int PRIMARY KEY, a text, b text")
    sql(pg, "INSERT INTO evco VALUES (1, 'a0', 'b0'), (2, 'a0', 'b0')")
    c = IngestConnection(addr)
    c.open("evco", "upsert", ["k", "a", "b"], keys=["k"], coalesce_columns=["b"])
    # Within one unit: b keeps the last non-NULL; NULL keeps the stored value.
    c.send_rows(b"1\ta1\tb1\n1\ta2\t\\N\n2\ta3\t\\N\n3\t\\N\t\\N\n")
    c.flush()
    assert c.read_answer() == Ack(1, 4)
    assert sql(pg, "SELECT k, coalesce(a, 'NULL'), coalesce(b, 'NULL') FROM evco "
                   "ORDER BY k") == [["1", "a2", "b1"], ["2", "a3", "b0"], ["3", "NULL", "NULL"]]
    c.close()

    make_table(pg, "evver", "k int PRIMARY KEY, v int, x text")
    sql(pg, "INSERT INTO evver VALUES (1, 5, 'stored')")
    c = IngestConnection(addr)
    c.open("evver", "upsert", ["k", "v", "x"], keys=["k"], version_column="v")
    c.send_rows(b"1\t3\told\n2\t7\tfirst7\n2\t7\tsecond7\n2\t6\tolder\n")
    c.flush()
    c.send_rows(b"1\t9\tnewer\n")
    c.flush()
    assert [c.read_answer() for _ in range(2)] == [Ack(1, 4), Ack(2, 1)]
    assert sql(pg, "SELECT k, v, x FROM evver ORDER BY k") == [
        ["1", "9", "newer"], ["2", "7", "first7"]]
    c.close()


def test_terminated_backends_lose_no_acked_row(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, pool={"min_size": 2, "max_size": 3,
                                                 "reconnect_base_ms": 20,
                                                 "reconnect_max_ms": 200})
    make_table(pg, "evkill", "client int, seq int, payload text")
    acked: list = []
    errors: list = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            sql(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'lakebase-proxy'")
            time.sleep(0.15)

    # The killing starts once every client has opened its stream (an Open whose table
    # lookup is killed over and over is refused, which is not what this test is about).
    opened = threading.Barrier(9)
    threads = [threading.Thread(target=client_worker,
                                args=(addr, "evkill", i, 30, 200, acked, errors, opened))
               for i in range(8)]
    for t in threads:
        t.start()
    opened.wait(60)
    k = threading.Thread(target=killer)
    k.start()
    for t in threads:
        t.join(180)
    stop.set()
    k.join()
    # Some units may fail (08007 when the commit's fate is unknown, 08000); none is lost.
    for _, e in errors:
        assert isinstance(e, FlushError) and e.sqlstate in ("08007", "08000", "57P01"), errors
    landed = {(int(a), int(b)) for a, b in sql(pg, "SELECT client, seq FROM evkill")}
    assert set(acked) <= landed
    assert sql(pg, "SELECT count(*) FROM (SELECT client, seq FROM evkill GROUP BY 1, 2 "
                   "HAVING count(*) > 1) d") == [["0"]]
    assert len(acked) > 0
    assert proc.stop() == 0


def proxy_rss_kib(proc) -> int:
    with open(f"/proc/{proc.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def push_until_blocked(c: IngestConnection, payload: bytes, limit_bytes: int,
                       seconds: float = 60) -> tuple[bool, int]:
    """Sends payload again and again without reading answers, until send() blocks."""
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < limit_bytes:
        try:
            c.send(payload)
        except (socket.timeout, TimeoutError):
            return True, sent
        sent += len(payload)
    return False, sent


def test_client_that_stops_reading_acks_is_held_back(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, env=SMALL_ASAN_QUARANTINE)
    make_table(pg, "evbp", "a int")
    c = IngestConnection(addr, timeout=3)
    c.open("evbp", "insert", ["a"])
    # One-row units: every 18 bytes sent earn a 21-byte Ack that nobody reads.
    unit = encode_rows(b"1\n") + encode_flush(1)
    before = proxy_rss_kib(proc)
    blocked, sent = push_until_blocked(c, unit * 2000, 1 << 30)
    assert blocked, f"sent {sent} bytes without being held back"
    # Bounded, not growing with what the client pushes (a Release build stays well under
    # 64 MiB here; the sanitizer build's allocator adds its own overhead per allocation).
    assert proxy_rss_kib(proc) - before < 192 * 1024
    c.abort()
    assert proc.stop() == 0


def test_slow_server_holds_clients_back_with_bounded_memory(pg: PgServer,
                                                           tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, env=SMALL_ASAN_QUARANTINE, ingest={
        "max_flush_bytes": 1 << 20, "client_buffer_bytes": 2 << 20,
        "global_buffer_bytes": 4 << 20}, batch={"acquire_timeout_ms": 120000},
        pool={"query_timeout_ms": 120000})
    make_table(pg, "evslow", "a int, b text")
    # Hold the table locked: batches wait on the server, units pile up in the proxy.
    locker = subprocess.Popen(
        [os.path.join(pg.pgbin, "psql"), "-X", "-q", "-h", pg.sockdir, "-p", str(pg.port),
         "-U", "postgres", "-d", pg.dbname, "-c",
         "BEGIN; LOCK TABLE evslow IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)"],
        env={**os.environ, "PGAPPNAME": "locker"})
    clients = [IngestConnection(addr, timeout=3, client_name=f"s{i}") for i in range(3)]
    try:
        for c in clients:
            c.open("evslow", "insert", ["a", "b"])
        rows = b"".join(b"%d\t%s\n" % (i, b"z" * 200) for i in range(2000))  # ~400 KB
        unit = encode_rows(rows) + encode_flush(0)
        before = proxy_rss_kib(proc)
        results = [push_until_blocked(c, unit, 1 << 30) for c in clients]
        assert all(b for b, _ in results), results
        # The proxy holds at most the global limit plus a frame per client, not what was sent.
        proc.wait_log(r"paused=3 ")
        grown = proxy_rss_kib(proc) - before
        assert grown < 192 * 1024, grown
        m = re.findall(r"buffered_bytes=(\d+)", proc.log)
        assert max(map(int, m)) <= (4 << 20) + (1 << 20)  # limit + one unit
    finally:
        # The backend would sleep on with the lock after its client is gone: end it.
        sql(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'locker'")
        locker.wait(30)
    # The lock is gone: everything flushed commits and is acknowledged.
    for c, (_, sent) in zip(clients, results):
        c.sock.settimeout(60)
        units = sent // len(unit)
        answers = [c.read_answer() for _ in range(units)]
        assert all(isinstance(a, Ack) and a.rows == 2000 for a in answers), answers[:3]
        c.abort()
    assert count(pg, "evslow") == sum(s // len(unit) for _, s in results) * 2000
    assert proc.stop() == 0


def test_error_without_a_line_runs_units_one_by_one(pg: PgServer, tmp_path: Path) -> None:
    # Upsert stages rows first (no constraints there), so a NOT NULL violation comes from the
    # INSERT ... SELECT and names no COPY line: the proxy must still isolate the unit.
    proc, addr = start_proxy(pg, tmp_path)
    make_table(pg, "evsplit", "k int PRIMARY KEY, v text NOT NULL")
    good = [IngestConnection(addr, client_name=f"g{i}") for i in range(4)]
    bad = IngestConnection(addr, client_name="b")
    for c in good + [bad]:
        c.open("evsplit", "upsert", ["k", "v"], keys=["k"])
    # A first unit holds the target's one upsert batch on the lock; the others queue behind
    # it and share the next batch.
    with TableLocked(pg, "evsplit"):
        good[0].send_rows(b"1000\tfirst\n")
        good[0].flush()
        bad.send_rows(b"7\tok\n8\t\\N\n")
        bad.flush()
        for i, c in enumerate(good):
            c.send_rows(rows_text([(str(i * 10 + k), f"v{k}") for k in range(5)]))
            c.flush()
        proc.wait_log(r"rows_received=23 ")
    a = bad.read_answer()
    assert isinstance(a, FlushError) and a.sqlstate == "23502" and a.row == 0, a
    assert good[0].read_answer() == Ack(1, 1)
    for c in good:
        assert c.read_answer() == Ack(2 if c is good[0] else 1, 5)
    assert count(pg, "evsplit") == 1 + 20
    assert sql(pg, "SELECT count(*) FROM evsplit WHERE k IN (7, 8)") == [["0"]]
    proc.wait_log(r"batches_split=[1-9]")
    for c in good + [bad]:
        c.close()
    assert proc.stop() == 0


def test_dead_letter_keeps_the_good_rows_of_a_flush(pg: PgServer, tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, batch={"dead_letter": "on"})
    make_table(pg, "evdl", "id int PRIMARY KEY, n int NOT NULL")
    sql(pg, f"GRANT CREATE ON SCHEMA public TO {pg.user}")
    sql(pg, "INSERT INTO evdl VALUES (3, 0)")
    c = IngestConnection(addr)
    other = IngestConnection(addr, client_name="other")
    c.open("evdl", "insert", ["id", "n"])
    other.open("evdl", "insert", ["id", "n"])
    # rows 2 (not an int), 4 (NULL into NOT NULL) and 5 (duplicate key 3) are rejected
    c.send_rows(b"1\t1\n2\tzwei\n")
    c.send_rows(b"10\t1\n11\t\\N\n3\t5\n12\t1\n")
    c.flush()
    other.send_rows(b"100\t1\n")
    other.flush()
    assert c.read_answer() == Ack(1, 3)  # three rows reached the table
    assert other.read_answer() == Ack(1, 1)
    assert sql(pg, "SELECT id FROM evdl ORDER BY id") == [["1"], ["3"], ["10"], ["12"], ["100"]]
    dead = sql(pg, "SELECT flush_row, sqlstate, row_text, message <> '' FROM evdl_dead_letter "
                   "ORDER BY flush_row")
    assert dead == [["2", "22P02", "2\tzwei", "t"], ["4", "23502", "11\t\\N", "t"],
                    ["5", "23505", "3\t5", "t"]]
    c.close()
    other.close()
    assert proc.stop() == 0


def stream_until_stopped(addr: str, table: str, cid: int, acked: list, outcome: dict) -> None:
    """Keeps a window of 4 flushes in flight until the proxy says it stops."""
    c = IngestConnection(addr, client_name=f"d{cid}", timeout=60)
    c.open(table, "insert", ["client", "seq", "payload"])
    sent: dict[int, list[int]] = {}
    seq = 0

    def take(answer) -> None:
        if isinstance(answer, Ack):
            acked.extend((cid, s) for s in sent[answer.flush_id])
        else:
            outcome.setdefault(f"flush_error_{cid}", answer)

    try:
        while True:
            rows = [(str(cid), str(seq + i), "x") for i in range(20)]
            seq += 20
            c.send_rows(rows_text(rows))
            sent[c.flush()] = [int(r[1]) for r in rows]
            if c.next_flush_id % 5 == 0:  # every 4 flushes, read their 4 answers
                for _ in range(4):
                    take(c.read_answer())
    except ProxyError as e:
        outcome[cid] = e.sqlstate
    except (OSError, ProtocolError) as e:
        # The proxy stopped reading us; its last words may still be in our buffer.
        try:
            while True:
                take(c.read_answer())
        except ProxyError as e2:
            outcome[cid] = e2.sqlstate
        except (OSError, ProtocolError):
            outcome[cid] = f"closed: {e!r}"


def test_sigterm_answers_every_client_and_loses_no_acked_row(pg: PgServer,
                                                            tmp_path: Path) -> None:
    proc, addr = start_proxy(pg, tmp_path, server={"shutdown_timeout_s": 30})
    make_table(pg, "evstop", "client int, seq int, payload text")
    acked: list = []
    outcome: dict = {}
    threads = [threading.Thread(target=stream_until_stopped,
                                args=(addr, "evstop", i, acked, outcome)) for i in range(50)]
    for t in threads:
        t.start()
    proc.wait_log(r"rows_committed=[1-9]\d{3,} ")  # streaming for real
    proc.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads)
    assert proc.proc.wait(60) == 0  # exits by itself once drained
    proc.stop()
    assert "event=drained" in proc.log
    # Every client was told: Error 57P01 after the answers to what it had flushed.
    assert {k: v for k, v in outcome.items() if isinstance(k, int)} == {i: "57P01"
                                                                        for i in range(50)}
    assert not [k for k in outcome if isinstance(k, str)]
    landed = {(int(a), int(b)) for a, b in sql(pg, "SELECT client, seq FROM evstop")}
    assert set(acked) <= landed
    assert len(landed) == count(pg, "evstop")  # nothing twice


def test_exit_now_under_load_frees_cleanly(pg: PgServer, tmp_path: Path) -> None:
    """A second SIGTERM while 30 clients stream, batches wait on a lock, and new sessions wait
    for the catalog (a table not yet looked up, no connection free): the sanitizer build
    exits without an
    AddressSanitizer or LeakSanitizer report (shutdown frees the coalescer, the catalog and
    the pool in every state), and no acknowledged row is missing."""
    proc, addr = start_proxy(pg, tmp_path, server={"shutdown_timeout_s": 30})
    make_table(pg, "evkill", "client int, seq int, payload text")
    make_table(pg, "evkill2", "client int, seq int, payload text")
    acked: list = []
    outcome: dict = {}
    threads = [threading.Thread(target=stream_until_stopped,
                                args=(addr, "evkill", i, acked, outcome)) for i in range(30)]
    for t in threads:
        t.start()
    proc.wait_log(r"rows_committed=[1-9]\d{3,} ")
    def late_client(i: int) -> None:
        try:
            stream_until_stopped(addr, "evkill2", 100 + i, [], outcome)
        except (OSError, ProtocolError, ProxyError) as e:  # refused or cut off at Open
            outcome[100 + i] = repr(e)

    late = [threading.Thread(target=late_client, args=(i,)) for i in range(10)]
    with TableLocked(pg, "evkill"):  # batches in flight, waiting on the lock
        for t in late:
            t.start()
        proc.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        rc = proc.stop(timeout=60)
    for t in threads + late:
        t.join(90)
    assert not any(t.is_alive() for t in threads + late)
    assert "Sanitizer" not in proc.log, proc.log[-4000:]
    assert rc == 1  # not a clean stop: batches and clients were left
    assert "action=exit_now" in proc.log
    landed = {(int(a), int(b)) for a, b in sql(pg, "SELECT client, seq FROM evkill")}
    assert set(acked) <= landed


def test_exit_status_says_whether_the_drain_completed(pg: PgServer, tmp_path: Path) -> None:
    """SIGTERM with nothing outstanding exits 0; with a flushed unit that cannot commit (its
    table locked) the drain times out and the proxy exits 1, so a supervisor can tell."""
    proc, addr = start_proxy(pg, tmp_path, server={"shutdown_timeout_s": 1})
    make_table(pg, "evexit", "id int")
    c = IngestConnection(addr, client_name="exit")
    c.open("evexit", "insert", ["id"])
    with TableLocked(pg, "evexit"):
        c.send_rows(b"1\n")
        c.flush()
        deadline = time.monotonic() + 30
        while sql(pg, "SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                      "relation = 'evexit'::regclass") != [["1"]]:
            assert time.monotonic() < deadline, "the batch never waited on the lock"
            time.sleep(0.05)
        assert proc.stop(timeout=30) == 1
    assert "event=drain_timeout" in proc.log
    (tmp_path / "clean").mkdir()
    proc2, _ = start_proxy(pg, tmp_path / "clean")
    assert proc2.stop(timeout=30) == 0
    assert "event=drained" in proc2.log


def test_linger_gathers_units_until_max_rows(pg: PgServer, tmp_path: Path) -> None:
    """[batch] max_delay_ms holds a batch that is not full: 9 units of 10 rows wait, the 10th
    reaches max_rows = 100 and all go in one transaction; a lone unit goes when its linger ends."""
    import promtext

    proc, addr = start_proxy(pg, tmp_path, batch={"max_delay_ms": 2000, "max_rows": 100})
    make_table(pg, "evlinger", "id int PRIMARY KEY")
    c = IngestConnection(addr, client_name="linger")
    c.open("evlinger", "insert", ["id"])

    def metrics():
        return promtext.parse(proc.admin_get("/metrics")[1])

    for u in range(9):
        c.send_rows(rows_text([(str(u * 10 + i),) for i in range(10)]))
        c.flush()
    deadline = time.monotonic() + 30
    while promtext.value(m := metrics(), "lbp_queued_units") < 9:
        assert time.monotonic() < deadline, "the units did not queue"
        time.sleep(0.02)
    assert promtext.total(m, "lbp_batches_total") == 0 and count(pg, "evlinger") == 0
    c.send_rows(rows_text([(str(90 + i),) for i in range(10)]))
    c.flush()
    assert [c.read_answer() for _ in range(10)] == [Ack(i + 1, 10) for i in range(10)]
    m = metrics()
    assert promtext.total(m, "lbp_batches_total") == 1
    assert promtext.value(m, "lbp_batch_rows_sum") == 100
    # Alone and below max_rows: it goes when its linger ends.
    c.send_rows(b"1000\n")
    c.flush()
    assert c.read_answer() == Ack(11, 1)
    assert promtext.total(metrics(), "lbp_batches_total") == 2
    assert count(pg, "evlinger") == 101
    c.close()
    assert proc.stop() == 0


def test_retry_without_a_server_fails_after_acquire_timeout(pg: PgServer, pg_admin,
                                                            tmp_path: Path) -> None:
    """An upsert batch loses its connection while it waits on a lock and is retried; with no
    login possible (the role's connection limit is 0), its client gets 08001 after
    acquire_timeout_ms instead of waiting indefinitely. Once logins work, the rows commit."""
    proc, addr = start_proxy(pg, tmp_path, batch={"acquire_timeout_ms": 2000},
                             pool={"min_size": 1, "max_size": 1, "reconnect_base_ms": 50,
                                   "reconnect_max_ms": 200})
    make_table(pg, "evretry", "id int PRIMARY KEY, v text")
    c = IngestConnection(addr, client_name="retry")
    c.open("evretry", "upsert", ["id", "v"], keys=["id"])
    try:
        with TableLocked(pg, "evretry"):
            c.send_rows(b"1\ta\n2\tb\n")
            c.flush()
            deadline = time.monotonic() + 30
            while not (waiting := sql(pg, "SELECT pid FROM pg_stat_activity WHERE "
                                          "application_name = 'lakebase-proxy' AND "
                                          "wait_event_type = 'Lock'")):
                assert time.monotonic() < deadline, "the batch never waited on the lock"
                time.sleep(0.05)
            sql(pg, f"ALTER ROLE {pg.user} CONNECTION LIMIT 0")
            sql(pg, f"SELECT pg_terminate_backend({waiting[0][0]})")
            answer = c.read_answer()
            assert isinstance(answer, FlushError) and answer.sqlstate == "08001", answer
            assert "no other came within 2000 ms" in answer.message
        sql(pg, f"ALTER ROLE {pg.user} CONNECTION LIMIT -1")
        c.send_rows(b"1\ta\n2\tb\n")
        c.flush()
        assert c.read_answer() == Ack(2, 2)
        assert sql(pg, "SELECT id, v FROM evretry ORDER BY id") == [["1", "a"], ["2", "b"]]
        c.close()
        assert "reason=reacquire_timeout" in proc.log
        assert proc.stop() == 0, proc.log
    finally:
        sql(pg, f"ALTER ROLE {pg.user} CONNECTION LIMIT -1")
