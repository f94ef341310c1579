"""The Databricks control plane against a fake workspace (HTTPS) and the real PostgreSQL.

The fake (tests/harness/fake_databricks.py) makes every database credential it issues the
test role's password, so the proxy's logins only work with the newest one. Lifetimes are
seconds, so refreshes happen while the tests watch rows flow through the ingest port.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from fake_databricks import FakeDatabricks
from ingestutil import flush_once
from lakebase_foreachwriter.ingest_protocol import Ack, IngestConnection
from pgharness import PgServer
from proxyproc import ProxyProcess, free_port, proxy_binary, proxy_sections, write_ini


@pytest.fixture
def fake(pg: PgServer, pg_admin, tmp_path: Path) -> Iterator[FakeDatabricks]:
    """A fake workspace; pg_admin puts the role's password back afterwards."""
    f = FakeDatabricks(tmp_path, pg, cred_lifetime_s=3600)
    yield f
    f.stop()


def lakebase_keys(fake: FakeDatabricks, m2m: bool = True, autoscaling: bool = False,
                  **extra: object) -> dict[str, object]:
    keys: dict[str, object] = {"workspace_host": fake.url, "ca_file": fake.pg.ca_file,
                               "connect_timeout_ms": 2000, "request_timeout_ms": 1500,
                               "retry_base_ms": 200, "retry_max_ms": 1000}
    if autoscaling:
        keys["endpoint"] = fake.endpoint
    else:
        keys["instance_name"] = fake.instance
    if m2m:
        keys["client_id"] = fake.client_id
    keys.update(extra)
    return keys


def secret_env(fake: FakeDatabricks, m2m: bool = True) -> dict[str, str]:
    if m2m:
        return {"LAKEBASE_PROXY_LAKEBASE_CLIENT_SECRET": fake.client_secret}
    return {"LAKEBASE_PROXY_LAKEBASE_TOKEN": fake.pat}


def config(pg: PgServer, fake: FakeDatabricks, tmp_path: Path, port: int, *,
           m2m: bool = True, autoscaling: bool = False, pool: dict | None = None,
           **lakebase: object) -> Path:
    sections = proxy_sections(pg, port, lakebase=lakebase_keys(fake, m2m, autoscaling,
                                                               **lakebase),
                              pool={"min_size": 2, "max_size": 4, "reconnect_base_ms": 50,
                                    "reconnect_max_ms": 500, **(pool or {})})
    del sections["upstream"]["host"]  # the control plane finds it
    return write_ini(tmp_path / f"proxy-{port}.ini", sections)


def start(pg: PgServer, fake: FakeDatabricks, tmp_path: Path, *, m2m: bool = True,
          **kw: object) -> tuple[ProxyProcess, str]:
    port = free_port()
    proxy = ProxyProcess(config(pg, fake, tmp_path, port, m2m=m2m, **kw),
                         secret_env(fake, m2m))
    proxy.wait_log(r"event=listening")
    return proxy, f"127.0.0.1:{port}"


def assert_no_secrets(proxy: ProxyProcess, fake: FakeDatabricks) -> None:
    log = proxy.log
    for s in fake.secrets():
        assert s not in log, "a secret is in the log"
    assert "dbt-" not in log and "wst-" not in log


def make_table(pg: PgServer, name: str) -> None:
    pg.admin_sql(f'DROP TABLE IF EXISTS "{name}"; CREATE TABLE "{name}" '
                 f'(writer int, seq int, PRIMARY KEY (writer, seq)); '
                 f'GRANT ALL ON "{name}" TO {pg.user}')


class Writer(threading.Thread):
    """One ingest client flushing small units until stopped; records every answer."""

    def __init__(self, addr: str, table: str, writer: int) -> None:
        super().__init__(daemon=True)
        self.addr, self.table, self.writer = addr, table, writer
        self.acked = 0
        self.errors: list[object] = []
        self.stop_flag = threading.Event()
        # Held for each flush round trip: the test takes it to act between flushes.
        self.gate = threading.Lock()

    def run(self) -> None:
        try:
            c = IngestConnection(self.addr, client_name=f"w{self.writer}")
            c.open(self.table, "insert", ["writer", "seq"])
            seq = 0
            while not self.stop_flag.is_set():
                rows = "".join(f"{self.writer}\t{seq + i}\n" for i in range(10))
                with self.gate:
                    c.send_rows(rows.encode())
                    c.flush()
                    answer = c.read_answer()
                if isinstance(answer, Ack) and answer.rows == 10:
                    self.acked += 10
                else:
                    self.errors.append(answer)
                seq += 10
                time.sleep(0.02)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(60)
        assert not self.is_alive()
        assert self.errors == []


