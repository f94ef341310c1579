"""SIGHUP reloads the config: what applies live, what is refused, and [log] file.

Each test starts its own proxy from an INI it rewrites, sends SIGHUP, waits for the reload's
log line and then checks what the change does: batch sizes in the proxy's per-batch debug line,
connections in pg_stat_activity, rows committed, lines in the log file.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping

import pytest
from ingestutil import flush_once
from lakebase_foreachwriter.ingest_protocol import Ack, IngestConnection, ProxyError
from pgharness import PgServer
from proxyproc import ProxyProcess, free_port, proxy_binary, proxy_sections, write_ini
from test_ingest import TableLocked, count, make_table, rows_text

COLS = ["client", "seq", "payload"]


class Reloadable:
    """A proxy whose INI the test rewrites; reload() sends SIGHUP and waits for the verdict."""

    def __init__(self, pg: PgServer, tmp_path: Path, password_in_ini: bool = False,
                 **overrides: Mapping[str, object]) -> None:
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        self.sections = proxy_sections(pg, port, **overrides)
        env = {}
        if password_in_ini:
            self.sections["upstream"]["password"] = pg.password
        else:
            env["LAKEBASE_PROXY_UPSTREAM_PASSWORD"] = pg.password
        self.ini = write_ini(tmp_path / f"reload-{port}.ini", self.sections)
        self.proxy = ProxyProcess(self.ini, env)

    def write(self, text: str | None = None, **changes: Mapping[str, object]) -> None:
        """The INI with changes merged in (kept for later writes), or exactly text."""
        if text is not None:
            self.ini.write_text(text)
            return
        for section, keys in changes.items():
            self.sections.setdefault(section, {}).update(keys)
        write_ini(self.ini, self.sections)

    def reload(self, text: str | None = None, **changes: Mapping[str, object]) -> str:
        """Rewrites the INI, sends SIGHUP; returns the event=reload or reload_failed line."""
        self.write(text, **changes)
        mark = self.proxy.mark()
        self.proxy.proc.send_signal(signal.SIGHUP)
        return self.proxy.wait_log(r"event=(reload|reload_failed) ", since=mark).string

    def stop(self) -> int:
        return self.proxy.stop()


def start(pg: PgServer, tmp_path: Path, **kw) -> Reloadable:
    r = Reloadable(pg, tmp_path, **kw)
    r.proxy.wait_log(r"event=listening")
    return r


def app_sessions(pg: PgServer, app: str) -> list[str]:
    return [row[0] for row in pg.admin_sql(
        f"SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' ORDER BY pid")]


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def unit(client: int, start: int, n: int) -> bytes:
    return rows_text([(str(client), str(start + i), f"p{start + i}") for i in range(n)])


def batch_sizes_of_round(r: Reloadable, pg: PgServer, c: IngestConnection, table: str,
                         first_seq: int, units: int = 10, per_unit: int = 10) -> list[int]:
    """Sends `units` flush units while the table is locked, so that the first one's batch
    waits on the lock and the others queue behind it (max_inflight = 1); then releases the
    lock and returns the rows of every batch that round formed, from the debug line."""
    proxy = r.proxy
    mark = proxy.mark()
    with TableLocked(pg, table):
        c.send_rows(unit(1, first_seq, per_unit))
        c.flush()
        proxy.wait_log(rf"event=batch_start target=\S*{table} ", since=mark)
        for u in range(1, units):
            c.send_rows(unit(1, first_seq + u * per_unit, per_unit))
            c.flush()
        # the periodic line shows them all queued behind the locked batch
        proxy.wait_log(rf"event=ingest_stats .* queued_units={units - 1} ", since=mark)
    answers = [c.read_answer() for _ in range(units)]
    assert all(isinstance(a, Ack) and a.rows == per_unit for a in answers), answers

    def sizes() -> list[int]:
        return [int(m.group(1)) for line in proxy.lines_since(mark)
                if (m := re.search(rf"event=batch_start target=\S*{table} rows=(\d+) ", line))]

    # the log is read in another thread: wait until it has caught up with the answers
    wait_until("every batch line", lambda: sum(sizes()) >= units * per_unit)
    return sizes()


def batching_proxy(pg: PgServer, tmp_path: Path, table: str) -> tuple[Reloadable,
                                                                      IngestConnection]:
    make_table(pg, table, "client int, seq int, payload text")
    r = start(pg, tmp_path, batch={"max_rows": 100000, "max_delay_ms": 0,
                                   "max_inflight": 1},
              log={"level": "debug", "stats_period_s": 1})
    c = IngestConnection(r.addr, client_name="reload")
    c.open(table, "insert", COLS)
    return r, c


def test_sighup_changes_batch_max_rows(pg: PgServer, tmp_path: Path) -> None:
    r, c = batching_proxy(pg, tmp_path, "rl_batch")
    # one unit alone, then the nine that queued meanwhile in one batch
    assert batch_sizes_of_round(r, pg, c, "rl_batch", 0) == [10, 90]
    line = r.reload(batch={"max_rows": 10})
    assert 'event=reload changed="batch.max_rows"' in line
    assert batch_sizes_of_round(r, pg, c, "rl_batch", 100) == [10] * 10
    assert count(pg, "rl_batch") == 200
    assert c.close() == []
    assert r.stop() == 0


def test_bad_config_on_sighup_is_refused_and_old_settings_stay(pg: PgServer,
                                                               tmp_path: Path) -> None:
    r, c = batching_proxy(pg, tmp_path, "rl_bad")
    ini = str(r.ini)
    good = r.ini.read_text()
    not_pem = tmp_path / "not-a-cert.pem"
    not_pem.write_text("this is not a certificate\n")
    small = good.replace("max_rows = 100000", "max_rows = 10")
    assert small != good
    bad = {
        # a value out of range, beside a smaller max_rows that must not apply either
        small.replace("max_size = 4", "max_size = 0"):
            rf'error="{re.escape(ini)}:\d+: \[pool\] max_size: \\"0\\" is out of range',
        small.replace("max_rows = 10", "max_rows = 10\nmax_rowz = 10"):
            rf'error="{re.escape(ini)}:\d+: \[batch\] unknown key \\"max_rowz\\""',
        small.replace("max_rows = 10", "max_rows = 10\nmax_rows 10"):
            rf'error="{re.escape(ini)}:\d+: syntax error',
        # a CA file that exists but holds no certificate: found building the TLS context
        small.replace(f"sslrootcert = {pg.ca_file}", f"sslrootcert = {not_pem}"):
            r'error="cannot load sslrootcert .*not-a-cert',
    }
    for text, want in bad.items():
        assert text != small
        line = r.reload(text)
        assert "level=error event=reload_failed " in line, line
        assert re.search(want, line), line
    assert pg.password not in r.proxy.log
    # still running, still the old max_rows, still committing
    assert r.proxy.proc.poll() is None
    assert batch_sizes_of_round(r, pg, c, "rl_bad", 0) == [10, 90]
    assert count(pg, "rl_bad") == 100
    # and a good reload after the bad ones still works
    assert 'changed="batch.max_rows"' in r.reload(batch={"max_rows": 10})
    assert c.close() == []
    assert r.stop() == 0


def test_sighup_turns_on_debug_lines(pg: PgServer, tmp_path: Path) -> None:
    make_table(pg, "rl_level", "client int, seq int, payload text")
    r = start(pg, tmp_path, log={"level": "info", "stats_period_s": 0})
    c = IngestConnection(r.addr)
    c.open("rl_level", "insert", COLS)
    c.send_rows(unit(1, 0, 5))
    c.flush()
    assert c.read_answer() == Ack(1, 5)
    assert "level=debug" not in r.proxy.log
    assert 'changed="log.level"' in r.reload(log={"level": "debug"})
    mark = r.proxy.mark()
    c.send_rows(unit(1, 5, 5))
    c.flush()
    assert c.read_answer() == Ack(2, 5)
    r.proxy.wait_log(r"level=debug .*event=batch_start target=\S*rl_level rows=5 ", since=mark)
    assert c.close() == []
    assert r.stop() == 0


def test_sighup_grows_and_shrinks_the_pool(pg: PgServer, tmp_path: Path) -> None:
    app = "lbp-reload-pool"
    r = start(pg, tmp_path, upstream={"application_name": app},
              pool={"min_size": 1, "max_size": 4})
    wait_until("1 connection", lambda: len(app_sessions(pg, app)) == 1)
    first = app_sessions(pg, app)
    assert 'changed="pool.min_size"' in r.reload(pool={"min_size": 3})
    wait_until("3 connections", lambda: len(app_sessions(pg, app)) == 3)
    # growing keeps the connection there was
    assert set(first) <= set(app_sessions(pg, app))
    line = r.reload(pool={"min_size": 1, "max_size": 2})
    assert 'changed="pool.min_size,pool.max_size"' in line
    wait_until("1 connection", lambda: len(app_sessions(pg, app)) == 1)
    assert r.stop() == 0


def test_sighup_new_upstream_settings_replace_connections(pg: PgServer,
                                                          tmp_path: Path) -> None:
    make_table(pg, "rl_endpoint", "client int, seq int, payload text")
    r = start(pg, tmp_path, upstream={"application_name": "lbp-rl-a"},
              pool={"min_size": 2, "max_size": 4})
    wait_until("2 connections", lambda: len(app_sessions(pg, "lbp-rl-a")) == 2)
    line = r.reload(upstream={"application_name": "lbp-rl-b"})
    assert 'changed="upstream.application_name"' in line
    wait_until("old connections gone", lambda: app_sessions(pg, "lbp-rl-a") == [])
    wait_until("2 new connections", lambda: len(app_sessions(pg, "lbp-rl-b")) == 2)
    assert flush_once(r.addr, "rl_endpoint", COLS, unit(1, 0, 7)) == Ack(1, 7)
    assert r.stop() == 0


def test_sighup_new_password_for_new_connections(pg: PgServer, pg_admin, tmp_path: Path) -> None:
    app = "lbp-reload-pw"
    make_table(pg, "rl_password", "client int, seq int, payload text")
    r = start(pg, tmp_path, password_in_ini=True, upstream={"application_name": app},
              pool={"min_size": 2, "max_size": 2}, batch={"acquire_timeout_ms": 20000})
    wait_until("2 connections", lambda: len(app_sessions(pg, app)) == 2)
    before = app_sessions(pg, app)
    old_password = pg.password
    new_password = "rotated-" + old_password[:10]
    pg.set_password(new_password)
    line = r.reload(upstream={"password": new_password})
    assert 'changed="upstream.password"' in line
    # open connections stay with what they logged in with
    assert app_sessions(pg, app) == before
    pg.admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE application_name = '{app}'")
    wait_until("2 new connections", lambda: len(app_sessions(pg, app)) == 2
               and not set(before) & set(app_sessions(pg, app)))
    assert flush_once(r.addr, "rl_password", COLS, unit(1, 0, 3)) == Ack(1, 3)
    assert "reason=auth" not in r.proxy.log
    assert r.stop() == 0
    assert new_password not in r.proxy.log and old_password not in r.proxy.log


def test_restart_only_settings_are_logged_and_the_rest_applies(pg: PgServer,
                                                               tmp_path: Path) -> None:
    r = start(pg, tmp_path)
    line = r.reload(ingest={"listen": f"127.0.0.1:{free_port()}", "max_clients": 5},
                    log={"stats_period_s": 3})
    assert 'changed="log.stats_period_s"' in line
    ignored = [ln for ln in r.proxy.lines if "event=reload_ignored" in ln]
    assert len(ignored) == 2
    assert 'key=ingest.listen reason="needs a restart"' in ignored[0]
    assert 'key=ingest.max_clients reason="needs a restart"' in ignored[1]
    # still the old port
    conn = IngestConnection(r.addr)
    assert conn.hello.major == 1
    conn.abort()
    # not applied, so the next reload names them again
    mark = r.proxy.mark()
    assert 'changed="none"' in r.reload()
    assert len([ln for ln in r.proxy.lines_since(mark) if "event=reload_ignored" in ln]) == 2
    assert r.stop() == 0


def test_sighup_while_draining_is_ignored(pg: PgServer, tmp_path: Path) -> None:
    make_table(pg, "rl_drain", "client int, seq int, payload text")
    r = start(pg, tmp_path)
    c = IngestConnection(r.addr)
    c.open("rl_drain", "insert", COLS)
    with TableLocked(pg, "rl_drain"):
        c.send_rows(unit(1, 0, 4))
        c.flush()
        # the batch waits on the lock, so the drain cannot end yet
        wait_until("batch waiting on the lock", lambda: pg.admin_sql(
            "SELECT count(*) FROM pg_locks WHERE NOT granted "
            "AND relation = 'rl_drain'::regclass") == [["1"]])
        r.proxy.proc.send_signal(signal.SIGTERM)
        r.proxy.wait_log(r"event=signal signal=SIGTERM action=drain")
        mark = r.proxy.mark()
        r.write(batch={"max_rows": 1})
        r.proxy.proc.send_signal(signal.SIGHUP)
        r.proxy.wait_log(r"event=signal signal=SIGHUP action=ignored reason=draining",
                         since=mark)
    assert c.read_answer() == Ack(1, 4)
    assert r.stop() == 0
    assert "event=reload" not in r.proxy.log
    assert count(pg, "rl_drain") == 4


def wait_file(path: Path, pattern: str, timeout: float = 30.0) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if rx.search(text):
            return text
        assert time.monotonic() < deadline, f"no {pattern!r} in {path}:\n{text}"
        time.sleep(0.05)


def test_log_file_and_reopen_after_move(pg: PgServer, tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    rotated = tmp_path / "proxy.log.1"
    r = Reloadable(pg, tmp_path, log={"file": log, "stats_period_s": 0})
    wait_file(log, r"event=listening")
    assert log.stat().st_mode & 0o777 == 0o640
    log.rename(rotated)
    r.proxy.proc.send_signal(signal.SIGHUP)
    text = wait_file(log, r"event=reload changed=")
    assert f'event=log_reopened file="{log}"' in text
    assert "event=start" not in text
    old = rotated.read_text()
    assert "event=start" in old and "signal=SIGHUP" in old and "event=reload " not in old
    # a path that cannot be opened: refused, the file in use stays
    r.write(log={"file": tmp_path / "no-such-dir" / "x.log"})
    r.proxy.proc.send_signal(signal.SIGHUP)
    text = wait_file(log, r"event=reload_failed")
    assert re.search(r'error="\[log\] file \\".*no-such-dir/x.log\\": cannot open: '
                     r'No such file or directory"', text)
    assert r.stop() == 0
    assert "event=stop" in log.read_text()
    # nothing went to stderr
    assert r.proxy.log == ""


def test_log_file_that_cannot_be_opened_stops_the_start(pg: PgServer, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "p.ini", proxy_sections(
        pg, free_port(), log={"file": tmp_path / "missing" / "p.log"}))
    res = subprocess.run([str(proxy_binary()), "--config", str(ini)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert "event=config_error" in res.stderr and "missing/p.log" in res.stderr


def test_sighup_rotates_the_ingest_and_admin_tokens(pg: PgServer, tmp_path: Path) -> None:
    make_table(pg, "rl_token", "client int, seq int, payload text")
    r = start(pg, tmp_path, ingest={"auth_token": "ingest-old-1"},
              admin={"auth_token": "admin-old-1"})
    inside = IngestConnection(r.addr, token="ingest-old-1", client_name="inside")
    inside.open("rl_token", "insert", COLS)
    assert r.proxy.admin_get("/metrics", token="admin-old-1")[0] == 200
    line = r.reload(ingest={"auth_token": "ingest-new-2"}, admin={"auth_token": "admin-new-2"})
    assert 'changed="ingest.auth_token,admin.auth_token"' in line
    # New sessions need the new token; the session already in keeps going.
    with pytest.raises(ProxyError) as e:
        IngestConnection(r.addr, token="ingest-old-1")
    assert e.value.sqlstate == "28000"
    assert flush_once(r.addr, "rl_token", COLS, unit(2, 0, 2), token="ingest-new-2") == Ack(1, 2)
    inside.send_rows(unit(1, 0, 3))
    inside.flush()
    assert inside.read_answer() == Ack(1, 3)
    assert inside.close() == []
    assert r.proxy.admin_get("/metrics", token="admin-old-1")[0] == 401
    assert r.proxy.admin_get("/metrics", token="admin-new-2")[0] == 200
    assert count(pg, "rl_token") == 5
    assert r.stop() == 0
    for secret in ("ingest-old-1", "ingest-new-2", "admin-old-1", "admin-new-2"):
        assert secret not in r.proxy.log
