"""The lakebase-proxy daemon as a user runs it: config, warm TLS pool, logs, clean stop."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from pgharness import PgServer
from proxyproc import ProxyProcess, proxy_binary, write_ini


def proxy_ini(tmp_path: Path, pg: PgServer, **pool: object) -> Path:
    return write_ini(tmp_path / "proxy.ini", {
        "upstream": {"host": pg.host, "port": pg.port, "dbname": pg.dbname, "user": pg.user,
                     "sslmode": "verify-full", "sslrootcert": pg.ca_file},
        "pool": {"min_size": 3, "max_size": 4, **pool},
        "log": {"level": "info", "stats_period_s": 1},
    })


def proxy_sessions(pg: PgServer) -> list[list[str]]:
    return pg.admin_sql(
        "SELECT a.pid, s.ssl, a.usename FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
        " WHERE a.application_name = 'lakebase-proxy' ORDER BY a.pid")


def wait_sessions(pg: PgServer, n: int, timeout: float = 30.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = proxy_sessions(pg)
        if len(rows) == n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_pool_warm_over_tls_and_clean_stop(tmp_path: Path, pg: PgServer) -> None:
    # The password comes from the environment only, as in a container.
    env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
    with ProxyProcess(proxy_ini(tmp_path, pg), env) as proxy:
        proxy.wait_log(r"event=pool_stats opening=0 idle=3 ")
        rows = wait_sessions(pg, 3)
        assert [r[1:] for r in rows] == [["t", "lbp_test"]] * 3
        assert proxy.stop(signal.SIGTERM) == 0
    assert wait_sessions(pg, 0) == []
    assert "event=stop" in proxy.log
    assert pg.password not in proxy.log


def test_terminated_backend_replaced_by_daemon(tmp_path: Path, pg: PgServer) -> None:
    env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
    with ProxyProcess(proxy_ini(tmp_path, pg), env) as proxy:
        proxy.wait_log(r"event=pool_stats opening=0 idle=3 ")
        before = {r[0] for r in wait_sessions(pg, 3)}
        victim = sorted(before)[0]
        pg.admin_sql(f"SELECT pg_terminate_backend({victim})")
        proxy.wait_log(r"event=pool_lost state=idle reason=server")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = {r[0] for r in proxy_sessions(pg)}
            if len(now) == 3 and victim not in now:
                break
            time.sleep(0.1)
        assert len(now) == 3 and victim not in now


def test_wrong_password_logs_28P01_once_per_attempt_and_no_secret(tmp_path: Path,
                                                                  pg: PgServer) -> None:
    secret = "s3cret-" + pg.password[:8]
    env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": secret}
    with ProxyProcess(proxy_ini(tmp_path, pg, reconnect_base_ms=50, reconnect_max_ms=200),
                      env) as proxy:
        proxy.wait_log(r"reason=auth error=\"FATAL 28P01: password authentication failed")
        proxy.wait_log(r"event=connect_failed reason=auth failures=3 ")
        assert proxy.proc.poll() is None  # keeps retrying, does not exit
    assert secret not in proxy.log


def test_check_config_masks_secrets(tmp_path: Path, pg: PgServer) -> None:
    ini = proxy_ini(tmp_path, pg)
    res = subprocess.run([str(proxy_binary()), "--config", str(ini), "--check-config"],
                         env={"LAKEBASE_PROXY_UPSTREAM_PASSWORD": "hunter2-xyz"},
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "password = ********" in res.stdout
    assert f"port = {pg.port}" in res.stdout
    assert "hunter2-xyz" not in res.stdout + res.stderr


def test_bad_config_names_file_line_and_key(tmp_path: Path) -> None:
    ini = tmp_path / "bad.ini"
    ini.write_text("[upstream]\nhost = db\nuser = u\n[pool]\nmin_sise = 3\n")
    res = subprocess.run([str(proxy_binary()), "--config", str(ini)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert f"{ini}:5" in res.stderr and "min_sise" in res.stderr


def test_sslrootcert_missing_is_refused_at_start(tmp_path: Path, pg: PgServer) -> None:
    ini = write_ini(tmp_path / "p.ini", {"upstream": {
        "host": pg.host, "user": pg.user, "sslmode": "verify-full",
        "sslrootcert": str(tmp_path / "nope.crt")}})
    res = subprocess.run([str(proxy_binary()), "--config", str(ini)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert "nope.crt" in res.stderr


@pytest.mark.parametrize("flag,expect", [("--version", "lakebase-proxy 0."),
                                         ("--help", "--check-config")])
def test_version_and_help(flag: str, expect: str) -> None:
    res = subprocess.run([str(proxy_binary()), flag], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0 and expect in res.stdout
