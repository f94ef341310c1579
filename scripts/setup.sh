#!/usr/bin/env bash
# Installs what lakebase-proxy needs to build, test and run its demo on Debian 12,
# skipping whatever is already there, then builds. Usage: scripts/setup.sh [BUILD_TYPE]
#   BUILD_TYPE: Release (default; for the demo and bench), Sanitize (for the tests), or none
#   (packages only: docker/Dockerfile.test installs them before it copies the code).
#   LBP_WITH_BENCH=1 also installs what bench/run needs (pgbouncer).
#   LBP_WITH_TESTS=1 also provides what only the tests use: promtool (in .tools/bin) for the
#   metrics tests, docker-compose for checking docker/docker-compose.yml, and for running it
#   (tests/test_compose.py) a Docker engine (docker.io) and mmdebstrap for the base image,
#   unless LBP_SKIP_DOCKER_TESTS says why that test cannot run here; iproute2 and iptables for
#   the fault tests (tests/faults), clang for the fuzz harnesses (tests/fuzz).
#   LBP_WITH_SPARK=1 also installs PySpark (4.3 or newer: real-time mode), Java, Maven and a
#   Kafka client, and fetches the Kafka broker and Spark's Kafka source jars once into a cache
#   (scripts/fetch-jars.sh) for the Kafka / real-time-mode tests and bench/rtm.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config libevent-dev libssl-dev libinih-dev
              libcurl4-openssl-dev libjansson-dev
              check libsubunit-dev postgresql-15 postgresql-client-15 openssl
              python3 python3-pip procps)
# PyYAML: tests/test_docker.py reads what `docker-compose config` prints.
PY_PACKAGES=("pytest>=7" "psycopg[binary]>=3.1" "pyyaml")
# bench/run also needs PgBouncer (pgbench comes with postgresql-15); off for the tests.
if [ -n "${LBP_WITH_BENCH:-}" ]; then
  APT_PACKAGES+=(pgbouncer)
fi

log() { printf '[setup] %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() {
  local missing=()
  # PySpark runs on a JVM (17 here, as Spark 4 needs).
  if [ -n "${LBP_WITH_SPARK:-}" ] && ! command -v java >/dev/null 2>&1; then
    APT_PACKAGES+=(openjdk-17-jre-headless)
  fi
  # scripts/fetch-jars.sh fetches the Kafka jars with Maven.
  if [ -n "${LBP_WITH_SPARK:-}" ] && ! command -v mvn >/dev/null 2>&1; then
    APT_PACKAGES+=(maven)
  fi
  # tests/test_docker.py checks docker/docker-compose.yml with `docker-compose config`, which
  # needs no Docker engine. Any docker-compose already on the PATH will do.
  if [ -n "${LBP_WITH_TESTS:-}" ] && ! command -v docker-compose >/dev/null 2>&1; then
    APT_PACKAGES+=(docker-compose)
  fi
  # tests/test_jdbc.py compiles a small Java program against pgJDBC (scripts/fetch-pgjdbc.sh).
  if [ -n "${LBP_WITH_TESTS:-}" ] && ! command -v javac >/dev/null 2>&1; then
    APT_PACKAGES+=(openjdk-17-jdk-headless)
  fi
  # tests/test_compose.py builds the images and runs the compose file: an engine (dockerd,
  # started by the test) and mmdebstrap for the Debian base image (scripts/docker-base.sh).
  if [ -n "${LBP_WITH_TESTS:-}" ] && [ -z "${LBP_SKIP_DOCKER_TESTS:-}" ]; then
    command -v dockerd >/dev/null 2>&1 || APT_PACKAGES+=(docker.io)
    APT_PACKAGES+=(mmdebstrap)
  fi
  # scripts/check-format.sh, part of the tests: the C sources against .clang-format.
  if [ -n "${LBP_WITH_TESTS:-}" ]; then
    APT_PACKAGES+=(clang-format)
    # tests/faults: network namespaces, veth pairs and DROP rules (iptables-legacy: this
    # kernel's netfilter is driven through the legacy tables; no sch_netem is needed).
    APT_PACKAGES+=(iproute2 iptables)
    # tests/fuzz: the libFuzzer harnesses run for a bounded time (clang + compiler-rt).
    APT_PACKAGES+=(clang libclang-rt-14-dev)
  fi
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt packages: all present"
    return
  fi
  log "apt packages: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python() {
  local missing=()
  python3 -c 'import pytest' 2>/dev/null || missing+=("${PY_PACKAGES[0]}")
  python3 -c 'import psycopg' 2>/dev/null || missing+=("${PY_PACKAGES[1]}")
  python3 -c 'import yaml' 2>/dev/null || missing+=("${PY_PACKAGES[2]}")
  if [ -n "${LBP_WITH_SPARK:-}" ]; then
    # The writer's own dependencies (python/pyproject.toml); the package itself is used
    # from this checkout through PYTHONPATH, so a stale install elsewhere cannot shadow it.
    # 4.3: the first with the real-time trigger (.trigger(realTime=...)).
    python3 -c 'import sys, pyspark; sys.exit(tuple(map(int, pyspark.__version__.split(".")[:2])) < (4, 3))' \
      2>/dev/null || missing+=("pyspark>=4.3")
    python3 -c 'import databricks.sdk' 2>/dev/null || missing+=("databricks-sdk")
    # The Kafka producer of the Kafka / real-time-mode tests and bench/rtm.
    python3 -c 'import confluent_kafka' 2>/dev/null || missing+=("confluent-kafka>=2.3")
  fi
  # The upsert property test (python/tests/test_upsert_property.py).
  if [ -n "${LBP_WITH_TESTS:-}" ]; then
    python3 -c 'import hypothesis' 2>/dev/null || missing+=("hypothesis>=6")
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    log "python packages: all present"
    return
  fi
  log "python packages: installing ${missing[*]}"
  # Debian marks its Python as externally managed; this machine's pip is ours to use. Older
  # pips lack the flag (and need none). Asked first rather than tried, so a real failure (the
  # network, a package) shows its own error instead of a retry's.
  local flags=(-q --disable-pip-version-check)
  if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    flags+=(--break-system-packages)
  fi
  python3 -m pip install "${flags[@]}" "${missing[@]}"
}

# promtool checks /metrics in the tests. It comes in Debian's prometheus package, whose
# install would also set up a Prometheus server; only the promtool binary is extracted.
install_promtool() {
  local dest=.tools/bin/promtool tmp
  if command -v promtool >/dev/null 2>&1 || [ -x "$dest" ]; then
    log "promtool: present"
    return
  fi
  log "promtool: extracting from Debian's prometheus package"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
    sudo_if_needed apt-get update -qq
    (cd "$tmp" && apt-get download prometheus >/dev/null)
  }
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  mkdir -p .tools/bin
  mv "$tmp/usr/bin/promtool" "$dest"
  rm -rf "$tmp"
}

build() {
  local type="$1" dir
  case "$type" in
    Sanitize) dir=build-san ;;
    *) dir=build ;;
  esac
  log "building ($type) in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
  cmake --build "$dir" -j"$(nproc)" >/dev/null
  echo "$dir"
}

install_apt
install_python
[ -n "${LBP_WITH_TESTS:-}" ] && install_promtool
[ -n "${LBP_WITH_SPARK:-}" ] && scripts/fetch-jars.sh
if [ "${1:-Release}" != none ]; then
  build "${1:-Release}"
fi
