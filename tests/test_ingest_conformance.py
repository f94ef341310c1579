"""What a second implementation of docs/ingest-protocol.md found (issue 13), byte for byte
against the running proxy: each case sends raw frames and asserts what the client was told."""

from __future__ import annotations

import signal
import socket
import struct
import time
from pathlib import Path

import pytest
from pgharness import PgServer
from proxyproc import ProxyProcess, start_proxy

MAX_FRAME = 1 << 20


def frame(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def cstr(b: bytes) -> bytes:
    return b + b"\0"


def str_list(items: list[bytes]) -> bytes:
    return struct.pack("!H", len(items)) + b"".join(cstr(i) for i in items)


HELLO = frame(b"H", struct.pack("!HH", 1, 0) + cstr(b"conformance") + cstr(b""))


def open_body(table: bytes, cols: list[bytes], mode: bytes = b"i") -> bytes:
    return (cstr(b"") + cstr(table) + mode + str_list(cols) + str_list([]) + cstr(b"")
            + str_list([]))


class Raw:
    """One raw connection: send bytes, read frames until the proxy closes."""

    def __init__(self, addr: str) -> None:
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> tuple[bytes, bytes] | None:
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!I", self.buf[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        n = 1 + struct.unpack("!I", self.buf[1:5])[0]
        msg, self.buf = self.buf[:n], self.buf[n:]
        return msg[:1], msg[5:]

    def close(self) -> None:
        self.sock.close()


def error_of(body: bytes) -> tuple[str, bytes]:
    state, message = body.split(b"\0")[:2]
    return state.decode(), message


@pytest.fixture(scope="module")
def proxy(pg: PgServer, tmp_path_factory: pytest.TempPathFactory):
    proc, addr = start_proxy(pg, tmp_path_factory.mktemp("conf"),
                             ingest={"max_frame_bytes": MAX_FRAME})
    yield proc, addr
    proc.stop()


def hello(addr: str) -> Raw:
    c = Raw(addr)
    c.send(HELLO)
    kind, _ = c.read()
    assert kind == b"h"
    return c


@pytest.mark.parametrize("ncols", [1601, 65535])
def test_open_with_too_many_columns_is_22023(proxy: tuple[ProxyProcess, str],
                                            ncols: int) -> None:
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"t", [b"c%d" % i for i in range(ncols)])))
    kind, body = c.read()
    assert kind == b"E"
    state, message = error_of(body)
    assert state == "22023", message
    assert b"1600" in message
    c.close()


@pytest.mark.parametrize("name,shown", [
    (b"up\xff", b'"up\\xff"'),
    (b"a\x01b", b'"a\\x01b"'),
    (b"del\x7f", b'"del\\x7f"'),
])
def test_echoed_names_are_valid_utf8(proxy: tuple[ProxyProcess, str], name: bytes,
                                     shown: bytes) -> None:
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(name, [b"id"])))
    kind, body = c.read()
    assert kind == b"E"
    state, message = error_of(body)
    assert state == "42602"
    message.decode("utf-8")  # raises if not UTF-8
    assert shown in message, message
    assert not any(b < 0x20 or b == 0x7f for b in message), message
    c.close()


# ---- the gaps the spec now closes (item 8), as documented ----


def test_open_rows_and_flush_may_follow_hello_without_waiting(
        proxy: tuple[ProxyProcess, str], pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS conf_pipe; CREATE TABLE conf_pipe (id int); "
                 f"GRANT ALL ON conf_pipe TO {pg.user}")
    c = Raw(proxy[1])
    c.send(HELLO + frame(b"O", open_body(b"conf_pipe", [b"id"])) + frame(b"D", b"1\n2\n")
           + frame(b"F", struct.pack("!Q", 9)) + frame(b"X", b""))
    assert [c.read()[0] for _ in range(4)] == [b"h", b"o", b"a", b"c"]
    assert pg.admin_sql("SELECT count(*) FROM conf_pipe") == [["2"]]
    c.close()


def test_close_where_open_is_due_is_08P01(proxy: tuple[ProxyProcess, str]) -> None:
    c = hello(proxy[1])
    c.send(frame(b"X", b""))
    kind, body = c.read()
    assert kind == b"E" and error_of(body)[0] == "08P01"
    assert c.read() is None
    c.close()


def test_a_token_is_ignored_when_none_is_configured(proxy: tuple[ProxyProcess, str]) -> None:
    c = Raw(proxy[1])
    c.send(frame(b"H", struct.pack("!HH", 1, 0) + cstr(b"tok") + cstr(b"anything")))
    assert c.read()[0] == b"h"
    c.close()


