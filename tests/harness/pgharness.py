#!/usr/bin/env python3
"""Throwaway PostgreSQL 15 for the tests, configured like Lakebase: TLS on, SCRAM-SHA-256 only."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

DEFAULT_PGBIN = "/usr/lib/postgresql/15/bin"
HOST = "127.0.0.1"
TEST_ROLE = "lbp_test"
TEST_DB = "lbp_test"
SUPERUSER = "postgres"
OS_USER = "postgres"  # PostgreSQL refuses to run as root; we become this user instead.
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535.lock".
MAX_SOCKDIR_LEN = 80


class HarnessError(RuntimeError):
    """A harness step failed; the message carries the command's stderr or the server log."""


def find_pgbin() -> str:
    """The server binaries: `pg_config --bindir` when it points at them, else Debian's path."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        bindir = out.stdout.strip()
        if os.path.exists(os.path.join(bindir, "pg_ctl")):
            return bindir
    return DEFAULT_PGBIN


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def find_free_port(ipv6: bool) -> int:
    """A port free on 127.0.0.1 (and ::1 when used); the server may still race us for it."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind((HOST, 0))
            port = s4.getsockname()[1]
            if not ipv6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise HarnessError("no free loopback port found")


def _as_root() -> bool:
    return os.geteuid() == 0


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _make_traversable(path: Path) -> None:
    """As root, let the postgres user walk down to `path` (pytest makes 0700 temp dirs)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            os.chmod(p, (mode & 0o7777) | 0o001)


@contextlib.contextmanager
def _dir_lock(base: Path) -> Iterator[None]:
    """Serialises start/stop/restart of one directory; other directories run in parallel."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".harness.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class PgServer:
    """One PostgreSQL cluster under `base_dir`: data/, sock/, certs/, postgres.log, harness.env."""

    def __init__(self, base_dir: str | os.PathLike[str], ssl: bool = True, port: int | None = None):
        self.base_dir = Path(base_dir).resolve()
        self.ssl = ssl
        self.port = port
        self.host = HOST
        self.dbname = TEST_DB
        self.user = TEST_ROLE
        self.password = secrets.token_urlsafe(18)  # 24 url-safe characters
        self.pgbin = find_pgbin()
        self.ipv6 = ipv6_loopback_available()
        self.pgdata = self.base_dir / "data"
        self.certdir = self.base_dir / "certs"
        self.logfile = self.base_dir / "postgres.log"
        self.sockdir = self.base_dir / "sock"  # replaced by a short /tmp dir in start() if too long
        self.ca_file = self.certdir / "ca.crt"
        self.ca_key = self.certdir / "ca.key"
        self.untrusted_ca_file = self.certdir / "untrusted-ca.crt"
        self.server_cert = self.certdir / "server.crt"
        self.server_key = self.certdir / "server.key"

    # ---- life cycle -------------------------------------------------------------------------

    def start(self) -> "PgServer":
        t0 = time.monotonic()
        with _dir_lock(self.base_dir):
            self._wipe_leftovers()
            self.sockdir = self._choose_sockdir()
            self._prepare_dirs()
            if self.ssl:
                self._make_certs()
            self._initdb()
            self._write_hba()
            self._start_on_free_port()
            self._create_test_role()
            self._write_env_files()
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, keep: bool = False) -> None:
        """Fast shutdown; removes everything but postgres.log unless keep=True."""
        with _dir_lock(self.base_dir):
            if self.pgdata.exists() and self.is_running():
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
            if not keep:
                self._remove_state()

    def restart(self) -> None:
        """Fast restart on the same port (existing connections are terminated)."""
        with _dir_lock(self.base_dir):
            self._pg_ctl("restart", "-m", "fast", "-w", "-t", "30", "-l", str(self.logfile))
            self._wait_ready()

    def halt(self) -> None:
        """Fast shutdown, keeping the cluster, so that resume() brings it back on the same port."""
        with _dir_lock(self.base_dir):
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")

    def resume(self) -> None:
        with _dir_lock(self.base_dir):
            self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.logfile))
            self._wait_ready()

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        res = subprocess.run(self._as_pg([self._bin("pg_ctl"), "status", "-D", str(self.pgdata)]),
                             capture_output=True, text=True, cwd=self.base_dir)
        return res.returncode == 0

    # ---- helpers for tests ------------------------------------------------------------------

    def dsn(self, **overrides: object) -> str:
        """libpq conninfo for the test role; keyword overrides replace or add parameters."""
        params: dict[str, object] = {
            "host": self.host, "port": self.port, "dbname": self.dbname,
            "user": self.user, "password": self.password,
        }
        if self.ssl:
            params.update(sslmode="verify-full", sslrootcert=str(self.ca_file))
        else:
            params["sslmode"] = "disable"
        params.update(overrides)
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in params.items() if v is not None)

    def admin_sql(self, sql: str, dbname: str = TEST_DB) -> list[list[str]]:
        """Runs SQL as the superuser over the private Unix socket; rows of text fields."""
        conninfo = (f"host={_conninfo_value(self.sockdir)} port={self.port} "
                    f"user={SUPERUSER} dbname={dbname} sslmode=disable")
        cmd = [self._bin("psql"), "-X", "-A", "-t", "-q", "-F", FIELD_SEP, "-R", RECORD_SEP,
               "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base_dir)
        if res.returncode != 0:
            raise HarnessError(f"admin_sql failed ({res.returncode}): {sql!r}\n{res.stderr.strip()}")
        out = res.stdout.rstrip("\n")
        if not out:
            return []
        return [rec.split(FIELD_SEP) for rec in out.split(RECORD_SEP)]

    def set_password(self, password: str) -> None:
        self.admin_sql(f"ALTER ROLE {TEST_ROLE} PASSWORD {_sql_literal(password)}")
        self.password = password
        self._write_env_files()

    def env(self) -> dict[str, str]:
        """The harness.env variables (libpq's PG* names plus LBP_TEST_*)."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGSSLMODE": "verify-full" if self.ssl else "disable",
            "PGSSLROOTCERT": str(self.ca_file),
            "LBP_TEST_UNTRUSTED_CA": str(self.untrusted_ca_file),
            "LBP_TEST_SOCKDIR": str(self.sockdir),
            "LBP_TEST_SSL": "on" if self.ssl else "off",
            "LBP_TEST_PGDATA": str(self.pgdata),
            "LBP_TEST_PGBIN": self.pgbin,
            "LBP_TEST_IPV6": "on" if self.ipv6 else "off",
        }

    @classmethod
    def from_dir(cls, base_dir: str | os.PathLike[str]) -> "PgServer":
        """Reattaches to a server started earlier (by another process) from its harness.json."""
        base = Path(base_dir).resolve()
        data = json.loads((base / "harness.json").read_text())
        srv = cls(base, ssl=data["LBP_TEST_SSL"] == "on", port=int(data["PGPORT"]))
        srv.password = data["PGPASSWORD"]
        srv.sockdir = Path(data["LBP_TEST_SOCKDIR"])
        srv.pgbin = data["LBP_TEST_PGBIN"]
        srv.ipv6 = data["LBP_TEST_IPV6"] == "on"
        return srv

    # ---- internals --------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return os.path.join(self.pgbin, name)

    def _as_pg(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", OS_USER, "--", *cmd] if _as_root() else cmd

    def _run(self, cmd: list[str], as_pg: bool = False) -> str:
        full = self._as_pg(cmd) if as_pg else cmd
        res = subprocess.run(full, capture_output=True, text=True, cwd=self.base_dir)
        if res.returncode != 0:
            raise HarnessError(f"{' '.join(full)} failed ({res.returncode}):\n"
                               f"{res.stderr.strip()}\n{res.stdout.strip()}")
        return res.stdout

    def _pg_ctl(self, *args: str) -> str:
        try:
            return self._run([self._bin("pg_ctl"), *args, "-D", str(self.pgdata)], as_pg=True)
        except HarnessError as exc:
            raise HarnessError(f"{exc}\n--- {self.logfile} (tail) ---\n{self._log_tail()}") from None

    def _log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _choose_sockdir(self) -> Path:
        sockdir = self.base_dir / "sock"
        if len(str(sockdir)) <= MAX_SOCKDIR_LEN:
            return sockdir
        return Path(tempfile.mkdtemp(prefix="lbp-pg-", dir="/tmp"))

    def _wipe_leftovers(self) -> None:
        """A crashed earlier run may have left a server running here: stop it, then start clean."""
        old_sockdir = None
        with contextlib.suppress(OSError, KeyError, ValueError):
            old_sockdir = json.loads((self.base_dir / "harness.json").read_text())["LBP_TEST_SOCKDIR"]
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            try:
                self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "10")
            except HarnessError:
                _kill_postmaster(pidfile)
        self._remove_state(extra_sockdir=old_sockdir)

    def _remove_state(self, extra_sockdir: str | None = None) -> None:
        for p in (self.pgdata, self.certdir, self.base_dir / "sock"):
            shutil.rmtree(p, ignore_errors=True)
        for sd in {str(self.sockdir), extra_sockdir}:
            if sd and Path(sd).name.startswith("lbp-pg-"):
                shutil.rmtree(sd, ignore_errors=True)
        for f in ("harness.env", "harness.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.base_dir / f).unlink()

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.pgdata, self.sockdir, self.certdir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.pgdata, 0o700)
        os.chmod(self.certdir, 0o755)
        self.logfile.touch()
        if _as_root():
            _make_traversable(self.base_dir)
            _make_traversable(self.sockdir)
            pw = pwd.getpwnam(OS_USER)
            for p in (self.pgdata, self.sockdir, self.certdir, self.logfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def _make_certs(self) -> None:
        """CA, server cert for localhost + 127.0.0.1 (not ::1, on purpose), unrelated CA."""
        d = self.certdir
        ext = d / "server.ext"
        ext.write_text("basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        key_opts = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        procs = [
            subprocess.Popen(["openssl", "req", "-x509", *key_opts, "-days", "3650",
                              "-subj", "/CN=lbp test CA", *ca_ext,
                              "-keyout", str(self.ca_key), "-out", str(self.ca_file)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            subprocess.Popen(["openssl", "req", "-x509", *key_opts, "-days", "3650",
                              "-subj", "/CN=lbp untrusted CA", *ca_ext,
                              "-keyout", str(d / "untrusted-ca.key"),
                              "-out", str(self.untrusted_ca_file)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            subprocess.Popen(["openssl", "req", "-new", *key_opts, "-subj", "/CN=localhost",
                              "-keyout", str(self.server_key), "-out", str(d / "server.csr")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        ]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise HarnessError(f"openssl failed: {err.decode(errors='replace')}")
        self._run(["openssl", "x509", "-req", "-in", str(d / "server.csr"),
                   "-CA", str(self.ca_file), "-CAkey", str(self.ca_key),
                   "-set_serial", str(secrets.randbits(63)), "-days", "3650",
                   "-extfile", str(ext), "-out", str(self.server_cert)])
        for f in (self.ca_file, self.untrusted_ca_file, self.server_cert):
            os.chmod(f, 0o644)
        os.chmod(self.server_key, 0o600)
        if _as_root():
            pw = pwd.getpwnam(OS_USER)
            os.chown(self.server_key, pw.pw_uid, pw.pw_gid)

    def _initdb(self) -> None:
        self._run([self._bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
                   "--auth-local=trust", "--auth-host=reject", "--no-sync",
                   "-E", "UTF8", "--locale=C"], as_pg=True)
        with open(self.pgdata / "postgresql.conf", "a") as fh:
            fh.write("\n# lakebase-proxy test harness\ninclude 'lbp_harness.conf'\n")

    def _write_conf(self) -> None:
        listen = "127.0.0.1,::1" if self.ipv6 else "127.0.0.1"
        lines = [
            f"listen_addresses = '{listen}'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.sockdir}'",
            "password_encryption = 'scram-sha-256'",
            "max_connections = 300",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "shared_buffers = '128MB'",
            "logging_collector = off",
            "log_connections = on",
        ]
        if self.ssl:
            lines += ["ssl = on",
                      f"ssl_cert_file = '{self.server_cert}'",
                      f"ssl_key_file = '{self.server_key}'",
                      f"ssl_ca_file = '{self.ca_file}'"]
        else:
            lines.append("ssl = off")
        self._write_pg_file(self.pgdata / "lbp_harness.conf", "\n".join(lines) + "\n")

    def _write_hba(self) -> None:
        kind = "hostssl" if self.ssl else "host"
        hba = ("# superuser administration only through the private socket directory\n"
               "local all all trust\n"
               "# the test role only over TCP, only with SCRAM (and TLS unless --no-ssl)\n"
               f"{kind} all {TEST_ROLE} 127.0.0.1/32 scram-sha-256\n"
               f"{kind} all {TEST_ROLE} ::1/128 scram-sha-256\n")
        self._write_pg_file(self.pgdata / "pg_hba.conf", hba)

    def _write_pg_file(self, path: Path, text: str) -> None:
        path.write_text(text)
        os.chmod(path, 0o600)
        if _as_root():
            pw = pwd.getpwnam(OS_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _start_on_free_port(self) -> None:
        """Starts the server; retries with another port if someone took ours meanwhile."""
        fixed = self.port is not None
        for attempt in range(5):
            if not fixed:
                self.port = find_free_port(self.ipv6)
            self._write_conf()
            try:
                self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.logfile))
                break
            except HarnessError as exc:
                if fixed or attempt == 4 or "could not" not in str(exc):
                    raise
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        cmd = [self._bin("pg_isready"), "-q", "-h", str(self.sockdir), "-p", str(self.port),
               "-U", SUPERUSER, "-d", "postgres"]
        while subprocess.run(cmd, cwd=self.base_dir).returncode != 0:
            if time.monotonic() > deadline:
                raise HarnessError(f"server not ready after {timeout}s\n{self._log_tail()}")
            time.sleep(0.05)

    def _create_test_role(self) -> None:
        self.admin_sql(f"CREATE ROLE {TEST_ROLE} LOGIN PASSWORD {_sql_literal(self.password)}",
                       dbname="postgres")
        self.admin_sql(f"CREATE DATABASE {TEST_DB} OWNER {TEST_ROLE}", dbname="postgres")

    def _write_env_files(self) -> None:
        env = self.env()
        _write_atomic(self.base_dir / "harness.env", "".join(f"{k}={v}\n" for k, v in env.items()))
        _write_atomic(self.base_dir / "harness.json", json.dumps(env, indent=2) + "\n")


def _conninfo_value(value: object) -> str:
    s = str(value)
    if s and not any(c in s for c in " '\\"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _kill_postmaster(pidfile: Path) -> None:
    """Last resort when pg_ctl cannot stop a leftover server: SIGKILL its postmaster, but only
    if that pid still runs postgres on this data directory (pids get reused)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if str(pidfile.parent).encode() not in cmdline:
            return
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            os.kill(pid, 0)  # raises once the process is gone
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="(re)create and start a server in DIR, print env")
    p_start.add_argument("dir")
    p_start.add_argument("--no-ssl", action="store_true", help="ssl=off, plain host lines")
    for name, text in (("stop", "stop and wipe"), ("restart", "fast restart, same port"),
                       ("env", "print harness.env")):
        sub.add_parser(name, help=text).add_argument("dir")
    p_sql = sub.add_parser("sql", help="run SQL as superuser, print rows")
    p_sql.add_argument("dir")
    p_sql.add_argument("sql")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "start":
            srv = PgServer(args.dir, ssl=not args.no_ssl).start()
            sys.stdout.write("".join(f"{k}={v}\n" for k, v in srv.env().items()))
            print(f"# started in {srv.startup_seconds:.2f}s", file=sys.stderr)
        elif args.cmd == "stop":
            # Without harness.json (a start that died half-way) the data dir may still hold a server.
            has_state = (Path(args.dir) / "harness.json").exists()
            (PgServer.from_dir(args.dir) if has_state else PgServer(args.dir)).stop()
        elif args.cmd == "restart":
            PgServer.from_dir(args.dir).restart()
        elif args.cmd == "env":
            sys.stdout.write((Path(args.dir) / "harness.env").read_text())
        elif args.cmd == "sql":
            for row in PgServer.from_dir(args.dir).admin_sql(args.sql):
                print("|".join(row))
    except (HarnessError, OSError) as exc:
        print(f"pgharness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
