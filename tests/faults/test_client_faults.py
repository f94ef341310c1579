"""Faults of clients: ones that never read their answers (issue 13, items 2 and 10), and
2,000 connected at once (the campaign)."""

from __future__ import annotations

import resource
import socket
import struct
import time
from pathlib import Path

import promtext
from faultlib import (SyncPgServer, assert_healthy_after, make_table, rss_bytes, start_proxy,
                      wait_for)
from lakebase_foreachwriter.ingest_protocol import (encode_flush, encode_hello, encode_open,
                                                    encode_rows)


def test_clients_that_never_read_their_answers_cost_little(sync_pg: SyncPgServer,
                                                           tmp_path: Path) -> None:
    make_table(sync_pg, "f_deaf")
    proxy, addr = start_proxy(sync_pg, tmp_path,
                              ingest={"client_buffer_bytes": 2 << 20,
                                      "global_buffer_bytes": 8 << 20})
    host, port = addr.rsplit(":", 1)
    # 300,000 one-row units each (~5 MB): far more than kernel buffers hold.
    units = b"".join(encode_rows(b"%d\n" % (i % 10)) + encode_flush(i)
                     for i in range(1, 300001))
    first = rss_bytes(proxy.proc.pid)
    clients = []
    for n in range(4):
        s = socket.create_connection((host, int(port)), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(encode_hello(f"deaf-{n}") + encode_open("", "f_deaf", "insert", ["id"]))
        s.setblocking(False)
        clients.append([s, 0])
    # Each sends units as long as the proxy takes them, never reading an answer.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        moved = 0
        for c in clients:
            sock, sent = c
            if sent < len(units):
                try:
                    n = sock.send(units[sent:sent + 65536])
                    c[1] += n
                    moved += n
                except BlockingIOError:
                    pass
        if moved == 0:
            time.sleep(0.2)
    grown = rss_bytes(proxy.proc.pid) - first
    # The proxy stops reading each soon after its unsent answers pass a small bound (64 KiB),
    # and those answers cost their size, not a kilobyte each.
    # global_buffer_bytes (8 MiB) four times over, plus 32 MiB for AddressSanitizer's
    # quarantine and allocator caches; before issue 13 these clients took 226 MiB.
    assert grown < (4 * 8 + 32) << 20, f"4 deaf clients grew the proxy by {grown >> 20} MiB"
    for sock, _ in clients:
        sock.close()
    wait_for(lambda: sync_pg.admin_sql("SELECT count(*) FROM f_deaf")[0][0] != "0", 60,
             "their units committed")
    assert_healthy_after(proxy, sync_pg, addr, "f_deaf")
    assert proxy.stop() == 0


def _frames(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """The next `count` messages the proxy sends on sock, as (type, body)."""
    buf, out = b"", []
    while len(out) < count:
        while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed after {out!r}")
            buf += chunk
        n = 1 + struct.unpack("!I", buf[1:5])[0]
        out.append((buf[:1], buf[5:n]))
        buf = buf[n:]
    return out


def test_two_thousand_simultaneous_connections(sync_pg: SyncPgServer, tmp_path: Path) -> None:
    """The campaign's 2,000 clients connected at once: the ingest port serves them all (each
    one's Hello, Open and a one-row flush in its first write), all 2,000 sessions are open at
    the same time, each is acknowledged, and every row is in the table exactly once."""
    n = 2000
    # The test's sockets, and the proxy's (it inherits the limit), with room to spare.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), max(hard, need)))
    socks: list[socket.socket] = []
    try:
        make_table(sync_pg, "f_many")
        proxy, addr = start_proxy(sync_pg, tmp_path, ingest={"max_clients": n + 16})
        host, port = addr.rsplit(":", 1)
        for i in range(n):
            s = socket.create_connection((host, int(port)), timeout=60)
            s.sendall(encode_hello(f"many-{i}") + encode_open("", "f_many", "insert", ["id"])
                      + encode_rows(b"%d\n" % i) + encode_flush(i + 1))
            socks.append(s)
        wait_for(lambda: promtext.value(promtext.parse(proxy.admin_get("/metrics")[1]),
                                        "lbp_clients") == n, 60, "2,000 sessions open at once")
        for i, s in enumerate(socks):
            (h, _), (o, _), (a, body) = _frames(s, 3)
            assert (h, o, a) == (b"h", b"o", b"a"), (i, h, o, a)
            assert struct.unpack("!QQ", body) == (i + 1, 1), i
        assert sync_pg.admin_sql("SELECT count(*), count(DISTINCT id), min(id), max(id) "
                                 "FROM f_many") == [[str(n), str(n), "0", str(n - 1)]]
        for s in socks:
            s.close()
        socks.clear()
        assert_healthy_after(proxy, sync_pg, addr, "f_many")
        assert proxy.stop() == 0
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