def test_an_empty_rows_body_fails_its_unit_22P04(proxy: tuple[ProxyProcess, str],
                                                 pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS conf_empty; CREATE TABLE conf_empty (id int); "
                 f"GRANT ALL ON conf_empty TO {pg.user}")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_empty", [b"id"])) + frame(b"D", b"")
           + frame(b"F", struct.pack("!Q", 1)) + frame(b"D", b"5\n")
           + frame(b"F", struct.pack("!Q", 2)))
    assert c.read()[0] == b"o"
    kind, body = c.read()
    assert kind == b"e" and body[8:13] == b"22P04"
    kind, body = c.read()
    assert kind == b"a" and struct.unpack("!QQ", body) == (2, 1)
    assert pg.admin_sql("SELECT id FROM conf_empty") == [["5"]]
    c.close()


def test_upsert_ack_counts_rows_sent_including_those_that_lost_on_version(
        proxy: tuple[ProxyProcess, str], pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS conf_up; "
                 "CREATE TABLE conf_up (id int PRIMARY KEY, v int, s text); "
                 "INSERT INTO conf_up VALUES (1, 5, 'stored'); "
                 f"GRANT ALL ON conf_up TO {pg.user}")
    c = hello(proxy[1])
    body = (cstr(b"") + cstr(b"conf_up") + b"u" + str_list([b"id", b"v", b"s"])
            + str_list([b"id"]) + cstr(b"v") + str_list([]))
    c.send(frame(b"O", body) + frame(b"D", b"1\t3\told\n2\t1\tnew\n2\t2\tnewer\n")
           + frame(b"F", struct.pack("!Q", 1)))
    assert c.read()[0] == b"o"
    kind, body = c.read()
    assert kind == b"a" and struct.unpack("!QQ", body) == (1, 3)
    assert pg.admin_sql("SELECT id, v, s FROM conf_up ORDER BY id") == [
        ["1", "5", "stored"], ["2", "2", "newer"]]
    c.close()


# ---- defects (items 1, 3, 5) ----


def make(pg: PgServer, table: str) -> None:
    pg.admin_sql(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int); "
                 f"GRANT ALL ON {table} TO {pg.user}")


def test_units_flushed_before_a_fatal_error_are_answered_before_it(
        proxy: tuple[ProxyProcess, str], pg: PgServer) -> None:
    make(pg, "conf_fatal")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_fatal", [b"id"])))
    assert c.read()[0] == b"o"
    units = b"".join(frame(b"D", b"%d\n" % i) + frame(b"F", struct.pack("!Q", i))
                     for i in range(1, 6))
    # Five units and an unknown message type in one write; then rows nobody flushed.
    c.send(units + frame(b"Z", b"") + frame(b"D", b"99\n"))
    answers = []
    while (m := c.read()) is not None:
        answers.append(m)
    kinds = [k for k, _ in answers]
    assert kinds == [b"a"] * 5 + [b"E"], answers
    assert [struct.unpack("!QQ", b) for _, b in answers[:5]] == [(i, 1) for i in range(1, 6)]
    assert error_of(answers[5][1])[0] == "08P01"
    assert pg.admin_sql("SELECT id FROM conf_fatal ORDER BY id") == [[str(i)] for i in range(1, 6)]
    c.close()


