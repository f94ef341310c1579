"""docker/ without a Docker engine (tests/test_compose.py builds and runs it for real).

The compose file as `docker-compose config` reads it; the Dockerfiles as text; and what the
containers run, run natively the way they run it: the proxy image's entrypoint and health
check with the environment the compose file gives the proxy container (read from that file, so
the two cannot drift), the certs service's script, and the postgres service's TLS + SCRAM
settings on a real PostgreSQL. Quick, and they name the line that broke; the compose test
shows the images work.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml
from lakebase_foreachwriter.ingest_protocol import Ack, IngestConnection, ProxyError
from pgharness import OS_USER, PgServer
from proxyproc import ProxyProcess, free_port, proxy_binary

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.sh"
COMPOSE_TEST = DOCKER / "docker-compose.test.yml"
CERTS_SH = DOCKER / "certs.sh"
# Stand-ins for the secrets the compose file takes from the environment.
SECRETS = {"LBP_DB_PASSWORD": "test-db-password", "LBP_INGEST_TOKEN": "test-ingest-token",
           "LBP_ADMIN_TOKEN": "test-admin-token"}
SERVICES = {"certs", "postgres", "proxy", "spark-job", "tests"}


# ---- reading the files ------------------------------------------------------------------------

def docker_compose(*args: str, env: dict[str, str], files: tuple[Path, ...] = (COMPOSE,)
                   ) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not installed (scripts/setup.sh installs it)"
    full_env = {k: v for k, v in os.environ.items()
                if k not in SECRETS and not k.startswith("LBP_")}
    full_env.update(env)
    file_args = [a for f in files for a in ("-f", str(f))]
    return subprocess.run([exe, *file_args, "--profile", "test", *args], env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as docker-compose resolves it (variables, paths, defaults)."""
    res = docker_compose("config", env=SECRETS)
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) of each stage; continuation lines joined, comments dropped.
    The ARGs before the first FROM (BASE_IMAGE) are a stage of their own, the first."""
    stages: list[list[tuple[str, str]]] = [[]]
    logical = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        instr, _, args = (logical + stripped).partition(" ")
        logical = ""
        if instr.upper() == "FROM":
            stages.append([])
        stages[-1].append((instr.upper(), " ".join(args.split())))
    return [s for s in stages if s]


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instr, args in stage if instr == name]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions(stage, "ENV"):
        env.update(pair.split("=", 1) for pair in args.split())
    return env


def final_user(stage: list[tuple[str, str]]) -> str:
    users = instructions(stage, "USER")
    return users[-1].split(":")[0] if users else "root"


def apt_packages(stage: list[tuple[str, str]]) -> set[str]:
    pkgs: set[str] = set()
    for run in instructions(stage, "RUN"):
        for m in re.finditer(r"apt-get install ((?:-\S+ )*)([^&]+)", run):
            pkgs.update(m.group(2).split())
    return pkgs


def seconds(duration: str) -> float:
    """A compose duration: 45s, 1m30s, 1h."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * unit[u] for n, u in parts)


PROXY_IMAGE = dockerfile_stages(DOCKER / "Dockerfile")[1:]  # the build stage, the runtime
# Every image starts FROM the local Debian 12 base (scripts/docker-base.sh), or a stage on it.
BASE_ARG = "BASE_IMAGE=lakebase-proxy-base:bookworm"


# ---- the compose file -------------------------------------------------------------------------

