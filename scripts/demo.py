#!/usr/bin/env python3
"""The main job: a PySpark stream writing into PostgreSQL through lakebase-proxy.

A throwaway PostgreSQL 15 (TLS + SCRAM-SHA-256 only, like Lakebase), lakebase-proxy in front of it
with a warm pool, and a Spark Structured Streaming query (rate source, several partitions) whose
rows go through `LakebaseForeachWriter(proxy=...)`. A progress line every few seconds; at the end
a summary, and a check that the table holds exactly the rows the proxy acknowledged.
"""

from __future__ import annotations

import argparse
import os
import re
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

from pgharness import PgServer  # noqa: E402
from proxyproc import start_proxy  # noqa: E402

TABLE = "demo_events"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def last_stats(log: str) -> dict[str, int]:
    lines = re.findall(r"event=ingest_stats (.*)", log)
    if not lines:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


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
    last_rows, last_t = 0, start
    print(f"{'elapsed':>8} {'rows/s':>9} {'acked rows':>11} {'batches':>8} "
          f"{'rows/batch':>10} {'server conns':>12}", flush=True)
    while time.monotonic() - start < duration:
        time.sleep(3)
        if query.exception():
            raise RuntimeError(f"the streaming query failed: {query.exception()}")
        st = last_stats(proxy.log)
        now = time.monotonic()
        rows = st.get("rows_committed", 0)
        conns = server_connections(pg)
        peak_conns = max(peak_conns, conns)
        batches = st.get("batches", 0)
        print(f"{now - start:>7.0f}s {(rows - last_rows) / (now - last_t):>9,.0f} {rows:>11,} "
              f"{batches:>8,} {rows / batches if batches else 0:>10,.1f} {conns:>12}",
              flush=True)
        last_rows, last_t = rows, now
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
                                      log={"stats_period_s": 1})
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
            time.sleep(1.5)  # one more stats line
            stats = last_stats(proxy.log)
            rc = proxy.stop()
            in_table = int(pg.admin_sql(f"SELECT count(*) FROM {TABLE}")[0][0])
            acked = stats.get("rows_committed", -1)
            batches = stats.get("batches", 0)
            print()
            print("summary")
            print(f"  streamed for              {result['seconds']:.0f} s")
            print(f"  rows acknowledged         {acked:,}")
            print(f"  rows in the table         {in_table:,}")
            print(f"  flush units committed     {stats.get('units_committed', 0):,}")
            print(f"  batches (transactions)    {batches:,}"
                  f" ({acked / batches if batches else 0:,.0f} rows each)")
            print(f"  failed flush units        {stats.get('units_failed', 0)}")
            print(f"  server connections, peak  {result['peak_conns']} (pool max_size 4)")
            print(f"  proxy exit code           {rc}")
            ok = rc == 0 and acked == in_table and acked > 0
            print(f"  check                     {'OK: table == acknowledged' if ok else 'MISMATCH'}")
            return 0 if ok else 1
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
