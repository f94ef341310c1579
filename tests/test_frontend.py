"""The PostgreSQL front door: real clients (psql, psycopg, pgbench) through the proxy to a
real PostgreSQL with TLS + SCRAM-SHA-256, asserting on what the clients were told and on
what landed in the database."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
import promtext  # noqa: E402
from pgharness import PgServer  # noqa: E402
from proxyproc import (SMALL_ASAN_QUARANTINE, ProxyProcess, free_port, proxy_binary,  # noqa: E402
                       proxy_sections, write_ini)

APP_USER = "app"
APP_PASSWORD = "app-Secret-1"
PLAIN_USER = "plainuser"
PLAIN_PASSWORD = "plain pass\"word"


def other_port(*taken: int) -> int:
    """A free port that is none of taken (the kernel may hand one out twice)."""
    while True:
        port = free_port()
        if port not in taken:
            return port


def userlist_line(user: str, password: str) -> str:
    """The documented way: lakebase-proxy --userlist-line USER, password on stdin."""
    out = subprocess.run([str(proxy_binary()), "--userlist-line", user], input=password + "\n",
                         capture_output=True, text=True, check=True)
    return out.stdout


class FrontDoor:
    """A proxy with [frontend] on, in front of the harness server."""

    def __init__(self, pg: PgServer, tmp_path: Path, env: dict[str, str] | None = None,
                 **frontend: object) -> None:
        self.pg = pg
        self.tmp = tmp_path
        self.userlist = tmp_path / "userlist.txt"
        self.userlist.write_text(userlist_line(APP_USER, APP_PASSWORD)
                                 + f'"{PLAIN_USER}" "{PLAIN_PASSWORD.replace(chr(34), 2 * chr(34))}"\n')
        # The harness server's certificate (for 127.0.0.1) serves the front door too.
        shutil.copy(pg.server_cert, tmp_path / "fe.crt")
        shutil.copy(pg.server_key, tmp_path / "fe.key")
        os.chmod(tmp_path / "fe.key", 0o600)
        self.port = free_port()
        fe: dict[str, object] = {
            "listen": f"127.0.0.1:{self.port}", "auth_file": self.userlist,
            "tls_cert_file": tmp_path / "fe.crt", "tls_key_file": tmp_path / "fe.key",
        }
        fe.update(frontend)
        pool = {"min_size": 1, "max_size": 2}
        self.ingest_port = other_port(self.port)
        sections = proxy_sections(pg, self.ingest_port, pool=pool, frontend=fe)
        self.ini = write_ini(tmp_path / f"fe-{self.port}.ini", sections)
        self.start(env)

    def start(self, env: dict[str, str] | None = None) -> None:
        admin = other_port(self.port)
        self.proxy = ProxyProcess(self.ini, {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": self.pg.password,
                                             "LAKEBASE_PROXY_ADMIN_LISTEN": f"127.0.0.1:{admin}",
                                             **(env or {})})
        # every listener is up once the loop starts
        self.proxy.wait_log(r"event=start version")

    def dsn(self, user: str = APP_USER, password: str = APP_PASSWORD, **kw: object) -> str:
        params: dict[str, object] = {
            "host": "127.0.0.1", "port": self.port, "dbname": self.pg.dbname, "user": user,
            "password": password, "sslmode": "verify-full", "sslrootcert": self.pg.ca_file,
            "connect_timeout": 20}
        params.update(kw)
        return " ".join(f"{k}='{v}'" for k, v in params.items())

    def connect(self, **kw: object) -> psycopg.Connection:
        autocommit = bool(kw.pop("autocommit", True))
        try:
            return psycopg.connect(self.dsn(**kw), autocommit=autocommit)
        except psycopg.OperationalError:
            if self.proxy.proc.poll() is not None:  # say why, not just "refused"
                raise AssertionError(f"the proxy exited ({self.proxy.proc.returncode}):\n"
                                     + self.proxy.log[-3000:])
            raise

    def psql(self, sql: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["psql", self.dsn(**kw), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                               "-c", sql], capture_output=True, text=True, timeout=60)

    def stop(self) -> int:
        return self.proxy.stop()


@pytest.fixture
def front(pg: PgServer, tmp_path: Path) -> Iterator[FrontDoor]:
    f = FrontDoor(pg, tmp_path)
    yield f
    f.stop()


def backend_pids(pg: PgServer, app: str = "lakebase-proxy") -> list[str]:
    return [r[0] for r in pg.admin_sql(
        f"SELECT pid FROM pg_stat_activity WHERE application_name = '{app}'")]


# ---- login ----

def test_psql_logs_in_with_scram_over_tls_and_runs_queries(front: FrontDoor) -> None:
    r = front.psql("SELECT current_user, 6 * 7, current_setting('application_name')",
                   application_name="my-psql")
    assert r.returncode == 0, r.stderr
    # The server's role is the proxy's; the client's application_name was carried over.
    assert r.stdout.strip() == f"{front.pg.user}|42|my-psql"
    r = front.psql("SELECT 1", user=PLAIN_USER, password=PLAIN_PASSWORD)
    assert r.returncode == 0, r.stderr


def test_a_postgresql_client_at_the_ingest_port_is_sent_to_the_front_door(
        front: FrontDoor) -> None:
    res = subprocess.run(
        ["psql", "-X", "-w", "-c", "SELECT 1",
         f"host=127.0.0.1 port={front.ingest_port} user=x dbname=y sslmode=disable "
         "connect_timeout=15"], capture_output=True, text=True, timeout=90)
    assert res.returncode != 0
    assert f"connect to its front door at 127.0.0.1:{front.port}" in res.stderr, res.stderr


def test_login_failures_tell_the_client_why(front: FrontDoor) -> None:
    wrong = front.psql("SELECT 1", password="nope")
    unknown = front.psql("SELECT 1", user="ghost", password="nope")
    assert wrong.returncode != 0 and unknown.returncode != 0
    assert 'password authentication failed for user "app"' in wrong.stderr
    # An unknown user goes through the same exchange and gets the same answer.
    assert 'password authentication failed for user "ghost"' in unknown.stderr
    nodb = front.psql("SELECT 1", dbname="no_such_db")
    assert 'database "no_such_db" does not exist' in nodb.stderr
    plain = front.psql("SELECT 1", sslmode="disable")
    assert "TLS is required" in plain.stderr
    # libpq keeps no SQLSTATE of a failed login: the proxy's log says what it sent.
    for state in ("28P01", "3D000", "28000"):
        front.proxy.wait_log(rf"event=client_error sqlstate={state} ")


def raw(front: FrontDoor, data: bytes, read: int = 1) -> bytes:
    """Sends data in one write and returns what comes back (until EOF or `read` bytes)."""
    import socket

    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while len(out) < read:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out


def startup_packet(code: int, body: bytes = b"") -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + code.to_bytes(4, "big") + body


def test_startup_requests_answered_as_postgresql_does(front: FrontDoor) -> None:
    ssl_request = startup_packet(80877103)
    gss_request = startup_packet(80877104)
    assert raw(front, ssl_request) == b"S"
    assert raw(front, gss_request) == b"N"
    # Plaintext after the SSLRequest, before the TLS handshake: refused, no 'S'
    # (CVE-2021-23222, server side).
    assert raw(front, ssl_request + b"Q\x00\x00\x00\x09SELECT\x00", read=1) == b""
    front.proxy.wait_log(r"sqlstate=08P01 error=\"unencrypted data after SSLRequest\"")
    # Protocol 3.2 and an option: told 3.0 and the option back, then (plaintext here) 28000.
    body = b"user\x00app\x00_pq_.x\x00y\x00\x00"
    out = raw(front, startup_packet(3 << 16 | 2, body), read=4096)
    assert out[:1] == b"v"
    vlen = int.from_bytes(out[1:5], "big")
    assert out[5:13] == (0).to_bytes(4, "big") + (1).to_bytes(4, "big")
    assert out[13:1 + vlen] == b"_pq_.x\x00"
    assert out[1 + vlen:2 + vlen] == b"E" and b"C28000" in out
    # A length over 10000 bytes is refused at once.
    assert raw(front, (20000).to_bytes(4, "big") + (3 << 16).to_bytes(4, "big")) == b""


def test_pool_exhausted_clients_wait_then_get_53300(pg: PgServer, tmp_path: Path) -> None:
    f = FrontDoor(pg, tmp_path)
    try:
        f.stop()
        f.ini.write_text(f.ini.read_text().replace("max_size = 2", "max_size = 1")
                         + "\n[batch]\nacquire_timeout_ms = 1500\n")
        f.start()
        holder = f.connect(autocommit=False)
        holder.execute("SELECT 1")  # holds the one server connection
        waiter = f.connect()
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="no server connection became free"):
            waiter.execute("SELECT 2")
        assert time.monotonic() - t0 >= 1.4
        holder.commit()
        with f.connect() as c:  # free again
            assert c.execute("SELECT 3").fetchone() == (3,)
        holder.close()
    finally:
        f.stop()


def test_too_many_clients_get_53300(pg: PgServer, tmp_path: Path) -> None:
    f = FrontDoor(pg, tmp_path, max_client_conn=2)
    try:
        a, b = f.connect(), f.connect()
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            f.connect()
        f.proxy.wait_log(r"event=client_error sqlstate=53300 ")
        a.close()
        b.close()
    finally:
        f.stop()


def test_sighup_rereads_the_auth_file(front: FrontDoor) -> None:
    assert front.psql("SELECT 1", user="newuser", password="pw-new").returncode != 0
    with front.userlist.open("a") as fh:
        fh.write(userlist_line("newuser", "pw-new"))
    mark = front.proxy.mark()
    front.proxy.proc.send_signal(signal.SIGHUP)
    front.proxy.wait_log(r"event=fe_config users=3", since=mark)
    r = front.psql("SELECT 'in'", user="newuser", password="pw-new")
    assert r.returncode == 0 and r.stdout.strip() == "in", r.stderr


# ---- pooling ----

def test_prepared_statements_survive_transaction_pooling(front: FrontDoor, pg: PgServer) -> None:
    """Six clients at once over two server connections: every client's named statement must
    be found on whichever connection serves each of its transactions."""
    conns = [front.connect() for _ in range(6)]
    backends: list[set[int]] = [set() for _ in conns]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for rnd in range(40):
                v, pid = conns[i].execute("SELECT %s::int + 1, pg_backend_pid()",
                                          (i * 1000 + rnd,), prepare=True).fetchone()
                assert v == i * 1000 + rnd + 1
                backends[i].add(pid)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set().union(*backends)) == 2  # the pool's size, not the clients'
    # Named statements of the same clients ran on both connections.
    assert any(len(b) == 2 for b in backends), backends
    for c in conns:
        # psycopg did prepare (by name) and keeps using its statement
        assert c.execute("SELECT 1", prepare=True).fetchone() == (1,)
        c.close()


def test_metrics_count_clients_waits_and_traffic(front: FrontDoor) -> None:
    def scrape() -> promtext.Samples:
        status, body, _ = front.proxy.admin_get("/metrics")
        assert status == 200
        return promtext.parse(body)

    with front.connect() as c, front.connect() as idle:
        idle.execute("SELECT 1")
        with c.transaction():
            c.execute("SELECT repeat('x', 100000)").fetchone()
            m = scrape()
            assert promtext.value(m, "lbp_frontend_clients", state="active") == 1
            assert promtext.value(m, "lbp_frontend_clients", state="idle") == 1
            assert promtext.value(m, "lbp_frontend_server_connections", database=front.pg.dbname,
                                  user="", state="lent") == 1
        with pytest.raises(psycopg.OperationalError):
            front.connect(password="wrong")
        m = scrape()
    assert promtext.value(m, "lbp_frontend_events_total", event="transactions") >= 2
    assert promtext.value(m, "lbp_frontend_events_total", event="auth_failures") == 1
    assert promtext.value(m, "lbp_frontend_wait_seconds_count") >= 2
    assert promtext.value(m, "lbp_frontend_bytes_total", direction="to_client") > 100000
    assert promtext.value(m, "lbp_frontend_bytes_total", direction="to_server") > 0


def test_transactions_keep_their_connection_and_errors_stay_inside(front: FrontDoor) -> None:
    with front.connect(autocommit=False) as c:
        c.execute("CREATE TEMP TABLE t (a int)")
        c.execute("INSERT INTO t VALUES (1), (2)")
        assert c.execute("SELECT count(*) FROM t").fetchone() == (2,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        c.rollback()
        assert c.execute("SELECT 'after'").fetchone() == ("after",)


def test_errors_carry_every_field_and_notices_arrive(front: FrontDoor, pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS fe_err; CREATE TABLE fe_err (id int PRIMARY KEY);"
                 f"GRANT ALL ON fe_err TO {pg.user}")
    notices: list[str] = []
    with front.connect() as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        c.execute("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
        c.execute("INSERT INTO fe_err VALUES (1)")
        with pytest.raises(psycopg.errors.UniqueViolation) as e:
            c.execute("INSERT INTO fe_err VALUES (1)")
        d = e.value.diag
        assert (d.sqlstate, d.constraint_name, d.table_name, d.schema_name) == (
            "23505", "fe_err_pkey", "fe_err", "public")
        assert d.message_detail == "Key (id)=(1) already exists."
        assert d.source_function  # F, L, R came through too
        cur = c.execute("SELECT 1; SELECT 2")
        assert cur.fetchone() == (1,) and cur.nextset() and cur.fetchone() == (2,)
    assert notices == ["hello from the server"]


def test_pipeline_mode_and_copy_both_ways(front: FrontDoor, pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS fe_copy; CREATE TABLE fe_copy (a int, b text);"
                 f"GRANT ALL ON fe_copy TO {pg.user}")
    with front.connect() as c:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 2", (k,), prepare=True) for k in range(30)]
        assert [cur.fetchone()[0] for cur in curs] == [k * 2 for k in range(30)]
        with c.cursor().copy("COPY fe_copy (a, b) FROM STDIN") as cp:
            for i in range(5000):
                cp.write_row((i, f"row {i}"))
        out = bytearray()
        with c.cursor().copy("COPY (SELECT a FROM fe_copy ORDER BY a) TO STDOUT") as cp:
            for chunk in cp:
                out += chunk
    assert pg.admin_sql("SELECT count(*), sum(a) FROM fe_copy") == [["5000", str(sum(range(5000)))]]
    assert out.decode().split("\n")[:3] == ["0", "1", "2"]
    assert len(out.decode().split()) == 5000


def proxy_rss_kib(proxy: ProxyProcess) -> int:
    text = Path(f"/proc/{proxy.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))  # type: ignore[union-attr]


def test_large_result_streams_with_flat_memory(pg: PgServer, tmp_path: Path) -> None:
    """100 MB through the proxy while the client reads slowly: the proxy holds at most its
    buffers, never the result."""
    f = FrontDoor(pg, tmp_path, env=SMALL_ASAN_QUARANTINE)
    try:
        with f.connect() as c:
            c.execute("SELECT repeat('x', 1000) FROM generate_series(1, 1000)").fetchall()
            before = proxy_rss_kib(f.proxy)
            total = 0
            cur = c.cursor()
            for i, (s,) in enumerate(cur.stream(
                    "SELECT repeat('x', 1000) FROM generate_series(1, 100000)")):
                total += len(s)
                if i % 20000 == 0:
                    time.sleep(0.2)  # let the proxy's buffers fill: backpressure
            peak = proxy_rss_kib(f.proxy)
        assert total == 100_000_000
        assert peak - before < 48 * 1024, (before, peak)
    finally:
        f.stop()


def run_pgbench(front: FrontDoor, *args: str) -> str:
    env = {**os.environ, "PGPASSWORD": APP_PASSWORD, "PGSSLMODE": "verify-full",
           "PGSSLROOTCERT": str(front.pg.ca_file)}
    r = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(front.port), "-U", APP_USER,
                        *args, front.pg.dbname], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="pgbench is not installed")
def test_pgbench_many_clients_over_four_connections(pg: PgServer, tmp_path: Path) -> None:
    f = FrontDoor(pg, tmp_path)
    try:
        # max_size 4 for this one, as the issue asks
        f.stop()
        f.ini.write_text(f.ini.read_text().replace("max_size = 2", "max_size = 4"))
        f.start()
        run_pgbench(f, "-i", "-s", "1", "-q")
        for mode in ("prepared", "simple"):
            # -n: no VACUUM and no TRUNCATE of the history between the runs. pgbench
            # prepares synchronously: one thread per client, or its blocked thread
            # would wait on a connection its other clients hold (any transaction pooler).
            out = run_pgbench(f, "-n", "-c", "100", "-j", "100", "-t", "5", "-M", mode)
            assert "number of transactions actually processed: 500/500" in out, out
            assert "number of failed transactions: 0" in out, out
        # TPC-B's invariant: every balance moved by the same deltas.
        sums = pg.admin_sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
                            " (SELECT sum(tbalance) FROM pgbench_tellers),"
                            " (SELECT sum(bbalance) FROM pgbench_branches),"
                            " (SELECT sum(delta) FROM pgbench_history),"
                            " (SELECT count(*) FROM pgbench_history)")[0]
        assert sums[0] == sums[1] == sums[2] == sums[3] and sums[4] == "1000", sums
        assert len(backend_pids(pg)) <= 4 + 2  # the front door's pool, and the ingest pool
    finally:
        f.stop()
        pg.admin_sql("DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, "
                     "pgbench_history, pgbench_tellers")


def test_two_thousand_idle_clients(pg: PgServer, tmp_path: Path) -> None:
    """2,000 logged-in clients over a pool of two: idle clients hold no server connection."""
    from concurrent.futures import ThreadPoolExecutor

    f = FrontDoor(pg, tmp_path, max_client_conn=2500)
    conns: list[psycopg.Connection] = []
    try:
        with ThreadPoolExecutor(16) as ex:
            conns = list(ex.map(lambda _: f.connect(), range(2000)))
        status, body, _ = f.proxy.admin_get("/metrics")
        m = promtext.parse(body)
        assert promtext.value(m, "lbp_frontend_clients", state="idle") == 2000
        lent = [promtext.value(m, "lbp_frontend_server_connections", database=pg.dbname,
                               user="", state=s) for s in ("idle", "lent", "opening")]
        assert sum(lent) <= 2
        # every one of them still answers
        for c in conns[::100]:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        for c in conns:
            c.close()
        f.stop()


# ---- cancel and failures ----

def test_cancel_reaches_the_running_query(front: FrontDoor) -> None:
    with front.connect() as c:
        timer = threading.Timer(1.0, c.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(60)")
        assert time.monotonic() - t0 < 50
        assert c.execute("SELECT 'still here'").fetchone() == ("still here",)
    front.proxy.wait_log(r"event=cancel backend_pid=\d+")


def test_client_killed_inside_a_transaction_releases_its_locks(front: FrontDoor,
                                                              pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS fe_lock; CREATE TABLE fe_lock (id int PRIMARY KEY,"
                 f" v int); INSERT INTO fe_lock VALUES (1, 0); GRANT ALL ON fe_lock TO {pg.user}")
    code = ("import psycopg, sys, time\n"
            "c = psycopg.connect(sys.argv[1])\n"
            "c.execute('UPDATE fe_lock SET v = 99 WHERE id = 1')\n"
            "pid = c.execute('SELECT pg_backend_pid()').fetchone()[0]\n"
            "print('locked', pid, flush=True)\n"
            "time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", code, front.dsn()], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        word, pid = child.stdout.readline().split()
        assert word == "locked"
    finally:
        child.kill()
        child.wait()
    # The proxy rolled the server connection back and kept it: the same backend goes
    # from "idle in transaction" to "idle".
    deadline = time.monotonic() + 30
    while pg.admin_sql(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}") != [["idle"]]:
        assert time.monotonic() < deadline, pg.admin_sql(
            f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")
        time.sleep(0.1)
    with front.connect() as c:
        c.execute("SET lock_timeout = '20s'")
        c.execute("UPDATE fe_lock SET v = v + 1 WHERE id = 1")
        # the killed client's update was rolled back, not committed
        assert c.execute("SELECT v FROM fe_lock").fetchone() == (1,)
    # no server connection of the proxy stays inside a transaction
    states = pg.admin_sql("SELECT state FROM pg_stat_activity"
                          " WHERE application_name = 'lakebase-proxy'")
    assert all(s[0] in ("idle", "active") for s in states), states


def test_server_backend_terminated_mid_query(front: FrontDoor, pg: PgServer) -> None:
    with front.connect() as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        killer = threading.Timer(1.0, lambda: pg.admin_sql(f"SELECT pg_terminate_backend({pid})"))
        killer.start()
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT pg_sleep(30)")
        killer.join()
        assert e.value.sqlstate in ("57P01", "08006"), e.value
        # the client's next transaction runs on another server connection
        new_pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert new_pid != pid
    front.proxy.wait_log(r"event=server_lost")


# ---- modes, sockets, shutdown ----

def test_session_mode_keeps_session_state_and_resets_it(pg: PgServer, tmp_path: Path) -> None:
    f = FrontDoor(pg, tmp_path, pool_mode="session")
    try:
        with f.connect() as c:
            c.execute("SET statement_timeout = '123s'")
            c.execute("PREPARE p1 AS SELECT 7")
            assert c.execute("SHOW statement_timeout").fetchone() == ("123s",)
            assert c.execute("EXECUTE p1").fetchone() == (7,)
        # the next client gets the connection reset (DISCARD ALL)
        with f.connect() as c:
            assert c.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    finally:
        f.stop()


def test_unix_socket_without_tls(pg: PgServer, tmp_path: Path) -> None:
    sockdir = Path(f"/tmp/lbp-fe-{os.getpid()}")
    sockdir.mkdir(exist_ok=True)
    f = FrontDoor(pg, tmp_path, listen=f"unix:{sockdir}")
    try:
        assert (sockdir / ".s.PGSQL.6432").is_socket()
        with psycopg.connect(host=str(sockdir), port=6432, dbname=pg.dbname, user=APP_USER,
                             password=APP_PASSWORD, autocommit=True) as c:
            assert c.execute("SELECT 5").fetchone() == (5,)
    finally:
        f.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_sigterm_lets_open_transactions_finish(front: FrontDoor, pg: PgServer) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS fe_drain; CREATE TABLE fe_drain (a int);"
                 f"GRANT ALL ON fe_drain TO {pg.user}")
    c = front.connect(autocommit=False)
    c.execute("INSERT INTO fe_drain VALUES (1)")
    front.proxy.proc.send_signal(signal.SIGTERM)
    front.proxy.wait_log(r"event=signal signal=SIGTERM action=drain")
    c.execute("INSERT INTO fe_drain VALUES (2)")
    c.commit()
    with pytest.raises(psycopg.OperationalError):
        c.execute("SELECT 1")  # closed once its transaction was over
    c.close()
    assert front.proxy.proc.wait(30) == 0
    assert pg.admin_sql("SELECT count(*) FROM fe_drain") == [["2"]]


# ---- passthrough ----

def test_passthrough_logs_in_upstream_with_the_clients_password(pg: PgServer, pg_admin,
                                                                 tmp_path: Path) -> None:
    """The client's own password (a Lakebase token, say) logs in upstream as that user; a
    new password (a rotated token) takes over for new logins while pooled connections keep
    working, and the old one no longer gets in."""
    f = FrontDoor(pg, tmp_path, auth="passthrough")
    try:
        with f.connect(user=pg.user, password=pg.password) as c:
            assert c.execute("SELECT current_user").fetchone() == (pg.user,)
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                f.connect(user=pg.user, password="not-it")
            f.proxy.wait_log(r"event=client_error sqlstate=28P01 ")
            old = pg.password
            pg.set_password("rotated-" + old)
            # the open client and the pool's connections go on
            assert c.execute("SELECT 2").fetchone() == (2,)
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                f.connect(user=pg.user, password=old)
            with f.connect(user=pg.user, password=pg.password) as c2:
                assert c2.execute("SELECT current_user").fetchone() == (pg.user,)
            assert c.execute("SELECT 3").fetchone() == (3,)
        plain = f.psql("SELECT 1", user=pg.user, password=pg.password, sslmode="disable")
        assert "TLS is required" in plain.stderr
    finally:
        f.stop()


def test_passthrough_with_lakebase_tokens_from_the_workspace(pg: PgServer, pg_admin,
                                                             tmp_path: Path) -> None:
    """Clients log in with database credentials they fetch from the (fake) workspace API;
    each new token revokes the last one for new logins, as the fake's Lakebase does."""
    import json
    import ssl
    import urllib.request
    import uuid

    from fake_databricks import FakeDatabricks

    fake = FakeDatabricks(tmp_path, pg)

    def token() -> str:
        req = urllib.request.Request(
            fake.url + "/api/2.0/database/credentials", method="POST",
            data=json.dumps({"request_id": str(uuid.uuid4()),
                             "instance_names": [fake.instance]}).encode(),
            headers={"Authorization": f"Bearer {fake.pat}",
                     "Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=str(pg.ca_file))
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.load(r)["token"]

    f = FrontDoor(pg, tmp_path, auth="passthrough")
    try:
        t1 = token()
        with f.connect(user=pg.user, password=t1) as c:
            assert c.execute("SELECT current_user").fetchone() == (pg.user,)
            t2 = token()
            assert c.execute("SELECT 1").fetchone() == (1,)  # pooled: keeps working
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                f.connect(user=pg.user, password=t1)  # revoked for new logins
            with f.connect(user=pg.user, password=t2) as c2:
                assert c2.execute("SELECT 2").fetchone() == (2,)
        assert t1 not in f.proxy.log and t2 not in f.proxy.log  # tokens are never logged
    finally:
        f.stop()
        fake.stop()