def test_compose_config_accepts_the_file_with_every_service(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    tests = services["tests"]
    assert tests["command"] == ["./scripts/test.sh"]
    assert tests["profiles"] == ["test"]  # `up` alone does not run the suite
    for name, dockerfile in [("certs", "docker/Dockerfile.postgres"),
                             ("postgres", "docker/Dockerfile.postgres"),
                             ("proxy", "docker/Dockerfile"),
                             ("spark-job", "docker/Dockerfile.spark"),
                             ("tests", "docker/Dockerfile.test")]:
        build = services[name]["build"]
        assert (Path(build["context"]).resolve(), build["dockerfile"]) == (ROOT, dockerfile)
        assert (ROOT / dockerfile).is_file()
    assert services["postgres"]["depends_on"]["certs"]["condition"] == \
        "service_completed_successfully"
    assert services["proxy"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["spark-job"]["depends_on"]["proxy"]["condition"] == "service_healthy"
    job = services["spark-job"]
    assert job["command"][:2] == ["--proxy", "proxy:5480"]
    assert job["environment"]["LBP_INGEST_TOKEN"] == SECRETS["LBP_INGEST_TOKEN"]


def test_proxy_healthcheck_is_the_images(compose: dict) -> None:
    (image_check,) = instructions(PROXY_IMAGE[-1], "HEALTHCHECK")
    assert image_check.endswith('CMD ["/usr/local/bin/lakebase-proxy-healthcheck"]')
    assert f"COPY {HEALTHCHECK.relative_to(ROOT)} /usr/local/bin/lakebase-proxy-healthcheck" in \
        [f"COPY {a}" for a in instructions(PROXY_IMAGE[-1], "COPY")]
    # The compose file keeps the image's check (it would otherwise need the port again).
    assert "healthcheck" not in compose["services"]["proxy"]


def test_every_image_starts_from_the_local_debian_base() -> None:
    for dockerfile in DOCKER.glob("Dockerfile*"):
        text = dockerfile.read_text()
        assert f"ARG {BASE_ARG}\n" in text, dockerfile
        stages = [line.split()[1:] for line in text.splitlines() if line.startswith("FROM ")]
        names = {s[2] for s in stages if len(s) == 3}
        for stage in stages:
            assert stage[0] == "${BASE_IMAGE}" or stage[0] in names, (dockerfile, stage)


def test_the_loopback_override_puts_every_service_on_the_hosts_network(compose: dict) -> None:
    """docker-compose.test.yml (what tests/test_compose.py runs): host network for every
    service and build, free ports from the environment, the main file's postgres settings."""
    env = {**SECRETS, "LBP_PG_PORT": "15432", "LBP_INGEST_PORT": "15480",
           "LBP_ADMIN_PORT": "19187"}
    res = docker_compose("config", env=env, files=(COMPOSE, COMPOSE_TEST))
    assert res.returncode == 0, res.stderr
    both = yaml.safe_load(res.stdout)["services"]
    assert set(both) == SERVICES
    for name, service in both.items():
        assert service["network_mode"] == "host", name
        assert "ports" not in service, name
        if "build" in service:
            assert service["build"]["network"] == "host", name
    main_pg = compose["services"]["postgres"]["command"]
    assert both["postgres"]["command"] == main_pg + ["-c", "listen_addresses=127.0.0.1"]
    assert both["postgres"]["environment"]["PGPORT"] == "15432"
    proxy = both["proxy"]["environment"]
    assert proxy["LAKEBASE_PROXY_INGEST_LISTEN"] == "127.0.0.1:15480"
    assert proxy["LAKEBASE_PROXY_ADMIN_LISTEN"] == "127.0.0.1:19187"
    assert proxy["LAKEBASE_PROXY_UPSTREAM_HOST"] == "postgres"  # verify-full: the cert's name
    assert both["spark-job"]["command"][:4] == ["--proxy", "proxy:15480", "--admin-url",
                                                "http://proxy:19187"]
    for name in ("proxy", "spark-job"):
        assert both[name]["extra_hosts"]["postgres"] == "127.0.0.1", name
    res = docker_compose("config", env=SECRETS, files=(COMPOSE, COMPOSE_TEST))
    assert res.returncode != 0 and "LBP_PG_PORT" in res.stderr


def test_secrets_come_only_from_the_environment() -> None:
    for missing in SECRETS:
        res = docker_compose("config", env={k: v for k, v in SECRETS.items() if k != missing})
        assert res.returncode != 0 and missing in res.stderr, (missing, res.stdout, res.stderr)
    for dockerfile in DOCKER.glob("Dockerfile*"):
        for stage in dockerfile_stages(dockerfile):
            for instr, args in stage:
                if instr in ("ENV", "ARG"):
                    assert not re.search(r"PASSWORD|TOKEN|SECRET", args), (dockerfile, args)


def test_proxy_service_verifies_the_server_and_drains_before_kill(compose: dict) -> None:
    proxy = compose["services"]["proxy"]
    env = proxy["environment"]
    assert env["LAKEBASE_PROXY_UPSTREAM_SSLMODE"] == "verify-full"
    mounts = [v.split(":")[1] for v in proxy["volumes"]]
    assert any(env["LAKEBASE_PROXY_UPSTREAM_SSLROOTCERT"].startswith(m + "/") for m in mounts)
    assert env["LAKEBASE_PROXY_UPSTREAM_HOST"] == "postgres"
    # docker stop sends SIGTERM, then SIGKILL after the grace period: the drain must fit.
    drain = int(env["LAKEBASE_PROXY_SERVER_SHUTDOWN_TIMEOUT_S"])
    assert seconds(proxy["stop_grace_period"]) > drain


def test_postgres_service_is_tls_and_scram_only(compose: dict) -> None:
    pg = compose["services"]["postgres"]
    settings = postgres_settings(pg)
    assert settings["ssl"] == "on"
    assert settings["password_encryption"] == "scram-sha-256"
    assert pg["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    hba = hba_source(pg)
    rules = [line.split() for line in hba.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    # Over the network: TLS and SCRAM only; local (inside the container) is the image's default.
    assert all(r[0] == "local" or (r[0] == "hostssl" and r[-1] == "scram-sha-256") for r in rules)
    assert any(r[0] == "hostssl" for r in rules)


def postgres_settings(service: dict) -> dict[str, str]:
    cmd = service["command"]
    assert cmd[0] == "postgres" and cmd[1::2] == ["-c"] * (len(cmd) // 2), cmd
    return dict(arg.split("=", 1) for arg in cmd[2::2])


def hba_source(service: dict) -> Path:
    """The host file mounted where the hba_file setting points."""
    target = postgres_settings(service)["hba_file"]
    for volume in service["volumes"]:
        src, dst = volume.split(":")[:2]
        if dst == target:
            return Path(src)
    raise AssertionError(f"nothing is mounted at {target}")


# ---- the Dockerfiles --------------------------------------------------------------------------

def test_proxy_image_is_small_non_root_and_listens_for_other_containers() -> None:
    build, runtime = PROXY_IMAGE[0], PROXY_IMAGE[-1]
    assert instructions(build, "FROM") == ["${BASE_IMAGE} AS build"]
    (compile_step,) = [r for r in instructions(build, "RUN") if "cmake" in r and "-S" in r]
    for part in ("-DCMAKE_BUILD_TYPE=Release", "-DLBP_TESTS=OFF", "--target lakebase-proxy",
                 "strip build/lakebase-proxy"):
        assert part in compile_step
    assert instructions(runtime, "FROM") == ["${BASE_IMAGE}"]
    assert final_user(runtime) not in ("root", "0", "")
    assert instructions(runtime, "STOPSIGNAL") == ["SIGTERM"]  # what the daemon drains on
    assert image_env(runtime) == {"LAKEBASE_PROXY_INGEST_LISTEN": "0.0.0.0:5480",
                                  "LAKEBASE_PROXY_ADMIN_LISTEN": "0.0.0.0:9187"}
    assert instructions(runtime, "EXPOSE") == ["5480 9187"]
    assert "COPY docker/entrypoint.sh /usr/local/bin/lakebase-proxy-entrypoint" in \
        [f"COPY {a}" for a in instructions(runtime, "COPY")]
    assert instructions(runtime, "ENTRYPOINT") == ['["/usr/local/bin/lakebase-proxy-entrypoint"]']
    assert os.access(ENTRYPOINT, os.X_OK)  # COPY keeps the mode; the image runs it directly


def test_spark_and_test_images() -> None:
    spark = dockerfile_stages(DOCKER / "Dockerfile.spark")[-1]
    assert final_user(spark) not in ("root", "0", "")
    assert "openjdk-17-jre-headless" in apt_packages(spark)
    tests = dockerfile_stages(DOCKER / "Dockerfile.test")[-1]
    # No engine inside it: the compose test is skipped there, and says so.
    assert "LBP_SKIP_DOCKER_TESTS" in image_env(tests)
    assert "scripts/setup.sh Sanitize" in instructions(tests, "RUN")
    assert instructions(tests, "CMD") == ['["./scripts/test.sh"]']


def test_runtime_packages_hold_every_library_the_binary_needs() -> None:
    """Every symbol the daemon takes from a shared library is defined by a library of a package
    the runtime stage installs: a library added to CMakeLists.txt but not to the image fails
    here. By symbol, not by DT_NEEDED: the sanitizer build links without --as-needed, so it
    names libevent-2.1.so.7 (all of libevent in one), which the Release build does not."""
    binary = str(proxy_binary())
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", run_out("readelf", "-d", binary))
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", run_out("ldd", binary), re.M))
    assert "libinih.so.1" in needed and "libinih.so.1" in paths
    installed = apt_packages(PROXY_IMAGE[-1])
    # In every Debian image already; the sanitizer runtimes belong to the test build only.
    base = {"libc6", "libgcc-s1", "libasan8", "libubsan1"}
    provided: set[str] = set()
    for lib in needed:
        if debian_package_of(paths[lib]) in installed | base:
            provided |= dynamic_symbols(paths[lib], "--defined-only")
    missing = {sym: [lib for lib in needed if sym in dynamic_symbols(paths[lib], "--defined-only")]
               for sym in dynamic_symbols(binary, "--undefined-only") - provided}
    assert not missing, f"symbols from libraries docker/Dockerfile does not install: {missing}"


def run_out(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def dynamic_symbols(path: str, which: str) -> set[str]:
    """Names (without version) of a binary's dynamic symbols; undefined ones: strong only."""
    out = run_out("nm", "-D", which, path)
    return {line.split()[-1].split("@")[0] for line in out.splitlines()
            if line.split() and (which == "--defined-only" or line.split()[-2] == "U")}


def debian_package_of(path: str) -> str:
    """dpkg -S under every name the file may be registered with (merged /usr)."""
    real = os.path.realpath(path)
    for candidate in dict.fromkeys([path, real, real.removeprefix("/usr"), "/usr" + path]):
        res = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if res.returncode == 0:
            return res.stdout.split(":", 1)[0]
    raise AssertionError(f"no Debian package holds {path}")


# ---- the entrypoint, natively, with the proxy container's environment --------------------------

def container_env(compose: dict, pg: PgServer, tmp_path: Path, token: str,
                  ingest_port: int, admin_port: int) -> dict[str, str]:
    """The image's ENV plus the compose file's environment for the proxy, as in the container,
    with what names the container's world (the postgres service, /certs, the secrets, the
    fixed ports) pointed at the test server, its CA, a token and free ports instead."""
    env = {**image_env(PROXY_IMAGE[-1]), **compose["services"]["proxy"]["environment"]}
    ingest_host = env["LAKEBASE_PROXY_INGEST_LISTEN"].rsplit(":", 1)[0]
    admin_host = env["LAKEBASE_PROXY_ADMIN_LISTEN"].rsplit(":", 1)[0]
    native = {
        "LAKEBASE_PROXY_UPSTREAM_HOST": pg.host,
        "LAKEBASE_PROXY_UPSTREAM_PORT": str(pg.port),
        "LAKEBASE_PROXY_UPSTREAM_DBNAME": pg.dbname,
        "LAKEBASE_PROXY_UPSTREAM_USER": pg.user,
        "LAKEBASE_PROXY_UPSTREAM_PASSWORD": pg.password,
        "LAKEBASE_PROXY_UPSTREAM_SSLROOTCERT": str(pg.ca_file),
        "LAKEBASE_PROXY_INGEST_AUTH_TOKEN": token,
        "LAKEBASE_PROXY_INGEST_LISTEN": f"{ingest_host}:{ingest_port}",
        "LAKEBASE_PROXY_ADMIN_LISTEN": f"{admin_host}:{admin_port}",
    }
    assert set(native) <= set(env), f"the proxy container no longer sets {set(native) - set(env)}"
    env.update(native)
    env["PATH"] = f"{proxy_binary().parent}{os.pathsep}{os.environ['PATH']}"
    # No mounted INI file and no secret files: configuration from the environment only.
    env["LBP_CONFIG_FILE"] = str(tmp_path / "not-mounted.ini")
    env["LBP_SECRETS_DIR"] = str(tmp_path / "no-secrets")
    return env


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEBASE_PROXY_")}
    full_env.update(env)
    return subprocess.run([str(ENTRYPOINT), *args], env=full_env, capture_output=True, text=True,
                          timeout=60)


def start_as_in_container(compose: dict, pg: PgServer, tmp_path: Path
                          ) -> tuple[ProxyProcess, int, str]:
    """The proxy through the entrypoint with the container's environment; (it, port, token)."""
    token = "t-" + os.urandom(12).hex()
    port = free_port()
    env = container_env(compose, pg, tmp_path, token, port, free_port())
    assert env["LAKEBASE_PROXY_INGEST_LISTEN"].startswith("0.0.0.0:")  # as in the container
    proxy = ProxyProcess(None, env, command=[str(ENTRYPOINT)])
    proxy.wait_log(rf"event=listening addr=0\.0\.0\.0:{port} auth=token")
    return proxy, port, token


def test_entrypoint_runs_the_proxy_from_the_containers_env(compose: dict, pg: PgServer,
                                                           tmp_path: Path) -> None:
    pg.admin_sql("DROP TABLE IF EXISTS docker_rows; CREATE TABLE docker_rows "
                 f"(id bigint PRIMARY KEY, note text); GRANT ALL ON docker_rows TO {pg.user}")
    proxy, port, token = start_as_in_container(compose, pg, tmp_path)
    with proxy:
        # The entrypoint exec'd the daemon: it is the process docker stop signals (PID 1).
        assert Path(f"/proc/{proxy.proc.pid}/exe").resolve() == proxy_binary().resolve()
        proxy.wait_log(r"conn=\d+ event=ready .* tls=on")
        with pytest.raises(ProxyError):
            IngestConnection(f"127.0.0.1:{port}", token="wrong", client_name="docker-test")
        c = IngestConnection(f"127.0.0.1:{port}", token=token, client_name="docker-test")
        c.open("docker_rows", "insert", ["id", "note"])
        c.send_rows(b"1\tfrom the container's environment\n")
        c.flush()
        assert c.read_answer() == Ack(1, 1)
        assert c.close() == []
        # The HEALTHCHECK finds the admin port in the container's environment (0.0.0.0:port)
        # and needs no token; /metrics wants the compose's one.
        assert proxy.admin_listen.startswith("0.0.0.0:")
        res = run_healthcheck(proxy.admin_listen)
        assert res.returncode == 0, res.stderr
        assert proxy.admin_get("/metrics")[0] == 401
        status, body, _ = proxy.admin_get("/metrics", token=SECRETS["LBP_ADMIN_TOKEN"])
        assert status == 200
        assert 'lbp_rows_committed_total{table="docker_rows",mode="insert"} 1' in body
        assert proxy.stop() == 0, proxy.log
    assert pg.admin_sql("SELECT id, note FROM docker_rows") == [
        ["1", "from the container's environment"]]
    assert "event=stop" in proxy.log
    assert pg.password not in proxy.log and token not in proxy.log


def run_healthcheck(admin_listen: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKEBASE_PROXY_ADMIN_LISTEN": admin_listen}
    return subprocess.run([str(HEALTHCHECK)], env=env, capture_output=True, text=True,
                          timeout=30)


def test_healthcheck_fails_when_nothing_answers_on_the_admin_port() -> None:
    res = run_healthcheck(f"0.0.0.0:{free_port()}")
    assert res.returncode != 0 and "Failed to connect" in res.stderr, res.stderr


def test_entrypoint_uses_the_mounted_file_when_there_is_one(compose: dict, pg: PgServer,
                                                            tmp_path: Path) -> None:
    env = container_env(compose, pg, tmp_path, "t", free_port(), free_port())
    assert not Path(env["LBP_CONFIG_FILE"]).exists()
    res = run_entrypoint(env, "--check-config")
    assert res.returncode == 0, res.stderr
    assert "max_rows = 50000" in res.stdout  # the default
    (tmp_path / "mounted.ini").write_text("[batch]\nmax_rows = 1234\n")
    res = run_entrypoint({**env, "LBP_CONFIG_FILE": str(tmp_path / "mounted.ini")},
                         "--check-config")
    assert res.returncode == 0, res.stderr
    assert "max_rows = 1234" in res.stdout
    # ... and the environment still wins over the file, as the daemon promises.
    assert f"host = {pg.host}" in res.stdout
    (tmp_path / "given.ini").write_text("[batch]\nmax_rows = 4321\n")
    res = run_entrypoint({**env, "LBP_CONFIG_FILE": str(tmp_path / "mounted.ini")},
                         "--config", str(tmp_path / "given.ini"), "--check-config")
    assert "max_rows = 4321" in res.stdout, res.stderr
    # Not an option: a command run in the image instead of the daemon.
    assert run_entrypoint(env, "echo", "a shell").stdout == "a shell\n"


def test_the_token_is_required_and_may_come_from_a_secret_file(compose: dict, pg: PgServer,
                                                               tmp_path: Path) -> None:
    port = free_port()
    env = container_env(compose, pg, tmp_path, "t", port, free_port())
    del env["LAKEBASE_PROXY_INGEST_AUTH_TOKEN"]
    res = run_entrypoint(env)
    assert res.returncode != 0
    assert "auth_token" in res.stderr, res.stderr
    # As Docker and Kubernetes mount secrets: a file named after the variable, ending in \n.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "LAKEBASE_PROXY_INGEST_AUTH_TOKEN").write_text("from-a-file\n")
    env["LBP_SECRETS_DIR"] = str(secrets)
    with ProxyProcess(None, env, command=[str(ENTRYPOINT)]) as proxy:
        proxy.wait_log(rf"event=listening addr=0\.0\.0\.0:{port} auth=token")
        IngestConnection(f"127.0.0.1:{port}", token="from-a-file").abort()  # hello was ok
        assert proxy.stop() == 0, proxy.log
    # Set both ways: refused, rather than one silently winning.
    res = run_entrypoint({**env, "LAKEBASE_PROXY_INGEST_AUTH_TOKEN": "other"}, "--check-config")
    assert res.returncode == 2 and "set both" in res.stderr, res.stderr


def test_spark_job_as_composed_writes_through_the_proxy(compose: dict, pg: PgServer,
                                                       tmp_path: Path) -> None:
    """The spark-job service's program (its image's ENTRYPOINT and the compose command) with its
    environment, pointed at a proxy started as the proxy container is: the whole compose run,
    natively and shortened."""
    (entry,) = instructions(dockerfile_stages(DOCKER / "Dockerfile.spark")[-1], "ENTRYPOINT")
    job = compose["services"]["spark-job"]
    proxy, port, token = start_as_in_container(compose, pg, tmp_path)
    with proxy:
        admin = "http://127.0.0.1:" + proxy.admin_url.rsplit(":", 1)[1]
        args = [{"proxy:5480": f"127.0.0.1:{port}", "http://proxy:9187": admin}.get(a, a)
                for a in job["command"]]
        assert admin in args
        # Short: the job streams on until a micro-batch with rows has completed.
        args[args.index("--duration") + 1] = "6"
        program = yaml.safe_load(entry)
        assert program[:2] == ["python3", "scripts/demo.py"]
        native = {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGDATABASE": pg.dbname,
                  "PGUSER": pg.user, "PGPASSWORD": pg.password,
                  "PGSSLROOTCERT": str(pg.ca_file), "LBP_INGEST_TOKEN": token}
        assert set(native) <= set(job["environment"])
        env = {**os.environ, **job["environment"], **native}
        res = subprocess.run([sys.executable, str(ROOT / program[1]), *args], env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr[-3000:]
        assert "OK: every completed row is in the table" in res.stdout
        # A progress line with the p99 the job read from the proxy's /metrics.
        assert re.search(r"^\s+\d+s\s+[\d,]+\s+[\d,]+\s+\d+\.\d\s", res.stdout, re.M), res.stdout
        assert proxy.stop() == 0, proxy.log
    assert int(pg.admin_sql("SELECT count(*) FROM demo_events")[0][0]) > 0


# ---- the certs and postgres services, natively --------------------------------------------------

class ComposePostgres(PgServer):
    """A harness server set up as the compose file's postgres service: certificates from
    docker/certs.sh, and the service's -c settings (hba_file included) with the container's
    paths mapped to this directory."""

    def __init__(self, base_dir: Path, service: dict) -> None:
        super().__init__(base_dir)
        self.service = service

    def _make_certs(self) -> None:
        env = {**os.environ, "LBP_CERTS_KEY_OWNER": f"{OS_USER}:{OS_USER}"}
        subprocess.run([str(CERTS_SH), str(self.certdir)], env=env, check=True,
                       capture_output=True)

    def _write_conf(self) -> None:
        super()._write_conf()
        mounts = {}
        for volume in self.service["volumes"]:
            src, dst = volume.split(":")[:2]
            if src == "certs":
                mounts[dst] = str(self.certdir)
            else:  # a bind mount: a copy the postgres user can read
                copy = self.base_dir / Path(src).name
                self._write_pg_file(copy, Path(src).read_text())
                mounts[dst] = str(copy)
        lines = []
        for key, value in postgres_settings(self.service).items():
            for dst, src in mounts.items():
                if value == dst or value.startswith(dst + "/"):
                    value = src + value[len(dst):]
            lines.append(f"{key} = '{value}'")
        conf = self.pgdata / "lbp_harness.conf"
        self._write_pg_file(conf, conf.read_text() + "\n".join(lines) + "\n")


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compose_postgres_takes_tls_with_scram_only(compose: dict, tmp_path: Path) -> None:
    base = tmp_path / "cpg"
    pg = ComposePostgres(base, compose["services"]["postgres"]).start()
    try:
        hba = Path(pg.admin_sql("SHOW hba_file")[0][0])
        assert hba.parent == base and hba.read_text() == \
            hba_source(compose["services"]["postgres"]).read_text()
        assert pg.admin_sql("SHOW password_encryption") == [["scram-sha-256"]]
        assert pg.admin_sql(f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                            f"WHERE rolname = '{pg.user}'") == [["t"]]
        # verify-full against the CA certs.sh made; SCRAM; TLS.
        with psycopg.connect(pg.dsn()) as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                                ).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(pg.dsn(sslmode="disable"))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg.dsn(password="not-" + pg.password))
        san = subprocess.run(["openssl", "x509", "-in", str(pg.server_cert), "-noout", "-ext",
                              "subjectAltName"], capture_output=True, text=True, check=True)
        assert "DNS:postgres" in san.stdout  # the name the proxy service connects to
        # A second run (a restarted certs service) keeps the certificate the server uses.
        before = fingerprint(pg.server_cert)
        subprocess.run([str(CERTS_SH), str(pg.certdir)], check=True, capture_output=True)
        assert fingerprint(pg.server_cert) == before
    finally:
        pg.stop()