def noticed_losses(proxy: ProxyProcess) -> int:
    """Server sessions the proxy saw end: idle ones, and ones still logging in."""
    log = proxy.log
    return log.count("event=pool_lost") + log.count("event=connect_failed reason=")


def wait_until(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def rows_of(pg: PgServer, table: str, writer: int) -> int:
    return int(pg.admin_sql(f'SELECT count(*) FROM "{table}" WHERE writer = {writer}')[0][0])


def proxy_backends(pg: PgServer) -> list[str]:
    return [r[0] for r in pg.admin_sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'lakebase-proxy'")]


def test_m2m_refresh_recycle_and_rows_keep_flowing(pg: PgServer, fake: FakeDatabricks,
                                                   tmp_path: Path) -> None:
    fake.cred_lifetime_s = 4
    fake.ws_token_lifetime_s = 6
    make_table(pg, "ctl_flow")
    proxy, addr = start(pg, fake, tmp_path, pool={"max_lifetime_s": 2})
    try:
        proxy.wait_log(r'event=lakebase_host instance="inst-1" host="127.0.0.1"')
        proxy.wait_log(r"event=lakebase_credential expires=\S+Z expires_in_s=[34] "
                       r"refresh_in_s=[23]")
        proxy.wait_log(r"event=pool_start")
        w = Writer(addr, "ctl_flow", 1)
        w.start()
        # Kill every server session now and then: the replacements must log in with
        # whatever credential is newest by then. Between flushes, and the writer waits
        # until the proxy has noticed: a connection killed under a sent batch would
        # rightly fail that flush as ambiguous (08007), which is not what this tests.
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            time.sleep(3)
            with w.gate:
                lost = noticed_losses(proxy)
                pids = proxy_backends(pg)
                for pid in pids:
                    pg.admin_sql(f"SELECT pg_terminate_backend({pid})")
                wait_until(lambda: noticed_losses(proxy) >= lost + len(pids))
        w.finish()
        assert w.acked > 100
        assert rows_of(pg, "ctl_flow", 1) == w.acked
        # Refreshed well before expiry: about one credential per 3 s, and the
        # workspace token more than once.
        assert len(fake.db_tokens) >= 4
        assert fake.count("token") >= 2
        assert len(re.findall(r"event=lakebase_credential ", proxy.log)) >= 4
        assert "units_failed=0" in proxy.wait_log(r"event=ingest_stats").string
        # The pool recycled and replaced connections, which logged in afterwards.
        assert re.search(r"event=recycle|event=pool_lost", proxy.log)
        assert "lakebase_error" not in proxy.log
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)


def test_autoscaling_endpoint_with_personal_access_token(pg: PgServer, fake: FakeDatabricks,
                                                         tmp_path: Path) -> None:
    make_table(pg, "ctl_pat")
    proxy, addr = start(pg, fake, tmp_path, m2m=False, autoscaling=True)
    try:
        proxy.wait_log(r'event=lakebase_host endpoint="projects/p1/branches/main/'
                       r'endpoints/ep1" host="127.0.0.1"')
        proxy.wait_log(r"event=pool_start")
        assert flush_once(addr, "ctl_pat", ["writer", "seq"], b"7\t1\n7\t2\n") == Ack(1, 2)
        assert fake.count("token") == 0
        creds = [r.body for r in fake.requests if r.kind == "credential"]
        assert creds[0] == {"endpoint": fake.endpoint}
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)


