"""The fault suite's tools: a Jepsen-style workload and its check, the proxy's RSS, a PostgreSQL
with synchronous_commit = on (optionally inside a network namespace), the namespace itself
(veth pair, iptables-legacy DROP rules for loss and blackholes) and a delaying TCP forwarder.

The rule every fault test asserts (`Workload.check`): every acknowledged row is in the table
exactly once, no row is there twice, nothing is there that was never sent, and every flush got
an answer (Ack, Error, or its connection closed), never silence.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lakebase_foreachwriter.ingest_protocol import Ack, FlushError, IngestConnection, ProxyError
from pgharness import PgServer
from proxyproc import SMALL_ASAN_QUARANTINE, ProxyProcess, free_port, proxy_sections, write_ini

# A client waits this long for an answer before calling it silence (the proxy's own timeouts
# in these tests are a few seconds; this only bounds a hang).
SILENCE_S = 120.0


# ---- PostgreSQL ----------------------------------------------------------------------------


class SyncPgServer(PgServer):
    """synchronous_commit = on: what PostgreSQL acknowledged survives `-m immediate` (with it
    off, an immediate stop drops commits the proxy already acknowledged, whatever it does)."""

    def _write_conf(self) -> None:
        super()._write_conf()
        conf = self.pgdata / "lbp_harness.conf"
        text = conf.read_text().replace("synchronous_commit = off", "synchronous_commit = on")
        self._write_pg_file(conf, text + self._extra_conf())

    def _extra_conf(self) -> str:
        return ""

    def postgres_pids(self) -> list[int]:
        """The postmaster and every backend (children of the postmaster)."""
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [pid, *(int(p) for p in out.split())]

    def pg_ctl(self, *args: str) -> str:
        return self._pg_ctl(*args)

    def wait_ready(self) -> None:
        self._wait_ready()


class Netns:
    """A network namespace joined to this one by a veth pair: 10.231.N.1 here, .2 inside.

    Faults are iptables-legacy DROP rules inside the namespace on its veth end, so nothing
    outside the namespace's own tables changes. `close()` removes everything."""

    def __init__(self) -> None:
        tag = f"lbpf{os.getpid() % 100000}"
        self.name, self.host_if, self.ns_if = tag, tag + "a", tag + "b"
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        n = next(i for i in range(1, 250) if f"10.231.{i}." not in used)
        self.host_addr, self.addr = f"10.231.{n}.1", f"10.231.{n}.2"
        self.subnet = f"10.231.{n}.0/30"
        self._rules: list[list[str]] = []

    def open(self) -> "Netns":
        self.close()  # leftovers of a killed run with the same pid
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            self.inside("ip", "addr", "add", f"{self.addr}/30", "dev", self.ns_if),
            self.inside("ip", "link", "set", self.ns_if, "up"),
            self.inside("ip", "link", "set", "lo", "up"),
        ]
        for cmd in steps:
            subprocess.run(cmd, check=True, capture_output=True)
        return self

    def inside(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def _rule(self, add: bool, rule: list[str]) -> None:
        subprocess.run(self.inside("iptables-legacy", "-I" if add else "-D", *rule),
                       check=True, capture_output=True)
        if add:
            self._rules.append(rule)
        else:
            self._rules.remove(rule)

    def blackhole(self, on: bool) -> None:
        """Every packet in and out of the namespace dropped (a dead host, a cut cable)."""
        for rule in (["INPUT", "-i", self.ns_if, "-j", "DROP"],
                     ["OUTPUT", "-o", self.ns_if, "-j", "DROP"]):
            self._rule(on, rule)

    def loss(self, percent: float, on: bool = True) -> None:
        p = f"{percent / 100:.4f}"
        for rule in (["INPUT", "-i", self.ns_if, "-m", "statistic", "--mode", "random",
                      "--probability", p, "-j", "DROP"],
                     ["OUTPUT", "-o", self.ns_if, "-m", "statistic", "--mode", "random",
                      "--probability", p, "-j", "DROP"]):
            self._rule(on, rule)

    def clear_rules(self) -> None:
        for rule in list(self._rules):
            self._rule(False, rule)

    def close(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self._rules.clear()


class NetnsPgServer(SyncPgServer):
    """The server runs inside net and listens on its veth address only; the harness reaches
    it for administration over its Unix socket, which no network fault touches."""

    def __init__(self, base_dir: Path, net: Netns) -> None:
        super().__init__(base_dir)
        self.net = net
        self.host = net.addr

    def _as_pg(self, cmd: list[str]) -> list[str]:
        return self.net.inside(*super()._as_pg(cmd))

    def _write_conf(self) -> None:
        super()._write_conf()
        conf = self.pgdata / "lbp_harness.conf"
        lines = [f"listen_addresses = '{self.net.addr}'" if ln.startswith("listen_addresses")
                 else ln for ln in conf.read_text().splitlines()]
        self._write_pg_file(conf, "\n".join(lines) + "\n")

    def _write_hba(self) -> None:
        super()._write_hba()
        hba = self.pgdata / "pg_hba.conf"
        self._write_pg_file(hba, hba.read_text()
                            + f"hostssl all {self.user} {self.net.subnet} scram-sha-256\n")


# ---- a forwarder that adds latency -----------------------------------------------------------


class DelayForwarder:
    """127.0.0.1:port -> target, each chunk delivered `delay_s` after it was read (in order, per
    direction). This kernel has no sch_netem, so latency comes from here."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        self.target, self.delay_s = target, delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        queue: list[tuple[float, bytes]] = []
        src.setblocking(False)
        eof = False
        try:
            while not self._stop.is_set() and not (eof and not queue):
                wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.2
                if not eof and select.select([src], [], [], wait)[0]:
                    data = src.recv(65536)
                    if not data:
                        eof = True
                    else:
                        queue.append((time.monotonic() + self.delay_s, data))
                elif eof:
                    time.sleep(wait)
                while queue and queue[0][0] <= time.monotonic():
                    dst.sendall(queue.pop(0)[1])
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


# ---- the proxy -----------------------------------------------------------------------------


def start_proxy(pg: PgServer, tmp_path: Path, upstream_host: str | None = None,
                upstream_port: int | None = None, ingest_port: int | None = None,
                **overrides: dict[str, object]) -> tuple[ProxyProcess, str]:
    """A proxy in front of pg with the short timeouts the fault tests need (overridable)."""
    port = ingest_port or free_port()
    sections = proxy_sections(pg, port)
    sections["upstream"].update(keepalive_idle_s=1, keepalive_interval_s=1, keepalive_count=2,
                                tcp_user_timeout_ms=2000)
    if upstream_host:
        sections["upstream"].update(host=upstream_host, sslmode="verify-ca")
    if upstream_port:
        sections["upstream"]["port"] = upstream_port
    sections["pool"].update(connect_timeout_ms=1000, login_timeout_ms=3000,
                            query_timeout_ms=60000, reconnect_base_ms=50,
                            reconnect_max_ms=500, stall_timeout_ms=1500)
    sections["batch"] = {"acquire_timeout_ms": 30000}
    sections["ingest"].update(max_flush_bytes=1 << 20, client_buffer_bytes=1 << 20,
                               global_buffer_bytes=8 << 20)
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    ini = write_ini(tmp_path / f"proxy-{port}.ini", sections)
    proxy = ProxyProcess(ini, {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password,
                               **SMALL_ASAN_QUARANTINE})
    proxy.wait_log(r"event=listening")
    return proxy, f"127.0.0.1:{port}"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """The proxy's resident memory, sampled every 0.2 s until stopped; `peak` and `first`."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.proxy, self.first, self.peak = proxy, rss_bytes(proxy.proc.pid), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self.proxy.proc.pid))

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)


def wait_for(pred, timeout: float, what, every: float = 0.1) -> None:
    """Polls pred until true; what (a string, or a callable giving one) names it on failure."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: "
                                 f"{what() if callable(what) else what}")
        time.sleep(every)


def admin_status(proxy: ProxyProcess, path: str) -> int:
    with contextlib.suppress(OSError):
        return proxy.admin_get(path, timeout=5)[0]
    return 0


# ---- the workload --------------------------------------------------------------------------


@dataclass
class ClientLog:
    acked: list[int] = field(default_factory=list)      # unit numbers acknowledged
    failed: list[int] = field(default_factory=list)     # answered with an error
    cut: list[int] = field(default_factory=list)        # connection closed before an answer
    silent: list[int] = field(default_factory=list)     # no answer within SILENCE_S
    errors: list[str] = field(default_factory=list)


class Workload:
    """`clients` threads, each sending units of `rows` rows (ids unique over the run) with up
    to `depth` flushes in flight, reconnecting whenever its connection ends, until stopped."""

    def __init__(self, addr: str, table: str, clients: int = 4, rows: int = 20,
                 depth: int = 8) -> None:
        self.addr, self.table, self.rows, self.depth = addr, table, rows, depth
        self.logs = [ClientLog() for _ in range(clients)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(clients)]

    def ids(self, client: int, unit: int) -> range:
        base = (client * 1_000_000 + unit) * self.rows
        return range(base, base + self.rows)

    def start(self) -> "Workload":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(SILENCE_S + 30)
        assert not any(t.is_alive() for t in self._threads), "a client thread hangs"

    def acked_units(self) -> int:
        return sum(len(log.acked) for log in self.logs)

    def _client(self, i: int) -> None:
        log, unit = self.logs[i], 0
        while not self._stop.is_set():
            try:
                conn = IngestConnection(self.addr, client_name=f"fault-{i}", timeout=SILENCE_S)
                conn.open(self.table, "insert", ["id"])
            except (OSError, ProxyError, Exception) as e:  # noqa: BLE001 - the proxy is down
                log.errors.append(f"connect: {e!r}")
                time.sleep(0.2)
                continue
            unit = self._session(conn, i, log, unit)

    def _session(self, conn: IngestConnection, i: int, log: ClientLog, unit: int) -> int:
        pending: list[int] = []
        try:
            while not self._stop.is_set() or pending:
                while not self._stop.is_set() and len(pending) < self.depth:
                    body = "".join(f"{n}\n" for n in self.ids(i, unit)).encode()
                    conn.send_rows(body)
                    conn.flush()
                    pending.append(unit)
                    unit += 1
                if not pending:
                    break
                answer = conn.read_answer()
                u = pending.pop(0)
                if isinstance(answer, Ack) and answer.rows == self.rows:
                    log.acked.append(u)
                elif isinstance(answer, FlushError):
                    log.failed.append(u)
                else:
                    log.errors.append(f"unit {u}: {answer!r}")
            conn.close()
        except socket.timeout:
            log.silent.extend(pending)
            conn.abort()
        except ProxyError as e:
            log.errors.append(f"error {e.sqlstate}")
            log.cut.extend(pending)  # after an Error nothing of the session commits
            conn.abort()
        except Exception as e:  # noqa: BLE001 - the connection ended: its units are unknown
            log.errors.append(repr(e))
            log.cut.extend(pending)
            conn.abort()
        return unit

    def check(self, pg: PgServer) -> dict[str, int]:
        """The Jepsen rule on the table; returns counts for the test's own assertions."""
        rows = pg.admin_sql(f"SELECT id, count(*) FROM {self.table} GROUP BY id")
        count = {int(r[0]): int(r[1]) for r in rows}
        twice = [i for i, n in count.items() if n != 1]
        assert not twice, f"rows present more than once: {twice[:10]}"
        missing, silent, sent = [], 0, set()
        for c, log in enumerate(self.logs):
            silent += len(log.silent)
            for u in log.acked:
                missing += [i for i in self.ids(c, u) if i not in count]
            for u in log.acked + log.failed + log.cut + log.silent:
                sent.update(self.ids(c, u))
        assert not missing, f"acknowledged rows missing: {len(missing)}, e.g. {missing[:10]}"
        assert silent == 0, f"{silent} flushes never answered"
        strangers = [i for i in count if i not in sent]
        assert not strangers, f"rows nobody sent: {strangers[:10]}"
        return {"acked": self.acked_units(), "rows": len(count),
                "failed": sum(len(lg.failed) for lg in self.logs),
                "cut": sum(len(lg.cut) for lg in self.logs)}


@contextlib.contextmanager
def running(workload: Workload, proxy: ProxyProcess) -> Iterator[RssSampler]:
    rss = RssSampler(proxy)
    workload.start()
    try:
        yield rss
    finally:
        workload.stop()
        rss.stop()


def wait_more_acks(work: "Workload", what: str, more: int = 20, timeout: float = 60) -> None:
    """The workload gets `more` acknowledgements beyond what it has now."""
    before = work.acked_units()
    wait_for(lambda: work.acked_units() > before + more, timeout, what)


def finish(work: "Workload", rss: RssSampler | None, proxy: ProxyProcess, pg: PgServer,
           addr: str, table: str, rss_limit: int) -> dict[str, int]:
    """The Jepsen rule, the memory bound, a healthy proxy, a clean stop; the counts."""
    counts = work.check(pg)
    if rss is not None:
        assert_rss_within(rss, rss_limit)
    assert_healthy_after(proxy, pg, addr, table)
    assert proxy.stop() == 0
    return counts


def assert_healthy_after(proxy: ProxyProcess, pg: PgServer, addr: str, table: str) -> None:
    """The proxy answers /healthz, becomes ready, and commits a new flush."""
    assert admin_status(proxy, "/healthz") == 200
    wait_for(lambda: admin_status(proxy, "/readyz") == 200, 60, "/readyz 200 again")
    marker = 2_000_000_000 + random.randrange(1_000_000)
    conn = IngestConnection(addr, client_name="after", timeout=60)
    conn.open(table, "insert", ["id"])
    conn.send_rows(f"{marker}\n".encode())
    conn.flush()
    assert conn.read_answer() == Ack(1, 1)
    conn.close()
    assert pg.admin_sql(f"SELECT count(*) FROM {table} WHERE id = {marker}") == [["1"]]


def make_table(pg: PgServer, name: str) -> None:
    pg.admin_sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigint); "
                 f"GRANT ALL ON {name} TO {pg.user}")


def assert_rss_within(rss: RssSampler, limit_bytes: int) -> None:
    grown = rss.peak - rss.first
    assert grown <= limit_bytes, (f"proxy RSS grew {grown >> 20} MiB (from {rss.first >> 20} "
                                  f"to {rss.peak >> 20}), over {limit_bytes >> 20} MiB")
