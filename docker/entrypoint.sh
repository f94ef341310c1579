#!/usr/bin/env bash
# Container entrypoint: runs lakebase-proxy with the mounted INI file when there is one,
# else with defaults and LAKEBASE_PROXY_<SECTION>_<KEY> variables only.
#   lakebase-proxy-entrypoint [DAEMON OPTIONS...]   e.g. --check-config
#   lakebase-proxy-entrypoint COMMAND [ARGS...]     anything else runs as is (a shell, say)
# LBP_CONFIG_FILE moves the file (tests run this script outside a container); it cannot be a
# LAKEBASE_PROXY_ name, since the daemon refuses variables of that prefix that name no key.
set -euo pipefail

config=${LBP_CONFIG_FILE:-/etc/lakebase-proxy/lakebase-proxy.ini}

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

# exec, not a child: the daemon must be PID 1 to receive docker stop's SIGTERM and drain.
# -e, not -r: a file that is there but unreadable should stop the start with the daemon's
# error, not be skipped silently. A --config among the arguments comes after this one, and
# the daemon takes the last.
if [ -e "$config" ]; then
  exec lakebase-proxy --config "$config" "$@"
fi
exec lakebase-proxy "$@"
