#!/usr/bin/env bash
# Entrypoint of docker/Dockerfile.postgres, with the variables of the official postgres image
# that docker-compose.yml uses: at the first start (empty $PGDATA) initdb with superuser
# $POSTGRES_USER, password $POSTGRES_PASSWORD (stored as SCRAM-SHA-256) and
# $POSTGRES_INITDB_ARGS, and a database $POSTGRES_DB; then exec the command (postgres ...),
# so the server is PID 1 and gets docker stop's signal. Anything else runs as is.
set -euo pipefail

: "${PGDATA:?}"

first_start() {
  local user=${POSTGRES_USER:-postgres} db=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is not set" >&2
    exit 2
  fi
  # The password through a pipe, never in a file or on a command line.
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, as in the official image
  initdb --pgdata="$PGDATA" --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  # The image's server takes connections from other containers (pg_hba decides how).
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.auto.conf"
  if [ "$db" != postgres ]; then
    # Single-user mode: no server listening before the database is there.
    printf 'CREATE DATABASE "%s";\n' "${db//\"/\"\"}" \
      | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
}

if [ "${1:-}" = postgres ]; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    first_start
  fi
fi
exec "$@"
