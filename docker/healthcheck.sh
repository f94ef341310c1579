#!/usr/bin/env bash
# The proxy image's HEALTHCHECK: GET /healthz on the admin port LAKEBASE_PROXY_ADMIN_LISTEN
# names (the image sets it; 0.0.0.0 or [::] mean this host), so a moved port needs no other
# change. Exit 0 when it answers 200, else 1.
set -euo pipefail

listen=${LAKEBASE_PROXY_ADMIN_LISTEN:-127.0.0.1:9187}
host=${listen%:*}
port=${listen##*:}
case $host in
  0.0.0.0 | '') host=127.0.0.1 ;;
  '[::]') host='[::1]' ;;
esac
exec curl -fsS --max-time 2 -o /dev/null "http://$host:$port/healthz"
