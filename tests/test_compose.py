"""docker/ for real: the images built, the compose setup started, a Spark job through the proxy.

A Docker engine (tests/harness/dockerd.py: one that answers at LBP_DOCKER_HOST, or a dockerd
started here with its image cache under /var/cache/lakebase-proxy/docker), the Debian 12 base
image (scripts/docker-base.sh), then `docker-compose build` and `up` of docker/docker-compose.yml
with docker/docker-compose.test.yml: every service on the host's network at free loopback ports,
under a project name of its own, so that nothing leaves this machine and two runs can share it.

Where no Docker engine can run, set LBP_SKIP_DOCKER_TESTS to the reason: these tests are then
skipped with it. Without it, an engine that cannot start fails them (docs/deploy.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from lakebase_foreachwriter.ingest_protocol import Ack, IngestConnection
from proxyproc import free_port, http_get

import promtext

if os.environ.get("LBP_SKIP_DOCKER_TESTS"):
    pytest.skip(f"LBP_SKIP_DOCKER_TESTS: {os.environ['LBP_SKIP_DOCKER_TESTS']}",
                allow_module_level=True)

from dockerd import Dockerd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = [ROOT / "docker" / "docker-compose.yml", ROOT / "docker" / "docker-compose.test.yml"]
BASE_IMAGE = "lakebase-proxy-base:bookworm"
IMAGES = {"proxy": "lakebase-proxy:local", "postgres": "lakebase-proxy-postgres:local",
          "spark-job": "lakebase-proxy-spark-job:local"}
# Build stages, tagged so that `docker image prune` keeps their cache (see Stack.build).
STAGES = {"lakebase-proxy-stage-build:local": ("docker/Dockerfile", "build"),
          "lakebase-proxy-stage-venv:local": ("docker/Dockerfile.spark", "venv")}
PROXY_UID = 10001
# The image may add at most this much to its Debian base (issue 15).
MAX_PROXY_ADDED_BYTES = 50 * 10**6
JOB_SECONDS = 20
BUILD_TIMEOUT_S = 40 * 60


def extra_ca_certs() -> str:
    """CA certificates this host added to its trust store (a TLS-intercepting proxy's, where
    PyPI is reached through one): the builds that download from PyPI trust them too."""
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    return "".join(p.read_text() for p in certs)


class Stack:
    """One compose project: its environment (secrets, ports), and docker / docker-compose."""

    def __init__(self, engine: Dockerd, ca: Path) -> None:
        self.engine = engine
        self.ca = ca  # the certs service's CA, copied out once postgres is up
        self.project = "lbp-test-" + os.urandom(4).hex()
        self.secrets = {"LBP_DB_PASSWORD": os.urandom(12).hex(),
                        "LBP_INGEST_TOKEN": os.urandom(12).hex(),
                        "LBP_ADMIN_TOKEN": os.urandom(12).hex()}
        self.ports = {"LBP_PG_PORT": free_port(), "LBP_INGEST_PORT": free_port(),
                      "LBP_ADMIN_PORT": free_port()}
        self.env = {**engine.env, **self.secrets, **{k: str(v) for k, v in self.ports.items()},
                    "LBP_DEMO_DURATION": str(JOB_SECONDS),
                    "LBP_EXTRA_CA_CERTS": extra_ca_certs()}
        self.timings: dict[str, float] = {}

    def run(self, *cmd: str, timeout: float = 600, check: bool = True
            ) -> subprocess.CompletedProcess:
        res = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[:4])}... exited {res.returncode}:\n"
                                 f"{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
        return res

    def compose(self, *args: str, timeout: float = 600, check: bool = True
                ) -> subprocess.CompletedProcess:
        files = [a for f in COMPOSE_FILES for a in ("-f", str(f))]
        return self.run("docker-compose", "-p", self.project, *files, *args, timeout=timeout,
                        check=check)

    def timed(self, what: str, *cmd: str, timeout: float) -> None:
        start = time.monotonic()
        self.run(*cmd, timeout=timeout)
        self.timings[what] = time.monotonic() - start

    def build(self) -> None:
        self.timed("base image", str(ROOT / "scripts" / "docker-base.sh"), BASE_IMAGE,
                   timeout=BUILD_TIMEOUT_S)
        self.timed("compose build", "docker-compose", "-p", self.project,
                   *[a for f in COMPOSE_FILES for a in ("-f", str(f))], "build",
                   timeout=BUILD_TIMEOUT_S)
        # The legacy builder's cache is the build stages' images, untagged; tagged (from that
        # cache: nothing is rebuilt), they survive the prune of images older builds left.
        for tag, (dockerfile, target) in STAGES.items():
            self.run("docker", "build", "-q", "--network", "host", "--target", target,
                     "--build-arg", f"EXTRA_CA_CERTS={self.env['LBP_EXTRA_CA_CERTS']}",
                     "-f", dockerfile, "-t", tag, ".", timeout=BUILD_TIMEOUT_S)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def inspect(self, ref: str, fmt: str) -> str:
        return self.run("docker", "inspect", "-f", fmt, ref).stdout.strip()

    def wait_health(self, service: str, timeout: float = 120) -> str:
        cid = self.container(service)
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.inspect(cid, "{{.State.Health.Status}}")
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(1)
        return status

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def pg_connect(self) -> psycopg.Connection:
        """To the postgres service from this host: TLS verify-full against the certs
        service's CA, SCRAM, as the job's user."""
        return psycopg.connect(host="127.0.0.1", port=self.ports["LBP_PG_PORT"],
                               dbname="lbp_demo", user="lbp_demo",
                               password=self.secrets["LBP_DB_PASSWORD"], sslmode="verify-full",
                               sslrootcert=str(self.ca), autocommit=True)

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['LBP_ADMIN_PORT']}{path}"

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {kind: self.run("docker", *cmd, "--filter", label).stdout.split()
                for kind, cmd in [("containers", ["ps", "-aq"]),
                                  ("volumes", ["volume", "ls", "-q"]),
                                  ("networks", ["network", "ls", "-q"])]}


@pytest.fixture(scope="module")
def engine() -> Iterator[Dockerd]:
    with Dockerd() as d:
        yield d


@pytest.fixture(scope="module")
def stack(engine: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The images built and certs, postgres and the proxy up (healthy); down -v afterwards,
    and the images older builds left behind pruned (the cache of these stays)."""
    s = Stack(engine, tmp_path_factory.mktemp("compose") / "ca.crt")
    try:
        s.build()
        start = time.monotonic()
        s.compose("up", "-d", "proxy", timeout=300)
        s.timings["up (certs, postgres, proxy)"] = time.monotonic() - start
        s.run("docker", "cp", f"{s.container('postgres')}:/certs/ca.crt", str(s.ca))
        yield s
    finally:
        s.compose("down", "-v", "--timeout", "60", check=False, timeout=300)
        s.run("docker", "image", "prune", "-f", check=False)
        print(f"\ncompose test timings (s): "
              f"{ {k: round(v, 1) for k, v in s.timings.items()} }")


