"""The admin endpoint: /metrics as Prometheus text that moves with traffic, /healthz, /readyz.

Metrics are checked with promtool (Prometheus's own linter, from Debian's prometheus package;
scripts/setup.sh extracts it) and parsed here; what they say is compared with what the clients
were told and what landed in the table.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import promtext
from ingestutil import flush_once
import pytest
from lakebase_foreachwriter.ingest_protocol import Ack, FlushError, IngestConnection
from pgharness import PgServer
from proxyproc import ProxyProcess, proxy_binary, start_proxy, write_ini

ROOT = Path(__file__).resolve().parents[1]


def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".tools" / "bin" / "promtool")
    if not os.access(found, os.X_OK):
        pytest.fail("promtool is missing: run scripts/setup.sh")
    return found


def check_with_promtool(text: str) -> None:
    res = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, f"promtool: {res.stdout}{res.stderr}\n---\n{text}"


def metric(samples, name: str, **labels: str) -> float:
    return promtext.value(samples, name, **labels)


def scrape(proxy: ProxyProcess) -> tuple[str, dict]:
    status, body, headers = proxy.admin_get("/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return body, promtext.parse(body)


def make_table(pg: PgServer, name: str, ddl: str) -> None:
    q = '"' + name.replace('"', '""') + '"'
    pg.admin_sql(f'DROP TABLE IF EXISTS {q}; CREATE TABLE {q} ({ddl}); '
                 f'GRANT ALL ON {q} TO {pg.user}')


def rows_text(rows) -> bytes:
    return "".join("\t".join(r) + "\n" for r in rows).encode()


def commits_one_row(pg: PgServer, addr: str, table: str) -> None:
    make_table(pg, table, "id int")
    assert flush_once(addr, table, ["id"], b"7\n") == Ack(1, 1)
    assert pg.admin_sql(f"SELECT id FROM {table}") == [["7"]]


def test_metrics_are_valid_prometheus_text_and_count_the_traffic(pg: PgServer,
                                                                 tmp_path: Path) -> None:
    proxy, addr = start_proxy(pg, tmp_path, pool={"min_size": 2, "max_size": 4})
    make_table(pg, "m_ev", "id int PRIMARY KEY, s text")
    # A table name that needs escaping in a label value.
    make_table(pg, 'm "q"\\x', "id int")
    text, before = scrape(proxy)
    check_with_promtool(text)
    assert metric(before, "lbp_build_info", version=re.search(
        r'version="([^"]+)"', text).group(1)) == 1
    assert metric(before, "lbp_rows_committed_total", table="public.m_ev", mode="insert") == 0

    c = IngestConnection(addr, client_name="metrics")
    c.open("m_ev", "insert", ["id", "s"], schema="public")
    for f in range(5):
        c.send_rows(rows_text([(str(f * 100 + i), "ok") for i in range(100)]))
        c.flush()
    # A value PostgreSQL refuses (22P02): one flush of 3 rows fails, on the server.
    c.send_rows(rows_text([("9001", "a"), ("x", "b"), ("9003", "c")]))
    c.flush()
    answers = [c.read_answer() for _ in range(6)]
    assert answers[:5] == [Ack(i + 1, 100) for i in range(5)]
    assert isinstance(answers[5], FlushError) and answers[5].sqlstate == "22P02"
    q = IngestConnection(addr, client_name="quoted")
    q.open('m "q"\\x', "insert", ["id"])
    q.send_rows(b"1\n2\n")
    q.flush()
    assert q.read_answer() == Ack(1, 2)
    assert pg.admin_sql("SELECT count(*) FROM m_ev") == [["500"]]

    text, after = scrape(proxy)
    check_with_promtool(text)
    ev = {"table": "public.m_ev", "mode": "insert"}
    assert metric(after, "lbp_rows_committed_total", **ev) == 500
    assert metric(after, "lbp_flushes_committed_total", **ev) == 5
    assert metric(after, "lbp_flushes_failed_total", **ev) == 1
    assert metric(after, "lbp_rows_rejected_total", **ev) == 3
    assert metric(after, "lbp_rows_received_total", **ev) == 503
    assert metric(after, "lbp_bytes_committed_total", **ev) == len(
        rows_text([(str(i), "ok") for i in range(500)]))
    assert metric(after, "lbp_batches_total", **ev) >= 1
    assert metric(after, "lbp_rows_committed_total", table='m "q"\\x', mode="insert") == 2
    assert metric(after, "lbp_upstream_errors_total", sqlstate="22P02") >= 1
    assert metric(after, "lbp_clients") == 2
    assert metric(after, "lbp_flush_ack_seconds_count") == 7
    assert metric(after, "lbp_flush_ack_seconds_bucket", le="+Inf") == 7
    assert metric(after, "lbp_batch_rows_count") == promtext.total(after, "lbp_batches_total")
    assert metric(after, "lbp_batch_rows_sum") >= 502  # 500 good + the retried good rows
    open_conns = sum(metric(after, "lbp_upstream_connections", state=s)
                     for s in ("idle", "lent", "checking"))
    assert 2 <= open_conns <= 4
    assert metric(after, "lbp_upstream_logins_total") >= 2
    assert metric(after, "lbp_ready") == 1
    assert metric(after, "process_resident_memory_bytes") > 1 << 20
    c.close()
    q.close()
    assert proxy.stop() == 0, proxy.log


def test_readyz_follows_the_server_and_healthz_the_process(tmp_path: Path) -> None:
    own = PgServer(tmp_path / "pg").start()
    try:
        proxy, addr = start_proxy(own, tmp_path, pool={
            "min_size": 1, "max_size": 2, "reconnect_base_ms": 50, "reconnect_max_ms": 200})

        def wait_ready(code: int, timeout: float = 60) -> str:
            deadline = time.monotonic() + timeout
            while True:
                status, body, _ = proxy.admin_get("/readyz")
                if status == code:
                    return body
                assert time.monotonic() < deadline, f"/readyz stays {status}: {body}"
                time.sleep(0.1)

        assert wait_ready(200) == "ready\n"
        own.halt()
        body = wait_ready(503)
        assert body.startswith("not ready: ")
        assert proxy.admin_get("/healthz")[:2] == (200, "ok\n")
        _, m = scrape(proxy)
        assert metric(m, "lbp_ready") == 0
        assert metric(m, "lbp_upstream_connect_failures_total") >= 1 or "no upstream" in body
        own.resume()
        wait_ready(200)
        commits_one_row(own, addr, "r_ev")  # and it really is usable again
        assert proxy.stop() == 0, proxy.log
    finally:
        own.stop()


def test_readyz_is_unready_while_draining(pg: PgServer, tmp_path: Path) -> None:
    # A client that never flushes keeps the drain going until shutdown_timeout_s.
    proxy, addr = start_proxy(pg, tmp_path, server={"shutdown_timeout_s": 30})
    make_table(pg, "d_ev", "id int")
    c = IngestConnection(addr)
    c.open("d_ev", "insert", ["id"])
    c.send_rows(b"1\n")
    c.flush()
    assert c.read_answer() == Ack(1, 1)
    assert proxy.admin_get("/readyz")[0] == 200
    proxy.proc.send_signal(15)
    proxy.wait_log(r"action=drain")
    status, body, _ = proxy.admin_get("/readyz")
    # The session closes once answered; the process may already be gone.
    assert (status, body) == (503, "not ready: draining (stop signal received)\n")
    assert proxy.stop() == 0


def test_token_methods_paths_and_hostile_requests(pg: PgServer, tmp_path: Path) -> None:
    token = "s3cret-admin-token"
    proxy, addr = start_proxy(pg, tmp_path, env={"LAKEBASE_PROXY_ADMIN_AUTH_TOKEN": token})
    proxy.wait_log(r"event=admin_listening .*auth=token")
    assert proxy.admin_get("/metrics")[0] == 401
    assert proxy.admin_get("/metrics", token="wrong")[0] == 401
    assert proxy.admin_get("/metrics", token=token + "x")[0] == 401
    status, body, _ = proxy.admin_get("/metrics", token=token)
    assert status == 200 and "lbp_clients " in body
    assert proxy.admin_get("/healthz")[0] == 200  # probes need no token
    assert proxy.admin_get("/nope")[0] == 404
    host, port = proxy.admin_url.removeprefix("http://").rsplit(":", 1)

    def raw(payload: bytes) -> bytes:
        """Sends payload, returns all the answer; the server may hang up mid-request."""
        data = b""
        with socket.create_connection((host, int(port)), timeout=10) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    data += chunk
            except (ConnectionResetError, BrokenPipeError, OSError):
                pass
        return data

    assert raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").split(b"\r\n")[0] == \
        b"HTTP/1.1 405 Method Not Allowed"
    assert raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               ).split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert raw(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n"
               ).split(b" ")[1:2] in ([b"400"], [b"413"], [b"431"], [])
    raw(b"\x00\xff garbage \r\n\r\n" * 100)
    raw(b"GET /metrics HTTP/1.1\r\n")  # truncated
    # The daemon is fine and ingest unaffected.
    assert proxy.admin_get("/healthz")[0] == 200
    commits_one_row(pg, addr, "h_ev")
    assert token not in proxy.log
    assert proxy.stop() == 0, proxy.log


@pytest.mark.parametrize("listen,extra,error", [
    ("0.0.0.0:9187", {}, "[admin] auth_token"),
    ("unix:/tmp/admin.sock", {}, "must be host:port"),
    ("nonsense", {}, "[admin] listen"),
])
def test_admin_listen_is_checked(pg: PgServer, tmp_path: Path, listen, extra, error) -> None:
    ini = write_ini(tmp_path / "a.ini", {
        "upstream": {"host": pg.host, "user": pg.user, "sslmode": "verify-full",
                     "sslrootcert": pg.ca_file},
        "admin": {"listen": listen, **extra}})
    res = subprocess.run([str(proxy_binary()), "--config", str(ini)], capture_output=True,
                         text=True, timeout=30,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("LAKEBASE_PROXY_")})
    assert res.returncode == 1 and error in res.stderr, res.stderr


def test_admin_can_be_switched_off(pg: PgServer, tmp_path: Path) -> None:
    proxy, addr = start_proxy(pg, tmp_path, env={"LAKEBASE_PROXY_ADMIN_LISTEN": ""})
    assert "event=admin_listening" not in proxy.log
    assert proxy.stop() == 0
