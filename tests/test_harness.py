"""The harness server behaves like Lakebase: TLS required, SCRAM only, verifiable certificate."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from pgharness import PgServer


def psql(pg: PgServer, sql: str = "SELECT 1", **env: str) -> subprocess.CompletedProcess[str]:
    """psql as the test role over TCP, configured only through PG* variables (plus overrides)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    libpq = {k: v for k, v in pg.env().items() if k.startswith("PG")}
    cmd = [os.path.join(pg.pgbin, "psql"), "-X", "-A", "-t", "-c", sql]
    return subprocess.run(cmd, env={**base, **libpq, **env}, capture_output=True, text=True,
                          timeout=60)


def test_tls_scram_login_works(pg: PgServer) -> None:
    # channel_binding=require only succeeds with SCRAM-SHA-256-PLUS, i.e. SCRAM over TLS.
    res = psql(pg, "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
               PGCHANNELBINDING="require")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "t|lbp_test"


def test_hba_rules_are_exactly_lakebase_like(pg_admin) -> None:
    rows = pg_admin("SELECT type, array_to_string(database, ','), array_to_string(user_name, ','),"
                    " coalesce(address, ''), auth_method FROM pg_hba_file_rules ORDER BY line_number")
    assert rows == [
        ["local", "all", "all", "", "trust"],
        ["hostssl", "all", "lbp_test", "127.0.0.1", "scram-sha-256"],
        ["hostssl", "all", "lbp_test", "::1", "scram-sha-256"],
    ]
    assert pg_admin("SHOW password_encryption") == [["scram-sha-256"]]
    secret = pg_admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'lbp_test'")[0][0]
    assert secret.startswith("SCRAM-SHA-256$")


def test_plaintext_connection_refused(pg: PgServer) -> None:
    res = psql(pg, PGSSLMODE="disable")
    assert res.returncode != 0
    assert "no pg_hba.conf entry" in res.stderr
    assert "no encryption" in res.stderr


def test_wrong_password_fails(pg: PgServer) -> None:
    res = psql(pg, PGPASSWORD=pg.password + "x")
    assert res.returncode != 0
    assert 'password authentication failed for user "lbp_test"' in res.stderr


def test_superuser_cannot_log_in_over_tcp(pg: PgServer) -> None:
    res = psql(pg, PGUSER="postgres")
    assert res.returncode != 0
    assert "no pg_hba.conf entry" in res.stderr


def test_verify_full_rejects_ipv6_host_name_mismatch(pg: PgServer) -> None:
    if not pg.ipv6:
        pytest.skip("no IPv6 loopback on this machine")
    # Same server, same CA: verify-ca passes, so only the name (::1 not in the cert) fails.
    assert psql(pg, PGHOST="::1", PGSSLMODE="verify-ca").returncode == 0
    res = psql(pg, PGHOST="::1")
    assert res.returncode != 0
    assert 'does not match host name "::1"' in res.stderr


def test_untrusted_ca_fails_verification(pg: PgServer) -> None:
    res = psql(pg, PGSSLROOTCERT=str(pg.untrusted_ca_file))
    assert res.returncode != 0
    assert "certificate verify failed" in res.stderr


def test_set_password(pg: PgServer, pg_admin) -> None:
    old = pg.password
    pg.set_password("N3w-secret_" + old[:8])
    assert psql(pg).returncode == 0
    assert "password authentication failed" in psql(pg, PGPASSWORD=old).stderr
    assert f"PGPASSWORD={pg.password}\n" in (pg.base_dir / "harness.env").read_text()


def test_restart_keeps_port_and_password(pg: PgServer) -> None:
    before = pg.admin_sql("SELECT pg_postmaster_start_time()")
    pg.restart()
    assert pg.is_running()
    assert pg.admin_sql("SELECT pg_postmaster_start_time()") != before
    assert psql(pg).returncode == 0


def test_second_instance_without_tls(tmp_path, pg: PgServer) -> None:
    """A second server runs beside the first; with --no-ssl, sslmode=require must fail."""
    t0 = time.monotonic()
    plain = PgServer(tmp_path / "plain", ssl=False).start()
    try:
        print(f"second instance started in {time.monotonic() - t0:.2f}s")
        assert plain.port != pg.port
        assert plain.admin_sql("SHOW ssl") == [["off"]]
        res = psql(plain, PGSSLMODE="require")
        assert res.returncode != 0
        assert "server does not support SSL" in res.stderr
        res = psql(plain, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "f"
        assert "password authentication failed" in psql(plain, PGPASSWORD="nope").stderr
    finally:
        plain.stop()
    assert not plain.is_running()
    assert not (tmp_path / "plain" / "data").exists()


def test_promtext_quantile_over_an_interval() -> None:
    """The demo's p99 comes from histogram deltas, interpolated within the bucket like PromQL."""
    import math

    import promtext

    def hist(counts: list[int]) -> promtext.Samples:
        text = "".join(f'lat_bucket{{le="{le}"}} {c}\n'
                       for le, c in zip(["0.01", "0.1", "1", "+Inf"], counts))
        return promtext.parse(text)

    before, now = hist([10, 10, 10, 10]), hist([10, 110, 110, 110])
    # 100 new observations, all in (0.01, 0.1]: p50 is half way through that bucket.
    assert promtext.quantile(0.5, now, before, "lat") == pytest.approx(0.055)
    assert promtext.quantile(0.99, now, before, "lat") == pytest.approx(0.0991)
    # Since the start, the 10 old ones in the first bucket count too.
    assert promtext.quantile(0.05, now, None, "lat") == pytest.approx(0.0055)
    assert math.isnan(promtext.quantile(0.99, now, now, "lat"))
    assert promtext.quantile(0.99, hist([0, 0, 0, 5]), None, "lat") == 1.0
    with pytest.raises(ValueError):
        promtext.parse("lat_bucket{le=\"1\"}\n")
