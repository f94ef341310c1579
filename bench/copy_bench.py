#!/usr/bin/env python3
"""COPY throughput: the proxy's own PostgreSQL client against psql's \\copy, same file, same run.

Both load the same COPY-text file into the same table over TLS (verify-full) with SCRAM
against a throwaway PostgreSQL 15 from tests/harness. Runs alternate between the two tools,
the table is truncated before each, and every run's row count is checked. Prints medians and
the ratio; writes the raw figures to bench/results/copy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from pgharness import PgServer  # noqa: E402

TABLE = "bench_copy"
DDL = (f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id bigint, ts timestamptz, "
       "name text, value double precision, flag boolean)")


def make_rows(path: Path, n: int) -> int:
    """Five columns like a typical streaming event; returns the file size."""
    with path.open("w") as f:
        for i in range(1, n + 1):
            f.write(f"{i}\t2026-11-24 12:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000000:06d}+00\t"
                    f"device-{i % 9973}\t{(i % 100000) / 7:.6f}\t{'t' if i % 3 else 'f'}\n")
    return path.stat().st_size


def child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    cpu0, t0 = child_cpu(), time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
    if res.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {res.stderr.strip()}")
    return wall, cpu, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200,000 rows, 3 runs")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    args = ap.parse_args()
    if args.quick:
        args.rows, args.runs = 200_000, 3
    lbp_copy = Path(args.build_dir) / "lbp-copy"

    with tempfile.TemporaryDirectory(prefix="lbp-bench-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o755)
        pg = PgServer(tmpdir / "pg").start()
        try:
            data = tmpdir / "rows.tsv"
            size = make_rows(data, args.rows)
            pg.admin_sql(f"GRANT CREATE ON SCHEMA public TO {pg.user}")
            env = {**os.environ, **pg.env()}
            psql = str(Path(pg.pgbin) / "psql")
            subprocess.run([psql, "-X", "-q", "-c", DDL], env=env, check=True)
            ini = tmpdir / "copy.ini"
            ini.write_text(f"[upstream]\nhost = {pg.host}\nport = {pg.port}\ndbname = {pg.dbname}\n"
                           f"user = {pg.user}\nsslmode = verify-full\nsslrootcert = {pg.ca_file}\n")
            env["LAKEBASE_PROXY_UPSTREAM_PASSWORD"] = pg.password
            tools = {
                "lakebase-proxy client": [str(lbp_copy), "--config", str(ini), "--copy",
                                          f"COPY {TABLE} FROM STDIN", "--file", str(data)],
                "psql \\copy": [psql, "-X", "-q", "-c", f"\\copy {TABLE} FROM '{data}'"],
            }
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in tools}
            for r in range(args.runs):
                order = list(tools) if r % 2 == 0 else list(reversed(tools))
                for name in order:
                    pg.admin_sql(f"TRUNCATE {TABLE}")
                    wall, cpu, _ = timed(tools[name], env)
                    count = int(pg.admin_sql(f"SELECT count(*) FROM {TABLE}")[0][0])
                    if count != args.rows:
                        raise SystemExit(f"{name} loaded {count} rows, expected {args.rows}")
                    runs[name].append({"seconds": wall, "rows_per_s": args.rows / wall,
                                       "client_cpu_s": cpu})
        finally:
            pg.stop()

    med = {k: statistics.median(x["rows_per_s"] for x in v) for k, v in runs.items()}
    ratio = med["lakebase-proxy client"] / med["psql \\copy"]
    print(f"\nCOPY of {args.rows:,} rows ({size / 1e6:.1f} MB, 5 columns) over TLS+SCRAM, "
          f"{args.runs} runs each, alternating\n")
    print(f"{'tool':<24}{'median rows/s':>15}{'min':>12}{'max':>12}{'client CPU s':>14}")
    for name, v in runs.items():
        rps = [x["rows_per_s"] for x in v]
        cpu = statistics.median(x["client_cpu_s"] for x in v)
        print(f"{name:<24}{med[name]:>15,.0f}{min(rps):>12,.0f}{max(rps):>12,.0f}{cpu:>14.2f}")
    print(f"\nratio lakebase-proxy client / psql: {ratio:.2f}")
    out = ROOT / "bench" / "results" / time.strftime("copy-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"rows": args.rows, "bytes": size, "runs": runs,
                               "median_rows_per_s": med, "ratio": ratio}, indent=2))
    print(f"raw figures: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
