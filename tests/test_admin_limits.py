"""The admin port under abuse: slow clients, too many clients, a process near its fd limit,
and the Authorization header read as RFC 7235 says (issue 13, items 12 and 16).

Each test holds raw sockets against the proxy's admin port and asserts what they were told
(a 503, a closed connection) and that the ingest port and /healthz still answer.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from ingestutil import flush_once
from lakebase_foreachwriter.ingest_protocol import Ack
from pgharness import PgServer
from proxyproc import ProxyProcess, proxy_binary, proxy_sections, free_port, write_ini

from test_admin import make_table

TOKEN = "admintok-0123456789"


def admin_addr(proxy: ProxyProcess) -> tuple[str, int]:
    host, port = proxy.admin_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


_STARTED: list[ProxyProcess] = []


@pytest.fixture(autouse=True)
def _stop_proxies() -> Iterator[None]:
    """A failed assertion must not leave its proxy (and its server connections) behind."""
    yield
    while _STARTED:
        _STARTED.pop().stop()


def start(pg: PgServer, tmp_path: Path, admin: dict[str, object], nofile: int | None = None,
          log_level: str = "info") -> tuple[ProxyProcess, str]:
    port = free_port()
    ini = write_ini(tmp_path / "proxy.ini", proxy_sections(pg, port, admin=admin,
                                                                log={"level": log_level}))
    command = None
    if nofile is not None:
        command = ["prlimit", f"--nofile={nofile}:{nofile}", "--", str(proxy_binary())]
    proxy = ProxyProcess(ini, {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password},
                         command=command)
    _STARTED.append(proxy)
    proxy.wait_log(r"event=listening")
    return proxy, f"127.0.0.1:{port}"


def wait_healthy(proxy: ProxyProcess, timeout: float = 30.0) -> bool:
    """/healthz answers 200 within timeout (closed connections take the loop a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.admin_get("/healthz")[0] == 200:
            return True
        time.sleep(0.1)
    return False


def raw_request(addr: tuple[str, int], request: bytes, timeout: float = 20.0) -> bytes:
    """Sends request whole and reads until the proxy closes: everything it answered."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


class SlowClient:
    """Sends a request one byte at a time, never finishing it, until the proxy hangs up."""

    def __init__(self, addr: tuple[str, int], period: float) -> None:
        self.sock = socket.create_connection(addr, timeout=60)
        self.period = period
        self.closed_by_proxy = threading.Event()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pattern = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100000
        while not self._stop.is_set():
            try:
                self.sock.send(pattern[self.sent % len(pattern):][:1])
                self.sent += 1
                self.sock.settimeout(self.period)
                if self.sock.recv(4096) == b"":
                    self.closed_by_proxy.set()
                    return
            except socket.timeout:
                continue
            except OSError:
                self.closed_by_proxy.set()
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


def test_slow_admin_clients_are_cut_by_a_whole_request_deadline_and_capped(
        pg: PgServer, tmp_path: Path) -> None:
    proxy, ingest = start(pg, tmp_path, {"max_connections": 4, "request_timeout_ms": 1500})
    addr = admin_addr(proxy)
    make_table(pg, "adm_slow", "id int")
    slow = [SlowClient(addr, 0.2) for _ in range(4)]
    try:
        # Over the cap: told so at once, and closed.
        time.sleep(0.5)
        answer = raw_request(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"too many admin connections" in answer
        # The ingest port does not care.
        assert flush_once(ingest, "adm_slow", ["id"], b"1\n") == Ack(1, 1)
        # A byte every 0.2 s never lets an idle timeout fire; the whole-request deadline
        # does. (Waiting at most 30 s: without the deadline they are never cut.)
        for c in slow:
            assert c.closed_by_proxy.wait(30), f"slow client not cut after {c.sent} bytes"
        assert all(c.sent < 100 for c in slow), [c.sent for c in slow]
    finally:
        for c in slow:
            c.close()
    assert wait_healthy(proxy)
    assert "event=admin_refused reason=max_connections" in proxy.log
    assert "event=admin_timeout" in proxy.log
    assert proxy.stop() == 0


def test_admin_connections_leave_file_descriptors_for_the_ingest_port(
        pg: PgServer, tmp_path: Path) -> None:
    # A cap far above what the process can hold: only the fd reserve stands in the way.
    proxy, ingest = start(pg, tmp_path, {"max_connections": 10000,
                                         "request_timeout_ms": 60000}, nofile=160)
    addr = admin_addr(proxy)
    make_table(pg, "adm_fd", "id int")
    held: list[socket.socket] = []
    try:
        for _ in range(200):
            s = socket.create_connection(addr, timeout=30)
            # Answered 200 and kept open (keep-alive), or 503 and closed.
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        answers = [s.recv(4096)[:12] for s in held]
        refused = answers.count(b"HTTP/1.1 503")
        assert answers.count(b"HTTP/1.1 200") + refused == len(held), answers
        assert refused > 0, "the proxy accepted more admin connections than it has fds for"
        # Ingest still accepts, and a flush commits (it needs an fd for the client).
        assert flush_once(ingest, "adm_fd", ["id"], b"5\n") == Ack(1, 1)
        assert pg.admin_sql("SELECT id FROM adm_fd") == [["5"]]
    finally:
        for s in held:
            s.close()
    assert "event=admin_refused reason=fd_reserve" in proxy.log
    assert "accept_failed" not in proxy.log
    # Once the proxy has seen those connections go, it admits again.
    assert wait_healthy(proxy)
    assert proxy.stop() == 0


def test_bearer_scheme_is_case_insensitive_and_two_authorization_headers_are_refused(
        pg: PgServer, tmp_path: Path) -> None:
    proxy, _ = start(pg, tmp_path, {"auth_token": TOKEN})
    addr = admin_addr(proxy)

    def get_metrics(*headers: str) -> bytes:
        lines = ["GET /metrics HTTP/1.1", "Host: x", "Connection: close", *headers, "", ""]
        return raw_request(addr, "\r\n".join(lines).encode())

    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        answer = get_metrics(f"Authorization: {scheme} {TOKEN}")
        assert answer.startswith(b"HTTP/1.1 200"), (scheme, answer[:200])
    assert get_metrics(f"Authorization: Basic {TOKEN}").startswith(b"HTTP/1.1 401")
    # Two headers, whichever order: neither wins.
    for pair in ((TOKEN, "wrong"), ("wrong", TOKEN), (TOKEN, TOKEN)):
        answer = get_metrics(*(f"Authorization: Bearer {t}" for t in pair))
        assert answer.startswith(b"HTTP/1.1 400"), (pair, answer[:200])
        assert b"more than one Authorization header" in answer
    assert proxy.stop() == 0
