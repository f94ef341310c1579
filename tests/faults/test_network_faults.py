"""Network faults between the proxy and PostgreSQL, which runs in a network namespace of the
test's own (faultlib.Netns): a blackhole (every packet dropped both ways), latency (a
forwarder of the test's, since this kernel has no sch_netem) with packet loss. The proxy's
timeouts are short here, so a few seconds of fault prove what a minute would."""

from __future__ import annotations

import re
import time
from pathlib import Path

from faultlib import (DelayForwarder, Netns, NetnsPgServer, Workload, admin_status, finish,
                      make_table, running, start_proxy, wait_for, wait_more_acks)

RSS_LIMIT = 96 << 20


def test_blackhole_found_by_tcp_not_the_query_timeout(netns: Netns, netns_pg: NetnsPgServer,
                                                      tmp_path: Path) -> None:
    make_table(netns_pg, "f_hole")
    # query_timeout_ms is 60 s (faultlib): what ends the dead connections within the blackhole
    # is TCP_USER_TIMEOUT (2 s), and /readyz tells from the lack of progress (1.5 s).
    proxy, addr = start_proxy(netns_pg, tmp_path, upstream_host=netns.addr,
                              pool={"min_size": 2, "max_size": 2})
    work = Workload(addr, "f_hole", clients=4, depth=8)
    with running(work, proxy) as rss:
        wait_for(lambda: work.acked_units() > 20, 60, "first acks")
        mark = proxy.mark()
        netns.blackhole(True)
        hole_started = time.monotonic()
        try:
            wait_for(lambda: admin_status(proxy, "/readyz") == 503, 20,
                     "/readyz 503 in the blackhole")
            # Closed by TCP (what it had sent stayed unacknowledged), not by the 60 s query
            # timeout, which would say reason=timeout.
            wait_for(lambda: any(re.search(r"event=closed state=busy reason=server", ln)
                                 for ln in proxy.lines_since(mark)), 20,
                     lambda: "a server connection closed by TCP_USER_TIMEOUT in the "
                     "blackhole; log:\n" + "\n".join(proxy.lines_since(mark)))
            assert time.monotonic() - hole_started < 30
        finally:
            netns.blackhole(False)
        wait_more_acks(work, "acks after the blackhole", timeout=60)
    finish(work, rss, proxy, netns_pg, addr, "f_hole", RSS_LIMIT)


def test_latency_and_loss_lose_nothing(netns: Netns, netns_pg: NetnsPgServer,
                                       tmp_path: Path) -> None:
    make_table(netns_pg, "f_lossy")
    fwd = DelayForwarder((netns.addr, int(netns_pg.port)), delay_s=0.1)
    try:
        proxy, addr = start_proxy(netns_pg, tmp_path, upstream_host="127.0.0.1",
                                  upstream_port=fwd.port, pool={"min_size": 2, "max_size": 4})
        work = Workload(addr, "f_lossy", clients=4, depth=8)
        with running(work, proxy) as rss:
            wait_for(lambda: work.acked_units() > 10, 60, "first acks")
            netns.loss(5)
            try:
                wait_more_acks(work, "acks with 5% loss", more=30, timeout=90)
            finally:
                netns.loss(5, on=False)
        counts = finish(work, rss, proxy, netns_pg, addr, "f_lossy", RSS_LIMIT)
        assert counts["acked"] > 40
    finally:
        fwd.close()
