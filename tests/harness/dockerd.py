"""A Docker engine for the compose test: one that already answers, or a dockerd started here.

The engine is found at LBP_DOCKER_HOST (default unix:///run/lakebase-proxy-docker/docker.sock).
When nothing answers there, a dockerd is started as the machines of this project run it (vfs
storage, no iptables, no default bridge: every container uses the host's network), with its
data root (images and build cache) under LBP_DOCKER_CACHE, default
/var/cache/lakebase-proxy/docker, which outlives the run so that the next run on this machine
builds from cache. The dockerd started here is stopped (by its pid) when the last run using it
is done, and its run directory removed; an engine found running is left alone.

Runs on one machine share the engine: each holds a shared lock on DIR/users.lock while it uses
it, and the run that started it takes the exclusive lock before stopping it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Optional

RUN_DIR = Path("/run/lakebase-proxy-docker")
DEFAULT_HOST = f"unix://{RUN_DIR}/docker.sock"
DEFAULT_CACHE = Path("/var/cache/lakebase-proxy/docker")
START_TIMEOUT_S = 60
# How long the run that started the engine waits for other runs still using it.
LAST_USER_WAIT_S = 30 * 60


class DockerError(RuntimeError):
    pass


def answers(host: str) -> bool:
    """True when a Docker engine answers at host."""
    res = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                         env={**os.environ, "DOCKER_HOST": host}, capture_output=True,
                         text=True, timeout=30)
    return res.returncode == 0 and bool(res.stdout.strip())


class Dockerd:
    """with Dockerd() as engine: engine.env has DOCKER_HOST for docker and docker-compose."""

    def __init__(self) -> None:
        self.host = os.environ.get("LBP_DOCKER_HOST", DEFAULT_HOST)
        self.cache = Path(os.environ.get("LBP_DOCKER_CACHE", DEFAULT_CACHE))
        self.run_dir = RUN_DIR
        self.pid: Optional[int] = None  # of the dockerd started here
        self._users: Optional[IO[str]] = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def __enter__(self) -> "Dockerd":
        self.cache.mkdir(parents=True, exist_ok=True)
        self._users = open(self.cache.parent / "docker-users.lock", "w")
        fcntl.flock(self._users, fcntl.LOCK_SH)
        try:
            with open(self.cache.parent / "docker-start.lock", "w") as start_lock:
                fcntl.flock(start_lock, fcntl.LOCK_EX)
                if not answers(self.host):
                    self._start()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.pid is not None:
                self._stop_when_last()
        finally:
            self._release()

    def _release(self) -> None:
        if self._users is not None:
            self._users.close()  # drops the lock
            self._users = None

    def _start(self) -> None:
        if self.host != DEFAULT_HOST:
            raise DockerError(f"no Docker engine answers at LBP_DOCKER_HOST={self.host}")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise DockerError("dockerd is not installed (scripts/setup.sh installs docker.io "
                              "when LBP_WITH_TESTS=1)")
        if os.geteuid() != 0:
            raise DockerError("starting dockerd needs root; or point LBP_DOCKER_HOST at a "
                              "running engine")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.run_dir / "dockerd.log"
        cmd = [dockerd, "--storage-driver=vfs", f"--data-root={self.cache}",
               f"--exec-root={self.run_dir}/exec", "-H", self.host,
               "--pidfile", str(self.run_dir / "dockerd.pid"),
               "--iptables=false", "--bridge=none"]
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        self.pid = proc.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if answers(self.host):
                return
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-3000:]
        self._stop()
        raise DockerError(f"dockerd did not start ({' '.join(cmd)}); its log:\n{tail}")

    def _stop_when_last(self) -> None:
        """Waits until no other run holds the engine, then stops it."""
        assert self._users is not None
        deadline = time.monotonic() + LAST_USER_WAIT_S
        while True:
            try:
                fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # still in use: the last run's engine now; leave it running
                time.sleep(2)
        self._stop()

    def _stop(self) -> None:
        assert self.pid is not None
        try:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(300):
                if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.pid = None
        unmount_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def unmount_under(path: Path) -> None:
    """Unmounts what dockerd left mounted below path (its network namespace file), deepest
    first, so that the directory can be removed."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
