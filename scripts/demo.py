#!/usr/bin/env python3
"""The main job: a PySpark stream writing into PostgreSQL through lakebase-proxy.

A throwaway PostgreSQL 15 (TLS + SCRAM-SHA-256 only, like Lakebase), lakebase-proxy in front of it
with a warm pool, and a Spark Structured Streaming query (rate source, several partitions) whose
rows go through `LakebaseForeachWriter(proxy=...)`. A progress line every few seconds (from the
proxy's /metrics: rows/s, rows acknowledged, p99 flush-to-ack latency); at the end a summary, and a
check that the table holds exactly the rows the proxy acknowledged.

With --proxy HOST:PORT nothing is started here: the stream goes through that running proxy
(token from $LBP_INGEST_TOKEN) into the database behind it, which the job reaches itself through
--dsn or libpq's PG* variables to create the table and check it (docker/docker-compose.yml);
--admin-url (token from $LBP_ADMIN_TOKEN) reads its /metrics for the progress line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "python"))
# Spark stays on loopback like everything else here.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

TABLE = "demo_events"
TABLE_DDL = ("event_id bigint PRIMARY KEY, ts timestamptz, device text, "
             "reading double precision, ok boolean")
# The tokens of an external proxy (--proxy): from the environment, so they are not in `ps`.
TOKEN_ENV = "LBP_INGEST_TOKEN"
# How much longer than --duration a stream goes on while no micro-batch with rows completed.
STARTUP_GRACE_S = 300
ADMIN_TOKEN_ENV = "LBP_ADMIN_TOKEN"

import promtext  # noqa: E402  (tests/harness, on the path above)


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def fetch_metrics(url: str, token: Optional[str] = None) -> promtext.Samples:
    """The proxy's /metrics at url (http://host:port), parsed."""
    req = urllib.request.Request(url.rstrip("/") + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return promtext.parse(r.read().decode())


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


class MetricsSampler:
    """Progress from /metrics: rows acknowledged, batches, and the p99 flush-to-ack latency of
    the flushes answered since the previous sample (histogram deltas)."""

    def __init__(self, scrape: Callable[[], promtext.Samples]) -> None:
        self.scrape = scrape
        self.last = scrape()

    def __call__(self) -> tuple[int, Optional[int], float]:
        cur = self.scrape()
        p99 = promtext.quantile(0.99, cur, self.last, "lbp_flush_ack_seconds")
        self.last = cur
        return (int(promtext.total(cur, "lbp_rows_committed_total")),
                int(promtext.total(cur, "lbp_batches_total")), p99)


PROXY_CONNS_SQL = ("SELECT count(*) FROM pg_stat_activity "
                   "WHERE application_name = 'lakebase-proxy'")


def server_connections(pg) -> int:
    return int(pg.admin_sql(PROXY_CONNS_SQL)[0][0])


def run_stream(spark, addr: str, rate: int, partitions: int, duration: float,
               sample: Callable[[], tuple[int, Optional[int], float]],
               conns: Callable[[], int], token: Optional[str] = None) -> dict[str, Any]:
    """Streams for `duration` seconds, and on (at most STARTUP_GRACE_S more) until a
    micro-batch with rows has completed, which a loaded machine can take longer than a short
    duration to get to; every 3 s prints sample() (rows so far, batches or None, p99
    flush-to-ack seconds of the interval or NaN) and conns() (the proxy's server
    connections)."""
    from lakebase_foreachwriter import LakebaseForeachWriter
    from pyspark.sql import functions as F

    df = (spark.readStream.format("rate").option("rowsPerSecond", rate)
          .option("numPartitions", partitions).load()
          .select(F.col("value").alias("event_id"), F.col("timestamp").alias("ts"),
                  F.concat(F.lit("device-"), (F.col("value") % 97).cast("string")).alias("device"),
                  (F.col("value") % 1000 / 10.0).alias("reading"),
                  (F.col("value") % 2 == 0).alias("ok")))
    writer = LakebaseForeachWriter(table=f"public.{TABLE}", df=df, mode="insert",
                                   proxy=addr, proxy_token=token, batch_size=500,
                                   batch_interval_ms=100)
    query = (df.writeStream.foreach(writer).trigger(processingTime="1 second")
             .option("checkpointLocation", tempfile.mkdtemp(prefix="lbp-demo-ckpt-"))
             .start())
    start = time.monotonic()
    peak_conns = 0
    last_rows, last_batches, last_t = 0, 0, start
    print(f"{'elapsed':>8} {'rows/s':>9} {'acked rows':>11} {'p99 ack ms':>10} "
          f"{'rows/batch':>10} {'server conns':>12}", flush=True)
    extended = False

    def go_on() -> bool:
        nonlocal extended
        elapsed = time.monotonic() - start
        if elapsed < duration:
            return True
        if completed_rows(query.recentProgress) or elapsed >= duration + STARTUP_GRACE_S:
            return False
        if not extended:
            say(f"no micro-batch with rows has completed yet: streaming on "
                f"(at most {STARTUP_GRACE_S} s more)")
            extended = True
        return True

    while go_on():
        time.sleep(3)
        if query.exception():
            raise RuntimeError(f"the streaming query failed: {query.exception()}")
        rows, batches, p99 = sample()
        now = time.monotonic()
        n_conns = conns()
        peak_conns = max(peak_conns, n_conns)
        if batches is None:  # no /metrics: the batch count is not visible from here
            per_batch = "-"
        else:
            new = batches - last_batches
            per_batch = f"{(rows - last_rows) / new if new else 0:,.1f}"
            last_batches = batches
        print(f"{now - start:>7.0f}s {(rows - last_rows) / (now - last_t):>9,.0f} {rows:>11,} "
              f"{ms(p99):>10} {per_batch:>10} {n_conns:>12}", flush=True)
        last_rows, last_t = rows, now
    query.stop()
    return {"seconds": time.monotonic() - start, "peak_conns": peak_conns,
            "progress": query.recentProgress}


def start_spark(partitions: int, extra_conf: Optional[dict[str, str]] = None):
    from pyspark.sql import SparkSession
    builder = (SparkSession.builder.master(f"local[{partitions}]")
               .appName("lakebase-proxy-demo").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", str(partitions)))
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_local(args: argparse.Namespace) -> int:
    """PostgreSQL and the proxy started here, removed at the end (./scripts/demo.sh)."""
    from pgharness import PgServer
    from proxyproc import start_proxy

    os.environ["LBP_BUILD_DIR"] = args.build_dir
    with tempfile.TemporaryDirectory(prefix="lbp-demo-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o755)
        say("starting a throwaway PostgreSQL 15 with TLS and SCRAM-SHA-256 only ...")
        pg = PgServer(tmpdir / "pg").start()
        try:
            pg.admin_sql(f"CREATE TABLE {TABLE} ({TABLE_DDL}); "
                         f"GRANT ALL ON {TABLE} TO {pg.user}")
            say("starting lakebase-proxy (pool of 2..4 TLS connections, verify-full) ...")
            proxy, addr = start_proxy(pg, tmpdir, pool={"min_size": 2, "max_size": 4},
                                      log={"stats_period_s": 10})
            proxy.wait_log(r"event=pool_stats opening=0 idle=2 ")
            say(f"proxy listens on {addr}; starting Spark (local[{args.partitions}]) ...")
            spark = start_spark(args.partitions)
            say(f"streaming {args.rate:,} rows/s for {args.duration:.0f} s through the proxy:")

            def scrape() -> promtext.Samples:
                return fetch_metrics(proxy.admin_url)

            result = run_stream(spark, addr, args.rate, args.partitions, args.duration,
                                MetricsSampler(scrape), lambda: server_connections(pg))
            spark.stop()
            # The writer's close() waited for every ack: these are the final counts.
            m = scrape()
            rc = proxy.stop()
            in_table = int(pg.admin_sql(f"SELECT count(*) FROM {TABLE}")[0][0])
            acked = int(promtext.total(m, "lbp_rows_committed_total"))
            batches = int(promtext.total(m, "lbp_batches_total"))

            def q(x: float) -> str:
                return ms(promtext.quantile(x, m, None, "lbp_flush_ack_seconds"))
            print()
            print("summary")
            print(f"  streamed for              {result['seconds']:.0f} s")
            print(f"  rows acknowledged         {acked:,}")
            print(f"  rows in the table         {in_table:,}")
            print(f"  flush units committed     "
                  f"{promtext.total(m, 'lbp_flushes_committed_total'):,.0f}")
            print(f"  batches (transactions)    {batches:,}"
                  f" ({acked / batches if batches else 0:,.0f} rows each)")
            print(f"  flush-to-ack latency      p50 {q(0.5)} ms, p99 {q(0.99)} ms")
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


def completed_rows(progress: list) -> int:
    """Rows of the micro-batches Spark completed: each of their tasks saw every flush acked."""
    per_batch = {p["batchId"]: p["numInputRows"] for p in progress}
    return sum(per_batch.values())


def run_external(args: argparse.Namespace) -> int:
    """Through a proxy that runs elsewhere (the compose file's spark-job). Its log is not ours
    to read, so the check is what Spark completed against what the table holds."""
    import psycopg

    token = os.environ.get(TOKEN_ENV) or None
    say(f"writing through the proxy at {args.proxy} (token from ${TOKEN_ENV}: "
        f"{'set' if token else 'not set'}); database: {args.dsn or 'from PG* variables'}")
    with psycopg.connect(args.dsn, autocommit=True) as db:
        # A rerun starts from event_id 0 again: an empty table, not duplicate keys.
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({TABLE_DDL})")
        db.execute(f"TRUNCATE {TABLE}")

        def count(sql: str) -> int:
            row = db.execute(sql).fetchone()
            return int(row[0]) if row else 0

        # Every completed batch's progress is needed for the check, not only the last 100.
        spark = start_spark(args.partitions,
                            {"spark.sql.streaming.numRecentProgressUpdates": "1000000"})
        say(f"streaming {args.rate:,} rows/s for {args.duration:.0f} s through the proxy:")
        if args.admin_url:
            admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
            sample: Callable[[], tuple[int, Optional[int], float]] = MetricsSampler(
                lambda: fetch_metrics(args.admin_url, admin_token))
        else:
            def sample() -> tuple[int, Optional[int], float]:
                return count(f"SELECT count(*) FROM {TABLE}"), None, math.nan
        result = run_stream(spark, args.proxy, args.rate, args.partitions, args.duration,
                            sample, lambda: count(PROXY_CONNS_SQL), token)
        spark.stop()
        done = completed_rows(result["progress"])
        in_table = count(f"SELECT count(*) FROM {TABLE}")
        # The rate source numbers rows 0, 1, 2... in order, batch after batch.
        done_in_table = count(f"SELECT count(*) FROM {TABLE} WHERE event_id < {done}")
    print()
    print("summary")
    print(f"  streamed for              {result['seconds']:.0f} s")
    print(f"  rows of completed batches {done:,}")
    print(f"  ... of them in the table  {done_in_table:,}")
    print(f"  rows in the table         {in_table:,} (the batch stopped mid-way may add some)")
    print(f"  server connections, peak  {result['peak_conns']}")
    ok = done > 0 and done_in_table == done
    print(f"  check                     "
          f"{'OK: every completed row is in the table' if ok else 'MISSING ROWS'}")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60, help="seconds of streaming (60); longer while no micro-batch with rows "
                         f"has completed (at most {STARTUP_GRACE_S} s more)")
    ap.add_argument("--rate", type=int, default=5000, help="rows per second generated (5000)")
    ap.add_argument("--partitions", type=int, default=4, help="Spark partitions (4)")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--proxy", metavar="HOST:PORT",
                    help="write through this running proxy; start nothing here "
                         f"(token: ${TOKEN_ENV})")
    ap.add_argument("--dsn", default="",
                    help="with --proxy: libpq conninfo of the database behind it, to create "
                         "and check the table (default: the PG* environment variables)")
    ap.add_argument("--admin-url", default="",
                    help="with --proxy: its admin endpoint (http://host:9187), for rows, "
                         f"batches and p99 in the progress line (token: ${ADMIN_TOKEN_ENV})")
    args = ap.parse_args()
    if args.proxy:
        return run_external(args)
    if args.dsn or args.admin_url:
        ap.error("--dsn and --admin-url go with --proxy")
    return run_local(args)


if __name__ == "__main__":
    sys.exit(main())