@pytest.mark.parametrize("over", [1, 4])
def test_a_frame_over_max_frame_bytes_is_refused(proxy: tuple[ProxyProcess, str],
                                                 pg: PgServer, over: int) -> None:
    make(pg, "conf_big")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_big", [b"id"])))
    assert c.read()[0] == b"o"
    # length field = MAX_FRAME + over: body of digits and newlines, every row valid.
    body_len = MAX_FRAME + over - 4
    rows = b"1\n" * (body_len // 2) + b"22\n"[:body_len % 2]
    rows = b"1\n" * ((body_len - 3) // 2) + b"22\n" if body_len % 2 else rows
    assert len(rows) == body_len
    c.send(frame(b"D", rows) + frame(b"F", struct.pack("!Q", 1)))
    kind, body = c.read()
    assert kind == b"E" and error_of(body)[0] == "08P01", body
    c.close()
    assert pg.admin_sql("SELECT count(*) FROM conf_big") == [["0"]]


def test_a_frame_of_exactly_max_frame_bytes_is_taken(proxy: tuple[ProxyProcess, str],
                                                     pg: PgServer) -> None:
    make(pg, "conf_exact")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_exact", [b"id"])))
    assert c.read()[0] == b"o"
    rows = b"1\n" * ((MAX_FRAME - 4) // 2)
    assert len(rows) + 4 == MAX_FRAME
    c.send(frame(b"D", rows) + frame(b"F", struct.pack("!Q", 1)))
    kind, body = c.read()
    assert kind == b"a" and struct.unpack("!QQ", body) == (1, len(rows) // 2)
    c.close()


def test_close_with_a_body_is_refused(proxy: tuple[ProxyProcess, str], pg: PgServer) -> None:
    make(pg, "conf_close")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_close", [b"id"])))
    assert c.read()[0] == b"o"
    c.send(frame(b"X", b"junk"))
    kind, body = c.read()
    assert kind == b"E" and error_of(body)[0] == "08P01"
    assert b"Close" in error_of(body)[1]
    c.close()


def test_the_error_survives_input_the_proxy_did_not_read(proxy: tuple[ProxyProcess, str],
                                                         pg: PgServer) -> None:
    """A protocol error followed by 4 MiB the client already sent: the proxy must not close
    with that input unread (the kernel would answer with a reset, failing the client's send
    and destroying the Error); it shuts its side and drops the rest until the client closes."""
    make(pg, "conf_linger")
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"conf_linger", [b"id"])))
    assert c.read()[0] == b"o"
    c.send(frame(b"?", b"x") + b"\0" * (4 * 1024 * 1024))  # no reset while sending
    kind, body = c.read()
    assert kind == b"E" and error_of(body)[0] == "08P01"
    assert c.read() is None  # then an orderly end of the stream
    c.close()


# ---- item 13: a PostgreSQL client at the ingest port ----


@pytest.mark.parametrize("sslmode,told", [
    ("disable", "lakebase-proxy ingest port"),
    ("prefer", "lakebase-proxy ingest port"),
    # Encryption is refused ("N"); libpq shows no error sent during that exchange.
    ("require", "does not support SSL"),
])
def test_a_postgresql_client_is_told_where_it_is(proxy: tuple[ProxyProcess, str],
                                                 pg: PgServer, sslmode: str, told: str) -> None:
    import subprocess

    host, port = proxy[1].rsplit(":", 1)
    res = subprocess.run(
        [f"{pg.pgbin}/psql", "-X", "-w", "-c", "SELECT 1",
         f"host={host} port={port} user=x dbname=y sslmode={sslmode} connect_timeout=15"],
        capture_output=True, text=True, timeout=90)
    assert res.returncode != 0
    assert told in res.stderr, res.stderr
    if sslmode == "disable":  # this proxy has no [frontend] listen
        assert "its PostgreSQL front door is off ([frontend] listen)" in res.stderr


# ---- item 11: slowloris on the ingest port ----


class Drip:
    """Sends `data` one byte every `period` seconds until the proxy hangs up."""

    def __init__(self, addr: str, data: bytes, period: float) -> None:
        import threading

        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.data, self.period = data, period
        self.answer = b""
        self.cut = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for i in range(len(self.data)):
            try:
                self.sock.send(self.data[i:i + 1])
                self.sock.settimeout(self.period)
                chunk = self.sock.recv(4096)
                self.answer += chunk
                if not chunk:
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        self.cut.set()


def test_slow_handshakes_do_not_hold_the_slots(pg: PgServer, tmp_path: Path) -> None:
    make(pg, "conf_slow")
    proc, addr = start_proxy(pg, tmp_path, ingest={"max_clients": 3,
                                                   "handshake_timeout_ms": 1500})
    try:
        drips = [Drip(addr, HELLO * 50, 0.2) for _ in range(3)]
        for d in drips:  # a byte every 0.2 s would last 200 s
            assert d.cut.wait(30), "a dripping handshake kept its slot"
            assert b"08006" in d.answer
        c = hello(addr)
        c.send(frame(b"O", open_body(b"conf_slow", [b"id"])) + frame(b"D", b"1\n")
               + frame(b"F", struct.pack("!Q", 1)))
        assert [c.read()[0] for _ in range(2)] == [b"o", b"a"]
        c.close()
    finally:
        proc.stop()


def test_idle_counts_whole_messages_not_bytes(pg: PgServer, tmp_path: Path) -> None:
    make(pg, "conf_drip")
    proc, addr = start_proxy(pg, tmp_path, ingest={"idle_timeout_s": 2})
    try:
        c = hello(addr)
        c.send(frame(b"O", open_body(b"conf_drip", [b"id"])))
        assert c.read()[0] == b"o"
        # A Rows frame that never ends, a byte every 0.3 s (it would take minutes).
        big = frame(b"D", b"1\n" * 500)
        c.sock.settimeout(0.3)
        cut = False
        for i in range(100):
            try:
                c.sock.send(big[i:i + 1])
                data = c.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                cut = True
                break
            c.buf += data
            if not data:
                cut = True
                break
        assert cut, "a dripping frame kept the connection from being idle"
        assert b"08006" in c.buf
        c.close()
    finally:
        proc.stop()


# ---- item 7: an upsert row with a NULL key is named by its number ----


def test_upsert_null_key_names_its_row(proxy: tuple[ProxyProcess, str], pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS conf_nullkey; "
                 "CREATE TABLE conf_nullkey (a int, b int, v text, PRIMARY KEY (a, b)); "
                 f"GRANT ALL ON conf_nullkey TO {pg.user}")
    c = hello(proxy[1])
    body = (cstr(b"") + cstr(b"conf_nullkey") + b"u" + str_list([b"a", b"b", b"v"])
            + str_list([b"a", b"b"]) + cstr(b"") + str_list([]))
    # Unit 1: rows 1-2 in one message, the NULL key in row 4 (second message).
    c.send(frame(b"O", body) + frame(b"D", b"1\t1\tx\n1\t2\t\\N\n")
           + frame(b"D", b"2\t1\ty\n2\t\\N\tz\n") + frame(b"F", struct.pack("!Q", 1))
           + frame(b"D", b"3\t3\tw\n") + frame(b"F", struct.pack("!Q", 2)))
    assert c.read()[0] == b"o"
    kind, body = c.read()
    assert kind == b"e", body
    fid, rest = struct.unpack("!Q", body[:8])[0], body[8:]
    state, message, detail, tail = rest.split(b"\0", 3)
    assert (fid, state.decode()) == (1, "23502"), message
    assert struct.unpack("!Q", tail[:8])[0] == 4, message
    assert b'"b"' in message
    kind, body = c.read()
    assert kind == b"a" and struct.unpack("!QQ", body) == (2, 1)
    assert pg.admin_sql("SELECT a, b, v FROM conf_nullkey") == [["3", "3", "w"]]
    c.close()


# ---- item 15: batches the server refuses do not cost a login each ----


def test_rejected_batches_keep_their_connection(pg: PgServer, tmp_path: Path) -> None:
    import promtext

    pg.admin_sql("DROP TABLE IF EXISTS conf_denied; CREATE TABLE conf_denied (id int); "
                 f"GRANT SELECT ON conf_denied TO {pg.user}")
    # Back-off off: 30 refusals in a row would otherwise wait for it (tested below).
    proc, addr = start_proxy(pg, tmp_path, pool={"min_size": 2, "max_size": 2},
                             batch={"failure_backoff_ms": 0})

    def logins() -> float:
        status, body, _ = proc.admin_get("/metrics")
        assert status == 200
        return promtext.value(promtext.parse(body), "lbp_upstream_logins_total")

    try:
        c = hello(addr)
        c.send(frame(b"O", open_body(b"conf_denied", [b"id"])))
        assert c.read()[0] == b"o"
        before = logins()
        for i in range(1, 31):
            c.send(frame(b"D", b"%d\n" % i) + frame(b"F", struct.pack("!Q", i)))
            kind, body = c.read()
            assert kind == b"e" and body[8:13] == b"42501", body
        # 30 refused batches (each rolled back), not 30 new TLS + SCRAM logins.
        assert logins() - before <= 1
        c.close()
    finally:
        proc.stop()


# ---- item 15: a target whose units keep failing the same way backs off ----


def flush_error_of(body: bytes) -> tuple[int, str]:
    """(flush id, SQLSTATE) of a FlushError body."""
    return struct.unpack("!Q", body[:8])[0], body[8:].split(b"\0", 1)[0].decode()


def metrics_of(proc: ProxyProcess) -> dict:
    import promtext

    status, body, _ = proc.admin_get("/metrics")
    assert status == 200
    return promtext.parse(body)


def wait_metric(proc: ProxyProcess, name: str, want: float, **labels: str) -> dict:
    """Polls /metrics until name{labels} == want (the proxy has seen what the test sent)."""
    import promtext

    deadline = time.monotonic() + 30
    while True:
        m = metrics_of(proc)
        if promtext.value(m, name, **labels) == want or time.monotonic() > deadline:
            assert promtext.value(m, name, **labels) == want, (name, labels)
            return m
        time.sleep(0.05)


def open_check_tables(pg: PgServer) -> None:
    # Every row breaks conf_bad's CHECK: each flush fails with 23514 naming row 1.
    pg.admin_sql("DROP TABLE IF EXISTS conf_bad, conf_good; "
                 "CREATE TABLE conf_bad (id int CHECK (id < 0)); "
                 "CREATE TABLE conf_good (id int); "
                 f"GRANT ALL ON conf_bad, conf_good TO {pg.user}")


def open_bad(addr: str) -> Raw:
    c = hello(addr)
    c.send(frame(b"O", open_body(b"conf_bad", [b"id"])))
    assert c.read()[0] == b"o"
    return c


def refused(c: Raw, i: int) -> None:
    """Flush i of one row is refused with 23514."""
    c.send(frame(b"D", b"%d\n" % i) + frame(b"F", struct.pack("!Q", i)))
    kind, body = c.read()
    assert kind == b"e" and flush_error_of(body) == (i, "23514"), body


def fail_twice(addr: str) -> Raw:
    """A client on conf_bad whose flushes 1 and 2 were refused (23514), one after the other."""
    c = open_bad(addr)
    refused(c, 1)
    refused(c, 2)
    return c


def pipeline_retries(c: Raw, n: int) -> None:
    """Flushes 3 .. n+2, each a retry of the same refused row, in one write."""
    c.send(b"".join(frame(b"D", b"%d\n" % i) + frame(b"F", struct.pack("!Q", i))
                    for i in range(3, n + 3)))


def test_repeated_identical_failures_back_off_their_target_only(pg: PgServer,
                                                               tmp_path: Path) -> None:
    """Two refusals with the same SQLSTATE put conf_bad in back-off (60 s, longer than the
    test): its next 20 flushes wait in the queue, not one batch more goes to the server,
    while a client of another table commits every flush meanwhile; a drain sends the 20
    at once and each is answered."""
    import promtext

    open_check_tables(pg)
    proc, addr = start_proxy(pg, tmp_path, batch={"failure_backoff_ms": 60000,
                                                  "failure_backoff_max_ms": 60000},
                             server={"shutdown_timeout_s": 50})
    try:
        # The first refusal on a connection that then goes: the streak outlives it.
        first = open_bad(addr)
        refused(first, 1)
        first.close()
        wait_metric(proc, "lbp_clients", 0)
        bad = open_bad(addr)
        refused(bad, 2)
        proc.wait_log(r'event=target_backoff table="conf_bad" mode=insert sqlstate="23514" '
                      r"streak=2 delay_ms=60000")
        m = metrics_of(proc)
        batches = promtext.value(m, "lbp_batches_total", table="conf_bad", mode="insert")
        assert batches == 2
        assert promtext.value(m, "lbp_target_backoffs_total", table="conf_bad",
                              mode="insert") == 1
        pipeline_retries(bad, 20)
        wait_metric(proc, "lbp_queued_units", 20)

        good = hello(addr)
        good.send(frame(b"O", open_body(b"conf_good", [b"id"])))
        assert good.read()[0] == b"o"
        for i in range(1, 31):
            good.send(frame(b"D", b"%d\n%d\n" % (2 * i, 2 * i + 1))
                      + frame(b"F", struct.pack("!Q", i)))
            kind, body = good.read()
            assert kind == b"a" and struct.unpack("!QQ", body) == (i, 2), body
        assert pg.admin_sql("SELECT count(*), count(DISTINCT id) FROM conf_good") == [
            ["60", "60"]]

        m = metrics_of(proc)
        # 22 flushes of conf_bad, 2 batches: the 20 retries are all still queued.
        assert promtext.value(m, "lbp_queued_units") == 20
        assert promtext.value(m, "lbp_batches_total", table="conf_bad", mode="insert") == 2
        assert promtext.value(m, "lbp_flushes_failed_total", table="conf_bad",
                              mode="insert") == 2
        assert promtext.value(m, "lbp_target_backoffs_total", table="conf_good",
                              mode="insert") == 0
        assert "conf_good" not in "\n".join(
            line for line in proc.lines if "event=target_backoff" in line)
        bad.sock.settimeout(0)
        with pytest.raises(BlockingIOError):
            bad.sock.recv(1)  # not one answer while backing off
        bad.sock.settimeout(30)

        # A drain does not wait for the back-off: all 20 go now, each answered.
        proc.proc.send_signal(signal.SIGTERM)
        for i in range(3, 23):
            kind, body = bad.read()
            assert kind == b"e" and flush_error_of(body) == (i, "23514"), body
        kind, body = bad.read()
        assert kind == b"E" and error_of(body)[0] == "57P01"
        assert proc.proc.wait(30) == 0  # the drain ends by itself (a 2nd SIGTERM would not)
        assert pg.admin_sql("SELECT count(*) FROM conf_bad") == [["0"]]
        bad.close()
        good.close()
    finally:
        proc.stop()


def test_failure_backoff_zero_sends_every_retry_at_once(pg: PgServer, tmp_path: Path) -> None:
    """failure_backoff_ms = 0: the same refused retries go to the server as they come, and
    every one is answered without a drain."""
    import promtext

    open_check_tables(pg)
    proc, addr = start_proxy(pg, tmp_path, batch={"failure_backoff_ms": 0,
                                                  "failure_backoff_max_ms": 60000})
    try:
        bad = fail_twice(addr)
        pipeline_retries(bad, 20)
        for i in range(3, 23):
            kind, body = bad.read()
            assert kind == b"e" and flush_error_of(body) == (i, "23514"), body
        m = metrics_of(proc)
        # Each refused flush is at least one transaction of its own.
        assert promtext.value(m, "lbp_flushes_failed_total", table="conf_bad",
                              mode="insert") == 22
        assert promtext.value(m, "lbp_target_backoffs_total", table="conf_bad",
                              mode="insert") == 0
        assert "event=target_backoff" not in proc.log
        bad.close()
    finally:
        proc.stop()


def test_a_commit_ends_the_streak(pg: PgServer, tmp_path: Path) -> None:
    """After a commit the target's streak starts again from nothing: two more refusals make
    a back-off of streak 2 again, not a longer one. A reload that turns the back-off off
    lets what waits go at once."""
    import promtext

    pg.admin_sql("DROP TABLE IF EXISTS conf_some; "
                 "CREATE TABLE conf_some (id int CHECK (id < 100)); "
                 f"GRANT ALL ON conf_some TO {pg.user}")
    proc, addr = start_proxy(pg, tmp_path, batch={"failure_backoff_ms": 60000,
                                                  "failure_backoff_max_ms": 60000})
    assert proc.config is not None
    ini = proc.config.read_text()

    def reload(base: int) -> None:
        mark = proc.mark()
        proc.config.write_text(ini.replace("failure_backoff_ms = 60000",
                                           f"failure_backoff_ms = {base}"))
        proc.proc.send_signal(signal.SIGHUP)
        proc.wait_log(r'event=reload changed="batch.failure_backoff_ms"', since=mark)

    def flush(i: int, row: int) -> None:
        c.send(frame(b"D", b"%d\n" % row) + frame(b"F", struct.pack("!Q", i)))

    def acked(i: int) -> None:
        kind, body = c.read()
        assert kind == b"a" and struct.unpack("!QQ", body) == (i, 1), body

    def refused_row(i: int, row: int) -> None:
        flush(i, row)
        kind, body = c.read()
        assert kind == b"e" and flush_error_of(body) == (i, "23514"), body

    backoff = r'event=target_backoff table="conf_some" mode=insert sqlstate="23514" streak=2 '
    try:
        c = hello(addr)
        c.send(frame(b"O", open_body(b"conf_some", [b"id"])))
        assert c.read()[0] == b"o"
        refused_row(1, 101)
        refused_row(2, 102)
        proc.wait_log(backoff + "delay_ms=60000")
        flush(3, 1)
        wait_metric(proc, "lbp_queued_units", 1)
        reload(0)  # the back-off in effect ends with it
        acked(3)
        proc.wait_log(r'event=target_backoff_end table="conf_some" mode=insert streak=2')
        reload(60000)
        mark = proc.mark()
        refused_row(4, 104)  # streak 1 again: answered, no back-off
        refused_row(5, 105)
        proc.wait_log(backoff + "delay_ms=60000", since=mark)
        assert promtext.value(metrics_of(proc), "lbp_target_backoffs_total",
                              table="conf_some", mode="insert") == 2
        flush(6, 2)
        wait_metric(proc, "lbp_queued_units", 1)
        proc.proc.send_signal(signal.SIGTERM)
        acked(6)
        assert proc.proc.wait(30) == 0
        assert pg.admin_sql("SELECT id FROM conf_some ORDER BY id") == [["1"], ["2"]]
        c.close()
    finally:
        proc.stop()