def image_size(stack: Stack, image: str) -> int:
    return int(stack.inspect(image, "{{.Size}}"))


# ---- the images ---------------------------------------------------------------------------------

def test_proxy_image_is_small_and_has_no_toolchain(stack: Stack) -> None:
    base, proxy = image_size(stack, BASE_IMAGE), image_size(stack, IMAGES["proxy"])
    sizes = {name: image_size(stack, image) for name, image in IMAGES.items()}
    print(f"\nimage sizes (MB): base {base / 1e6:.1f}, "
          + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sizes.items()))
    assert proxy - base <= MAX_PROXY_ADDED_BYTES, (base, proxy)
    # Built FROM the base: its layers are the image's first.
    base_layers = stack.inspect(BASE_IMAGE, "{{json .RootFS.Layers}}").strip("[]")
    assert stack.inspect(IMAGES["proxy"], "{{json .RootFS.Layers}}").startswith("[" + base_layers)
    # What runs is the binary and its libraries: no compiler, no headers, no package lists.
    res = stack.run("docker", "run", "--rm", "--network", "none", "--entrypoint", "sh",
                    IMAGES["proxy"], "-c",
                    "for t in cc gcc make cmake; do command -v $t; done; "
                    "find /usr/include /var/lib/apt/lists -type f | head -5; "
                    "lakebase-proxy --version", check=False)
    assert res.returncode == 0 and res.stdout.strip().splitlines() == \
        [stack.run("docker", "run", "--rm", "--network", "none", IMAGES["proxy"],
                   "--version").stdout.strip()], res.stdout + res.stderr


def test_images_carry_oci_labels_and_the_proxy_its_stop_signal(stack: Stack) -> None:
    for image in IMAGES.values():
        labels = stack.inspect(image, "{{json .Config.Labels}}")
        assert '"org.opencontainers.image.title"' in labels, (image, labels)
        assert '"org.opencontainers.image.licenses":"Apache-2.0"' in labels, (image, labels)
    assert stack.inspect(IMAGES["proxy"], "{{.Config.StopSignal}}") == "SIGTERM"


# ---- the proxy container -------------------------------------------------------------------------

