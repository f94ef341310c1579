#!/usr/bin/env python3
"""The main job, as far as it goes today: a throwaway PostgreSQL (TLS + SCRAM, like Lakebase),
lakebase-proxy with its pool warm, the pool's state as the proxy and the server see it, a pooled
connection killed and replaced, and a clean stop.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from pgharness import PgServer  # noqa: E402
from proxyproc import ProxyProcess, write_ini  # noqa: E402


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def server_view(pg: PgServer) -> list[list[str]]:
    return pg.admin_sql(
        "SELECT a.pid, s.ssl, s.version, a.usename, a.state FROM pg_stat_activity a "
        "JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'lakebase-proxy' ORDER BY a.pid")


def print_view(rows: list[list[str]]) -> None:
    print(f"    {'backend pid':>11}  {'tls':<4}{'version':<9}{'user':<10}state")
    for pid, ssl, version, user, state in rows:
        print(f"    {pid:>11}  {'on' if ssl == 't' else 'off':<4}{version:<9}{user:<10}{state}")


def wait_for(pred, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("[demo] timed out")


def main() -> int:
    ap = argparse.ArgumentParser(description="lakebase-proxy demo")
    ap.add_argument("--pool-size", type=int, default=4, help="min_size of the pool (default 4)")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    args = ap.parse_args()
    os.environ["LBP_BUILD_DIR"] = args.build_dir

    with tempfile.TemporaryDirectory(prefix="lbp-demo-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o755)
        say("starting a throwaway PostgreSQL 15 with TLS and SCRAM-SHA-256 only ...")
        pg = PgServer(tmpdir / "pg").start()
        try:
            say(f"PostgreSQL listens on {pg.host}:{pg.port} (certificate from a demo CA)")
            ini = write_ini(tmpdir / "lakebase-proxy.ini", {
                "upstream": {"host": pg.host, "port": pg.port, "dbname": pg.dbname,
                             "user": pg.user, "sslmode": "verify-full",
                             "sslrootcert": pg.ca_file},
                "pool": {"min_size": args.pool_size, "max_size": args.pool_size * 2},
                "log": {"level": "info", "stats_period_s": 1},
            })
            say(f"starting lakebase-proxy --config {ini.name} (password from the environment)")
            env = {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password}
            with ProxyProcess(ini, env) as proxy:
                n = args.pool_size
                m = proxy.wait_log(rf"event=pool_stats opening=0 idle={n} .*")
                say(f"pool is warm; the proxy says: {m.group(0)}")
                rows = wait_for(lambda: (r := server_view(pg)) and len(r) == n and r)
                say("the server sees these connections:")
                print_view(rows)
                victim = rows[0][0]
                say(f"killing backend {victim} with pg_terminate_backend() ...")
                pg.admin_sql(f"SELECT pg_terminate_backend({victim})")
                rows = wait_for(lambda: (r := server_view(pg)) and len(r) == n
                                and victim not in [x[0] for x in r] and r)
                say("replaced without a restart of the proxy:")
                print_view(rows)
                say("stopping the proxy with SIGTERM ...")
                rc = proxy.stop()
            stats = re.findall(r"event=pool_stats .*", proxy.log)
            print()
            print("summary")
            print(f"  pool min_size           {n}")
            print(f"  proxy exit code         {rc}")
            print(f"  last pool line          {stats[-1] if stats else '-'}")
            print(f"  password in the log     {'YES (bug)' if pg.password in proxy.log else 'no'}")
            return 0 if rc == 0 else 1
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