def test_api_failures_are_logged_retried_and_never_block_ingest(
        pg: PgServer, fake: FakeDatabricks, tmp_path: Path) -> None:
    fake.cred_lifetime_s = 6
    fake.slow_s = 2.5
    make_table(pg, "ctl_fail")
    proxy, addr = start(pg, fake, tmp_path)
    try:
        proxy.wait_log(r"event=pool_start")
        w = Writer(addr, "ctl_fail", 2)
        w.start()
        # The next refresh (in ~4.5 s) meets each failure in turn, then succeeds.
        fake.fail_next("credential", "500", "429", "malformed", "wrong_types", "slow")
        expected = [
            r'step=credential instance="inst-1" error="HTTP 500 '
            r'error_code=\\"INTERNAL_ERROR\\" message=\\"fake outage\\""',
            r'step=credential .*error="HTTP 429 error_code=\\"REQUEST_LIMIT_EXCEEDED\\".*'
            r"retry_in_ms=(\d+)",
            r'step=credential .*error="malformed JSON at line 1 column \d+"',
            r'step=credential .*error="\\"token\\" is a number, not a string"',
            r'step=credential .*error="Operation timed out after 1[5-9]\d\d milliseconds',
        ]
        for rx in expected:
            m = proxy.wait_log(r"level=warn event=lakebase_error " + rx, timeout=40)
            if "429" in rx:
                assert int(m.group(1)) >= 2000  # Retry-After: 2 honoured
        proxy.wait_log(r"event=lakebase_error .*failures=5 ")
        n = len(fake.db_tokens)
        deadline = time.monotonic() + 20
        while len(fake.db_tokens) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(fake.db_tokens) >= n + 1  # recovered
        time.sleep(1)
        w.finish()
        assert rows_of(pg, "ctl_fail", 2) == w.acked > 0
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)


def test_oauth_failing_and_stopped_instance_at_start_then_recovering(
        pg: PgServer, fake: FakeDatabricks, tmp_path: Path) -> None:
    fake.state = "STOPPED"
    fake.fail_next("token", "401", "500")
    make_table(pg, "ctl_start")
    proxy, addr = start(pg, fake, tmp_path)
    try:
        proxy.wait_log(r'event=lakebase_error step=workspace_token .*error="HTTP 401 '
                       r'error=\\"invalid_client\\" error_description=\\"Client '
                       r'authentication failed\\""')
        proxy.wait_log(r"event=lakebase_error step=workspace_token .*HTTP 500")
        proxy.wait_log(r"event=workspace_token_ok")
        proxy.wait_log(r'event=lakebase_error step=host instance="inst-1" '
                       r'error="instance inst-1 is STOPPED" failures=1 ')
        proxy.wait_log(r"event=lakebase_error step=host .*failures=2 ")
        assert "event=pool_start" not in proxy.log  # nothing to connect to yet
        assert proxy.admin_get("/readyz")[:2] == (503, "not ready: no database credential yet\n")
        assert "lbp_credential_expiry" not in proxy.admin_get("/metrics")[1]
        fake.state = "AVAILABLE"
        proxy.wait_log(r"event=pool_start", timeout=15)
        # The expiry the control plane was given is exported as it is.
        m = proxy.wait_log(r"event=lakebase_credential expires=(\S+)Z ")
        want = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=timezone.utc).timestamp()
        got = re.search(r"^lbp_credential_expiry_timestamp_seconds (\S+)$",
                        proxy.admin_get("/metrics")[1], re.M)
        assert got and abs(float(got.group(1)) - want) < 1.0, got
        deadline = time.monotonic() + 30
        while proxy.admin_get("/readyz")[0] != 200:
            assert time.monotonic() < deadline, proxy.admin_get("/readyz")
            time.sleep(0.1)
        assert flush_once(addr, "ctl_start", ["writer", "seq"], b"3\t1\n") == Ack(1, 1)
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)


def test_host_looked_up_again_after_failed_connects(pg: PgServer, fake: FakeDatabricks,
                                                    tmp_path: Path) -> None:
    # Nothing listens on 127.0.0.3: the instance "moved" to 127.0.0.1.
    fake.host_answer = "127.0.0.3"
    proxy, _ = start(pg, fake, tmp_path, reresolve_failures=2)
    try:
        proxy.wait_log(r'event=lakebase_host .*host="127.0.0.3"')
        proxy.wait_log(r"event=connect_failed reason=connect failures=2 ")
        proxy.wait_log(r"event=lakebase_reresolve failures=2")
        fake.host_answer = "127.0.0.1"
        proxy.wait_log(r'event=lakebase_host .*host="127.0.0.1"', timeout=20)
        proxy.wait_log(r'event=pool_host host="127.0.0.1"')
        proxy.wait_log(r"event=pool_stats opening=0 idle=2 .* failures=0")
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)