def test_proxy_turns_healthy_as_non_root_on_a_read_only_root(stack: Stack) -> None:
    assert stack.wait_health("proxy") == "healthy", stack.logs("proxy")
    cid = stack.container("proxy")
    # The daemon itself is PID 1 (the entrypoint exec'd it), running as UID 10001: read on
    # this host, where the container's processes are ours to see.
    pid = int(stack.inspect(cid, "{{.State.Pid}}"))
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()  # type: ignore[union-attr]
    assert set(uids) == {str(PROXY_UID)}, status
    assert Path(f"/proc/{pid}/exe").resolve().name == "lakebase-proxy"
    assert stack.inspect(cid, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    res = stack.run("docker", "exec", cid, "sh", "-c", "touch /etc/lakebase-proxy/x /tmp/x",
                    check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr, res.stderr


def test_metrics_answer_with_the_token_and_refuse_without(stack: Stack) -> None:
    assert stack.wait_health("proxy") == "healthy"
    status, body, _ = http_get(stack.admin_url("/metrics"))
    assert status == 401, body
    status, _, _ = http_get(stack.admin_url("/metrics"), token="not-" + stack.secrets[
        "LBP_ADMIN_TOKEN"])
    assert status == 401
    status, body, _ = http_get(stack.admin_url("/metrics"), token=stack.secrets["LBP_ADMIN_TOKEN"])
    assert status == 200 and "lbp_upstream_connections" in body, body[:500]
    assert http_get(stack.admin_url("/readyz"))[0] == 200  # a TLS connection to postgres


# ---- the Spark job through it --------------------------------------------------------------------

def test_spark_job_streams_through_the_proxy(stack: Stack) -> None:
    start = time.monotonic()
    res = stack.compose("run", "--rm", "spark-job", timeout=900, check=False)
    stack.timings["spark-job run"] = time.monotonic() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "OK: every completed row is in the table" in res.stdout, res.stdout[-3000:]
    _, body, _ = http_get(stack.admin_url("/metrics"), token=stack.secrets["LBP_ADMIN_TOKEN"])
    samples = promtext.parse(body)
    # The writer names the table with or without its schema.
    acked = sum(promtext.total(samples, "lbp_rows_committed_total", table=t)
                for t in ("demo_events", "public.demo_events"))
    with stack.pg_connect() as db:
        rows, distinct = db.execute("SELECT count(*), count(DISTINCT event_id) "
                                    "FROM demo_events").fetchone()
    # Exactly what the proxy acknowledged: nothing lost, nothing twice.
    assert rows == distinct == acked > 0, (rows, distinct, acked, [
        line for line in body.splitlines() if line.startswith("lbp_rows_committed_total")])


# ---- docker stop drains --------------------------------------------------------------------------

def test_docker_stop_commits_what_was_flushed_before_it(stack: Stack) -> None:
    """A flush still waiting for the server when `docker-compose stop` sends the image's
    STOPSIGNAL: the proxy (PID 1) drains, commits it, acknowledges it, then exits 0."""
    token = stack.secrets["LBP_INGEST_TOKEN"]
    cid = stack.container("proxy")
    with stack.pg_connect() as db:
        db.execute("DROP TABLE IF EXISTS drain_rows; CREATE TABLE drain_rows (id bigint)")
        c = IngestConnection(f"127.0.0.1:{stack.ports['LBP_INGEST_PORT']}", token=token,
                             client_name="compose-drain", timeout=120)
        c.open("drain_rows", "insert", ["id"])
        c.send_rows(b"0\n")
        c.flush()
        assert c.read_answer() == Ack(1, 1)
        # The server holds the next batch until the stop signal is in.
        with db.transaction():
            db.execute("LOCK TABLE drain_rows IN ACCESS EXCLUSIVE MODE")
            c.send_rows(b"".join(b"%d\n" % i for i in range(1, 1001)))
            c.flush()
            wait_for_waiting_copy(db)
            stop = threading.Thread(target=lambda: stack.compose("stop", "proxy", timeout=120,
                                                                 check=False))
            stop.start()
            deadline = time.monotonic() + 60
            while "action=drain" not in stack.logs("proxy"):
                assert time.monotonic() < deadline, stack.logs("proxy")
                time.sleep(0.5)
        # The lock is gone (COMMIT): the drain commits the batch and answers it.
        assert c.read_answer() == Ack(2, 1000)
        stop.join(120)
        assert not stop.is_alive()
        assert stack.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0", \
            stack.logs("proxy")
        assert db.execute("SELECT count(*), count(DISTINCT id) FROM drain_rows"
                          ).fetchone() == (1001, 1001)
    log = stack.logs("proxy")
    assert "signal=SIGTERM action=drain" in log and "event=drained" in log, log[-3000:]


def wait_for_waiting_copy(db: psycopg.Connection) -> None:
    """Until one of the proxy's connections waits for the lock this session holds."""
    deadline = time.monotonic() + 60
    while True:
        n = db.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND application_name = 'lakebase-proxy'").fetchone()[0]
        if n:
            return
        activity = db.execute("SELECT application_name, state, wait_event_type, query "
                              "FROM pg_stat_activity WHERE pid <> pg_backend_pid()").fetchall()
        assert time.monotonic() < deadline, f"the proxy's COPY never waited: {activity}"
        time.sleep(0.2)


# ---- and down leaves nothing ---------------------------------------------------------------------

def test_down_leaves_nothing_running(stack: Stack) -> None:
    assert stack.leftovers()["containers"], "the setup was not up"
    stack.compose("down", "-v", "--timeout", "60", timeout=300)
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
