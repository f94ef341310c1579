#!/usr/bin/env bash
# Fetches the Maven Central jars the Kafka tests and bench/rtm need, once, into a cache outside
# the checkout that survives reruns (LBP_MAVEN_CACHE, default /var/cache/lakebase-proxy/maven):
#   kafka-broker/  org.apache.kafka:kafka_2.13 and its dependencies (tests/harness/kafkaharness.py)
#   spark-kafka/   org.apache.spark:spark-sql-kafka-0-10_2.13 and its dependencies (spark.jars)
# Each directory is complete once its .done marker exists; a present one is skipped.
# Usage: scripts/fetch-jars.sh   (called by scripts/setup.sh with LBP_WITH_SPARK)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${LBP_MAVEN_CACHE:-/var/cache/lakebase-proxy/maven}
log() { printf '[fetch-jars] %s\n' "$*" >&2; }

fetch() {
  local name="$1" pom="tests/harness/maven/$1.pom.xml" dest="$CACHE/$1"
  # The marker holds the pom's checksum: a changed pom (a new version) fetches again.
  local sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$dest/.done" ] && [ "$(cat "$dest/.done")" = "$sum" ]; then
    log "$name: cached in $dest"
    return
  fi
  log "$name: fetching into $dest"
  rm -rf "$dest"
  mkdir -p "$CACHE/repo"
  mvn -q -B -f "$pom" -Dmaven.repo.local="$CACHE/repo" -Dstyle.color=never dependency:copy-dependencies \
    -DoutputDirectory="$dest" -DincludeScope=runtime >&2
  echo "$sum" > "$dest/.done"
}

fetch kafka-broker
fetch spark-kafka