def test_a_new_host_replaces_connections_to_the_old_one(pg: PgServer, fake: FakeDatabricks,
                                                         tmp_path: Path) -> None:
    """Failover: once the control plane names another host, idle connections to the old one
    (perhaps a demoted primary that would refuse writes) are closed, not kept."""
    proxy, addr = start(pg, fake, tmp_path, reresolve_failures=1,
                        pool={"min_size": 2, "max_size": 2})
    try:
        proxy.wait_log(r"event=pool_stats opening=0 idle=2 ")
        old = proxy_backends(pg)
        assert len(old) == 2
        # The next login fails (one connection left for the role), which asks for the host
        # again, and the instance is now "elsewhere": localhost, the same server by name.
        pg.admin_sql(f"ALTER ROLE {pg.user} CONNECTION LIMIT 1")
        fake.host_answer = "localhost"
        pg.admin_sql(f"SELECT pg_terminate_backend({old[0]})")
        proxy.wait_log(r'event=pool_host host="localhost"', timeout=30)
        pg.admin_sql(f"ALTER ROLE {pg.user} CONNECTION LIMIT -1")
        proxy.wait_log(r"event=pool_retire ")
        wait_until(lambda: len(proxy_backends(pg)) == 2 and old[1] not in proxy_backends(pg),
                   timeout=30)
        make_table(pg, "ctl_failover")
        assert flush_once(addr, "ctl_failover", ["writer", "seq"], b"1\t1\n") == Ack(1, 1)
    finally:
        pg.admin_sql(f"ALTER ROLE {pg.user} CONNECTION LIMIT -1")
        proxy.stop()
    assert_no_secrets(proxy, fake)


def check_config(pg: PgServer, fake: FakeDatabricks, tmp_path: Path
                 ) -> subprocess.CompletedProcess[str]:
    ini = config(pg, fake, tmp_path, free_port())
    return subprocess.run([str(proxy_binary()), "--config", str(ini), "--check-config"],
                          env=secret_env(fake), capture_output=True, text=True, timeout=60)


def test_check_config_looks_up_host_and_expiry(pg: PgServer, fake: FakeDatabricks,
                                               tmp_path: Path) -> None:
    res = check_config(pg, fake, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "; [lakebase] lookup: host = 127.0.0.1\n" in res.stdout
    m = re.search(r"; \[lakebase\] lookup: credential expires = (\S+)Z\n", res.stdout)
    assert m, res.stdout
    assert "client_secret = ********" in res.stdout
    for s in fake.secrets():
        assert s not in res.stdout + res.stderr


def test_check_config_reports_the_exact_error(pg: PgServer, fake: FakeDatabricks,
                                              tmp_path: Path) -> None:
    fake.state = "STOPPED"
    res = check_config(pg, fake, tmp_path)
    assert res.returncode == 1
    assert 'event=check_failed error="instance inst-1 is STOPPED"' in res.stderr
    assert "lookup: host" not in res.stdout
    fake.state = "AVAILABLE"
    fake.fail_next("credential", "500")
    res = check_config(pg, fake, tmp_path)
    assert res.returncode == 1
    assert "HTTP 500 error_code=" in res.stderr
    for s in fake.secrets():
        assert s not in res.stdout + res.stderr


def test_sighup_to_another_instance_replaces_client_and_connections(
        pg: PgServer, fake: FakeDatabricks, tmp_path: Path) -> None:
    make_table(pg, "ctl_reload")
    proxy, addr = start(pg, fake, tmp_path, m2m=False)
    port = int(addr.rsplit(":", 1)[1])
    try:
        proxy.wait_log(r'event=lakebase_host instance="inst-1"')
        proxy.wait_log(r"event=pool_stats opening=0 idle=2 ")
        before = proxy_backends(pg)
        credentials = fake.count("credential")
        # the same server, now named as an autoscaling endpoint
        config(pg, fake, tmp_path, port, m2m=False, autoscaling=True)
        mark = proxy.mark()
        proxy.proc.send_signal(signal.SIGHUP)
        line = proxy.wait_log(r"event=reload ", since=mark).string
        assert 'changed="lakebase.instance_name,lakebase.endpoint"' in line
        proxy.wait_log(r'event=lakebase_host endpoint="projects/p1/branches/main/'
                       r'endpoints/ep1"', since=mark)
        # its first credential retires the connections made for the old instance
        proxy.wait_log(r"event=pool_retire ", since=mark)
        assert fake.count("credential") > credentials
        wait_until(lambda: len(proxy_backends(pg)) == 2
                   and not set(before) & set(proxy_backends(pg)), timeout=30)
        assert flush_once(addr, "ctl_reload", ["writer", "seq"], b"1\t1\n1\t2\n") == Ack(1, 2)
        assert "lakebase_error" not in proxy.log
    finally:
        proxy.stop()
    assert_no_secrets(proxy, fake)
