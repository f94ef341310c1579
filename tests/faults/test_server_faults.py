"""Faults of the server and of the proxy itself, under a pipelined insert load: the server
stopped (SIGSTOP), its backends terminated again and again, an immediate restart, the proxy
killed and started again. Each asserts the Jepsen rule (faultlib.Workload.check), the proxy's
memory within its limits, and a healthy proxy afterwards."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from faultlib import (SyncPgServer, Workload, admin_status, assert_healthy_after, finish,
                      make_table, running, start_proxy, wait_for, wait_more_acks)

# ingest global_buffer_bytes (8 MiB, faultlib.start_proxy) plus what ASan and the answers add.
RSS_LIMIT = 96 << 20


def test_server_stopped_is_not_ready_and_loses_nothing(sync_pg: SyncPgServer,
                                                       tmp_path: Path) -> None:
    make_table(sync_pg, "f_stop")
    proxy, addr = start_proxy(sync_pg, tmp_path, pool={"min_size": 2, "max_size": 2})
    work = Workload(addr, "f_stop", clients=4, depth=16)
    with running(work, proxy) as rss:
        wait_for(lambda: work.acked_units() > 20, 60, "first acks")
        pids = sync_pg.postgres_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            # Connections are open and TCP still acknowledges (the kernel does), so only
            # the lack of progress can tell: /readyz must say so.
            wait_for(lambda: admin_status(proxy, "/readyz") == 503, 30,
                     "/readyz 503 while the server is stopped")
            assert "made progress" in proxy.admin_get("/readyz")[1]
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        wait_more_acks(work, "acks after SIGCONT", timeout=60)
    counts = finish(work, rss, proxy, sync_pg, addr, "f_stop", RSS_LIMIT)
    assert counts["acked"] > 40


def test_backends_terminated_over_and_over(sync_pg: SyncPgServer, tmp_path: Path) -> None:
    make_table(sync_pg, "f_kill")
    proxy, addr = start_proxy(sync_pg, tmp_path, pool={"min_size": 2, "max_size": 4})
    work = Workload(addr, "f_kill", clients=4, depth=8)
    kills = 0
    with running(work, proxy) as rss:
        wait_for(lambda: work.acked_units() > 20, 60, "first acks")
        for _ in range(12):
            kills += len(sync_pg.admin_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE usename = '{sync_pg.user}'"))
            time.sleep(0.3)
        wait_more_acks(work, "acks after the kills", timeout=60)
    assert kills > 10
    finish(work, rss, proxy, sync_pg, addr, "f_kill", RSS_LIMIT)


def test_immediate_restart_keeps_every_acknowledged_row(sync_pg: SyncPgServer,
                                                        tmp_path: Path) -> None:
    make_table(sync_pg, "f_restart")
    proxy, addr = start_proxy(sync_pg, tmp_path, pool={"min_size": 2, "max_size": 4})
    work = Workload(addr, "f_restart", clients=4, depth=8)
    with running(work, proxy) as rss:
        wait_for(lambda: work.acked_units() > 40, 60, "first acks")
        # -m immediate: no shutdown checkpoint, crash recovery at start; with
        # synchronous_commit = on every commit PostgreSQL answered is in the WAL.
        sync_pg.pg_ctl("restart", "-m", "immediate", "-w", "-t", "60", "-l",
                       str(sync_pg.logfile))
        sync_pg.wait_ready()
        wait_more_acks(work, "acks after the restart", timeout=60)
    finish(work, rss, proxy, sync_pg, addr, "f_restart", RSS_LIMIT)


def test_proxy_killed_and_restarted_loses_nothing_acknowledged(sync_pg: SyncPgServer,
                                                               tmp_path: Path) -> None:
    make_table(sync_pg, "f_sigkill")
    proxy, addr = start_proxy(sync_pg, tmp_path)
    port = int(addr.rsplit(":", 1)[1])
    work = Workload(addr, "f_sigkill", clients=4, depth=8)
    with running(work, proxy):
        wait_for(lambda: work.acked_units() > 40, 60, "first acks")
        proxy.proc.kill()
        proxy.stop()
        time.sleep(0.5)
        proxy, addr = start_proxy(sync_pg, tmp_path, ingest_port=port)
        wait_more_acks(work, "acks from the new proxy", timeout=60)
    counts = finish(work, None, proxy, sync_pg, addr, "f_sigkill", 0)
    assert counts["cut"] > 0  # the kill did cut flushes in flight


def metric_value(proxy, name: str) -> float:
    import promtext

    status, body, _ = proxy.admin_get("/metrics")
    assert status == 200
    return promtext.value(promtext.parse(body), name)


def test_flush_then_hang_up_counts_against_the_global_limit(sync_pg: SyncPgServer,
                                                            tmp_path: Path) -> None:
    """Clients that flush and disconnect while the server is stalled: their queued units stay
    counted until committed, so the proxy stops reading at global_buffer_bytes."""
    import socket as socketlib
    import struct

    from lakebase_foreachwriter.ingest_protocol import (encode_flush, encode_hello,
                                                        encode_open, encode_rows)

    make_table(sync_pg, "f_hangup")
    limit = 2 << 20
    proxy, addr = start_proxy(sync_pg, tmp_path, pool={"min_size": 1, "max_size": 1},
                              ingest={"global_buffer_bytes": limit,
                                      "client_buffer_bytes": 1 << 20,
                                      "max_flush_bytes": 1 << 20})
    host, port = addr.rsplit(":", 1)
    unit = b"".join(b"%d\n" % i for i in range(40000))  # ~230 KB
    # The catalog knows the table before the server stops.
    work = Workload(addr, "f_hangup", clients=1)
    with running(work, proxy):
        wait_for(lambda: work.acked_units() > 2, 60, "first acks")
    pids = sync_pg.postgres_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        payload = (encode_hello("hangup") + encode_open("", "f_hangup", "insert", ["id"])
                   + encode_rows(unit) + encode_flush(1))
        socks = []
        for _ in range(40):  # 40 x 230 KB = 9 MB, four times the global limit
            s = socketlib.create_connection((host, int(port)), timeout=30)
            s.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_LINGER, struct.pack("ii", 0, 0))
            s.setblocking(False)
            try:
                s.send(payload)
            except BlockingIOError:
                pass
            socks.append(s)
        time.sleep(2)
        for s in socks:
            s.close()
        time.sleep(2)
        queued = metric_value(proxy, "lbp_queued_bytes")
        buffered = metric_value(proxy, "lbp_buffered_bytes")
        assert queued <= 2 * limit, f"queued {queued:.0f} bytes with the server stalled"
        assert buffered >= queued, (buffered, queued)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    # Everything held is committed (or failed) and released, the orphans' bytes too.
    wait_for(lambda: metric_value(proxy, "lbp_queued_bytes") == 0
             and metric_value(proxy, "lbp_buffered_bytes") == 0, 60, "buffers drained")
    assert_healthy_after(proxy, sync_pg, addr, "f_hangup")
    assert proxy.stop() == 0
