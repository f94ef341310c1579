#!/usr/bin/env bash
# Fetches pgJDBC (the PostgreSQL JDBC driver) from Maven Central once, into a cache outside
# the checkout, checks its pinned SHA-1, and prints the jar's path. Used by tests/test_jdbc.py.
# Cache: $LBP_CACHE_DIR (default /var/cache/lakebase-proxy, else ~/.cache/lakebase-proxy).
set -euo pipefail

VERSION=42.7.4
SHA1=264310fd7b2cd76738787dc0b9f7ea2e3b11adc1
URL="https://repo1.maven.org/maven2/org/postgresql/postgresql/$VERSION/postgresql-$VERSION.jar"

cache=${LBP_CACHE_DIR:-/var/cache/lakebase-proxy}
if ! mkdir -p "$cache/maven/pgjdbc" 2>/dev/null || [ ! -w "$cache/maven/pgjdbc" ]; then
  cache="$HOME/.cache/lakebase-proxy"
  mkdir -p "$cache/maven/pgjdbc"
fi
jar="$cache/maven/pgjdbc/postgresql-$VERSION.jar"
if [ ! -f "$jar" ] || ! echo "$SHA1  $jar" | sha1sum -c --status; then
  tmp=$(mktemp "$jar.XXXXXX")
  curl -sSfL --retry 3 -o "$tmp" "$URL"
  if ! echo "$SHA1  $tmp" | sha1sum -c --status; then
    rm -f "$tmp"
    echo "fetch-pgjdbc: $URL does not have the expected SHA-1 $SHA1" >&2
    exit 1
  fi
  mv "$tmp" "$jar"
fi
echo "$jar"
