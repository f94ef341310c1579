#!/usr/bin/env python3
"""The main job: a PySpark stream writing into PostgreSQL through lakebase-proxy.

A throwaway PostgreSQL 15 (TLS + SCRAM-SHA-256 only, like Lakebase), lakebase-proxy in front of it
with a warm pool, and a Spark Structured Streaming query (rate source, several partitions) whose
rows go through `LakebaseForeachWriter(proxy=...)`. A progress line every few seconds (from the
proxy's /metrics: rows/s, rows acknowledged, p99 flush-to-ack latency); at the end a summary, and a
check that the table holds exactly the rows the proxy acknowledged.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "python"))
# Spark stays on loopback like everything else here.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import promtext  # noqa: E402
from pgharness import PgServer  # noqa: E402
from proxyproc import start_proxy  # noqa: E402

TABLE = "demo_events"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def scrape(proxy) -> promtext.Samples:
    status, body, _ = proxy.admin_get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body}")
    return promtext.parse(body)


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def server_connections(pg: PgServer) -> int:
    return int(pg.admin_sql("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'lakebase-proxy'")[0][0])


def run_stream(spark, addr: str, rate: int, partitions: int, duration: float,
               pg: PgServer, proxy) -> dict[str, float]:
    from lakebase_foreachwriter import LakebaseForeachWriter
    from pyspark.sql import functions as F

    df = (spark.readStream.format("rate").option("rowsPerSecond", rate)
          .option("numPartitions", partitions).load()
          .select(F.col("value").alias("event_id"), F.col("timestamp").alias("ts"),
                  F.concat(F.lit("device-"), (F.col("value") % 97).cast("string")).alias("device"),
                  (F.col("value") % 1000 / 10.0).alias("reading"),
                  (F.col("value") % 2 == 0).alias("ok")))
    writer = LakebaseForeachWriter(table=f"public.{TABLE}", df=df, mode="insert",
                                   proxy=addr, batch_size=500, batch_interval_ms=100)
    query = (df.writeStream.foreach(writer).trigger(processingTime="1 second")
             .option("checkpointLocation", tempfile.mkdtemp(prefix="lbp-demo-ckpt-"))
             .start())
    start = time.monotonic()
    peak_conns = 0
    last, last_t = scrape(proxy), start
    print(f"{'elapsed':>8} {'rows/s':>9} {'acked rows':>11} {'p99 ack ms':>10} "
          f"{'rows/batch':>10} {'server conns':>12}", flush=True)
    while time.monotonic() - start < duration:
        time.sleep(3)
        if query.exception():
            raise RuntimeError(f"the streaming query failed: {query.exception()}")
        cur, now = scrape(proxy), time.monotonic()
        rows = promtext.total(cur, "lbp_rows_committed_total")
        new_rows = rows - promtext.total(last, "lbp_rows_committed_total")
        new_batches = (promtext.total(cur, "lbp_batches_total")
                       - promtext.total(last, "lbp_batches_total"))
        p99 = promtext.quantile(0.99, cur, last, "lbp_flush_ack_seconds")
        conns = server_connections(pg)
        peak_conns = max(peak_conns, conns)
        print(f"{now - start:>7.0f}s {new_rows / (now - last_t):>9,.0f} {rows:>11,.0f} "
              f"{ms(p99):>10} {new_rows / new_batches if new_batches else 0:>10,.1f} "
              f"{conns:>12}", flush=True)
        last, last_t = cur, now
    query.stop()
    return {"seconds": time.monotonic() - start, "peak_conns": peak_conns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60, help="seconds of streaming (60)")
    ap.add_argument("--rate", type=int, default=5000, help="rows per second generated (5000)")
    ap.add_argument("--partitions", type=int, default=4, help="Spark partitions (4)")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    args = ap.parse_args()
    os.environ["LBP_BUILD_DIR"] = args.build_dir

    with tempfile.TemporaryDirectory(prefix="lbp-demo-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o755)
        say("starting a throwaway PostgreSQL 15 with TLS and SCRAM-SHA-256 only ...")
        pg = PgServer(tmpdir / "pg").start()
        try:
            pg.admin_sql(f"CREATE TABLE {TABLE} (event_id bigint PRIMARY KEY, ts timestamptz, "
                         f"device text, reading double precision, ok boolean); "
                         f"GRANT ALL ON {TABLE} TO {pg.user}")
            say("starting lakebase-proxy (pool of 2..4 TLS connections, verify-full) ...")
            proxy, addr = start_proxy(pg, tmpdir, pool={"min_size": 2, "max_size": 4},
                                      log={"stats_period_s": 10})
            proxy.wait_log(r"event=pool_stats opening=0 idle=2 ")
            say(f"proxy listens on {addr}; starting Spark (local[{args.partitions}]) ...")
            from pyspark.sql import SparkSession
            spark = (SparkSession.builder.master(f"local[{args.partitions}]")
                     .appName("lakebase-proxy-demo").config("spark.ui.enabled", "false")
                     .config("spark.ui.showConsoleProgress", "false")
                     .config("spark.sql.shuffle.partitions", str(args.partitions))
                     .getOrCreate())
            spark.sparkContext.setLogLevel("ERROR")
            say(f"streaming {args.rate:,} rows/s for {args.duration:.0f} s through the proxy:")
            result = run_stream(spark, addr, args.rate, args.partitions, args.duration, pg,
                                proxy)
            spark.stop()
            m = scrape(proxy)
            rc = proxy.stop()
            in_table = int(pg.admin_sql(f"SELECT count(*) FROM {TABLE}")[0][0])
            acked = int(promtext.total(m, "lbp_rows_committed_total"))
            batches = int(promtext.total(m, "lbp_batches_total"))
            print()
            print("summary")
            print(f"  streamed for              {result['seconds']:.0f} s")
            print(f"  rows acknowledged         {acked:,}")
            print(f"  rows in the table         {in_table:,}")
            print(f"  flush units committed     "
                  f"{promtext.total(m, 'lbp_flushes_committed_total'):,.0f}")
            print(f"  batches (transactions)    {batches:,}"
                  f" ({acked / batches if batches else 0:,.0f} rows each)")
            print(f"  flush-to-ack latency      p50 "
                  f"{ms(promtext.quantile(0.5, m, None, 'lbp_flush_ack_seconds'))} ms, p99 "
                  f"{ms(promtext.quantile(0.99, m, None, 'lbp_flush_ack_seconds'))} ms")
            print(f"  failed flush units        "
                  f"{promtext.total(m, 'lbp_flushes_failed_total'):,.0f}")
            print(f"  server connections, peak  {result['peak_conns']} (pool max_size 4)")
            print(f"  proxy CPU, memory         "
                  f"{promtext.value(m, 'process_cpu_seconds_total'):.1f} s, "
                  f"{promtext.value(m, 'process_resident_memory_bytes') / 2**20:.0f} MiB RSS")
            print(f"  proxy exit code           {rc}")
            ok = rc == 0 and acked == in_table and acked > 0
            print(f"  check                     {'OK: table == acknowledged' if ok else 'MISMATCH'}")
            return 0 if ok else 1
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
