"""Runs the lakebase-proxy binary for tests: writes its INI, starts it, reads its log, stops it."""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parents[2]


def proxy_binary() -> Path:
    """The build the tests run: $LBP_BUILD_DIR (scripts/test.sh sets it), else build-san, else build."""
    candidates = [os.environ.get("LBP_BUILD_DIR", ""), ROOT / "build-san", ROOT / "build"]
    for c in candidates:
        if c and (Path(c) / "lakebase-proxy").is_file():
            return Path(c) / "lakebase-proxy"
    raise FileNotFoundError("lakebase-proxy is not built: run scripts/setup.sh first")


def write_ini(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


_RUNNING: list["ProxyProcess"] = []


@atexit.register
def _kill_leftovers() -> None:
    """A test that failed before stopping its proxy must not leave it running."""
    for p in _RUNNING:
        if p.proc.poll() is None:
            p.proc.kill()


class ProxyProcess:
    """One proxy process; its stderr (the log) is collected line by line in a thread."""

    def __init__(self, config: Path | None, env: Mapping[str, str] | None = None,
                 args: list[str] | None = None, command: list[str] | None = None) -> None:
        """command replaces the binary: a wrapper such as docker/entrypoint.sh."""
        cmd = list(command) if command is not None else [str(proxy_binary())]
        self.config = config
        if config is not None:
            cmd += ["--config", str(config)]
        cmd += args or []
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEBASE_PROXY_")}
        # Each proxy gets its own admin port, so tests (and a proxy still draining) never
        # collide on the default 9187. A test that sets the admin address passes it in env.
        full_env["LAKEBASE_PROXY_ADMIN_LISTEN"] = f"127.0.0.1:{free_port()}"
        full_env.update(env or {})
        self.admin_listen = full_env["LAKEBASE_PROXY_ADMIN_LISTEN"]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _RUNNING.append(self)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def admin_url(self) -> str:
        """http://host:port of the admin endpoint, as the proxy logged it once bound."""
        m = self.wait_log(r"event=admin_listening .*addr=(\S+)")
        return f"http://{m.group(1)}"

    def admin_get(self, path: str, token: str | None = None,
                  timeout: float = 10.0) -> tuple[int, str, dict[str, str]]:
        """GET path from the admin endpoint: (status, body, headers); errors are answers too."""
        return http_get(self.admin_url + path, token, timeout)

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """How many log lines there are now: a `since` for wait_log and lines_since."""
        with self._cond:
            return len(self.lines)

    def lines_since(self, mark: int) -> list[str]:
        with self._cond:
            return self.lines[mark:]

    def wait_log(self, pattern: str, timeout: float = 30.0, since: int = 0) -> re.Match[str]:
        """The first log line matching pattern (regex) from line `since` on, waiting for it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = since
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and seen == len(self.lines):
                    raise AssertionError(f"no log line matching {pattern!r}; log:\n{self.log}")
                self._cond.wait(min(left, 0.2))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(5)
        return rc

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_get(url: str, token: str | None = None,
             timeout: float = 10.0) -> tuple[int, str, dict[str, str]]:
    """GET url, with a Bearer token if given: (status, body, headers); errors are answers too."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_sections(pg, ingest_port: int, **overrides: Mapping[str, object]
                   ) -> dict[str, dict[str, object]]:
    """A complete INI for a proxy in front of the harness server pg; overrides per section."""
    sections: dict[str, dict[str, object]] = {
        "upstream": {"host": pg.host, "port": pg.port, "dbname": pg.dbname, "user": pg.user,
                     "sslmode": "verify-full", "sslrootcert": pg.ca_file},
        "pool": {"min_size": 2, "max_size": 4},
        "ingest": {"listen": f"127.0.0.1:{ingest_port}"},
        "log": {"level": "info", "stats_period_s": 1},
    }
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    return sections


# For tests that measure the proxy's memory: AddressSanitizer keeps freed memory in a
# quarantine (256 MB by default), which would look like growth.
SMALL_ASAN_QUARANTINE = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "")
                         + ":quarantine_size_mb=8:thread_local_quarantine_size_kb=64"}


def start_proxy(pg, tmp_path: Path, env: Mapping[str, str] | None = None,
                **overrides: Mapping[str, object]) -> tuple[ProxyProcess, str]:
    """Starts a proxy in front of pg and waits until it listens; returns it and its address."""
    port = free_port()
    ini = write_ini(tmp_path / f"proxy-{port}.ini", proxy_sections(pg, port, **overrides))
    proxy = ProxyProcess(ini, {"LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password, **(env or {})})
    proxy.wait_log(r"event=listening")
    return proxy, f"127.0.0.1:{port}"
