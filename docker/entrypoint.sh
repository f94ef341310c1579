#!/usr/bin/env bash
# Container entrypoint: runs lakebase-proxy with the mounted INI file when there is one,
# else with defaults and LAKEBASE_PROXY_<SECTION>_<KEY> variables only.
#   lakebase-proxy-entrypoint [DAEMON OPTIONS...]   e.g. --check-config
#   lakebase-proxy-entrypoint COMMAND [ARGS...]     anything else runs as is (a shell, say)
# Secrets may also come as files (Docker or Kubernetes secrets) named after their variable,
# e.g. /run/secrets/LAKEBASE_PROXY_INGEST_AUTH_TOKEN: then they are not in `docker inspect`.
# LBP_CONFIG_FILE and LBP_SECRETS_DIR move the file and the directory (tests run this script
# outside a container); they cannot be LAKEBASE_PROXY_ names, since the daemon refuses
# variables of that prefix that name no key.
set -euo pipefail

config=${LBP_CONFIG_FILE:-/etc/lakebase-proxy/lakebase-proxy.ini}
secrets_dir=${LBP_SECRETS_DIR:-/run/secrets}

# Each LAKEBASE_PROXY_* file sets that variable; one set both ways is a mistake to stop on,
# since nobody can tell which value was meant.
load_secret_files() {
  local file name
  for file in "$secrets_dir"/LAKEBASE_PROXY_*; do
    [ -f "$file" ] || continue
    name=${file##*/}
    if [[ ! $name =~ ^LAKEBASE_PROXY_[A-Z0-9_]+$ ]]; then
      echo "lakebase-proxy-entrypoint: $file: not a variable name" >&2
      exit 2
    fi
    if [ ! -r "$file" ]; then
      echo "lakebase-proxy-entrypoint: $file is not readable to $(id -un)" >&2
      exit 2
    fi
    if [ -n "${!name+set}" ]; then
      echo "lakebase-proxy-entrypoint: $name is set both in the environment and by $file" >&2
      exit 2
    fi
    # $(<file) drops the trailing newline that editors and `echo` leave in secret files.
    export "$name=$(<"$file")"
  done
}

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

load_secret_files

# exec, not a child: the daemon must be PID 1 to receive docker stop's SIGTERM and drain.
# -e, not -r: a file that is there but unreadable should stop the start with the daemon's
# error, not be skipped silently. A --config among the arguments comes after this one, and
# the daemon takes the last.
if [ -e "$config" ]; then
  exec lakebase-proxy --config "$config" "$@"
fi
exec lakebase-proxy "$@"
