#!/usr/bin/env bash
# The one-shot "certs" service of docker-compose.yml: a CA and a server certificate for the
# postgres service, so the proxy can check it with sslmode=verify-full as it would Lakebase.
# Usage: certs.sh DIR. Writes DIR/ca.crt, DIR/server.crt, DIR/server.key; keeps an existing
# set, so a restart does not pull the certificate from under a running server.
# LBP_CERTS_KEY_OWNER (default 999:999, the postgres user of the official postgres image,
# which refuses a key it does not own) is who gets server.key when run as root.
set -euo pipefail

dir=${1:?usage: certs.sh DIR}
owner=${LBP_CERTS_KEY_OWNER:-999:999}

if [ -s "$dir/ca.crt" ] && [ -s "$dir/server.crt" ] && [ -s "$dir/server.key" ]; then
  echo "certs: $dir already has ca.crt, server.crt and server.key; keeping them"
  exit 0
fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "postgres" is the name the other services use; localhost and 127.0.0.1 for psql inside.
cat > "$work/server.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:postgres,DNS:localhost,IP:127.0.0.1
EXT

key_opts=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${key_opts[@]}" -days 825 -subj "/CN=lakebase-proxy compose CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$work/ca.key" -out "$work/ca.crt"
openssl req -new "${key_opts[@]}" -subj "/CN=postgres" \
  -keyout "$work/server.key" -out "$work/server.csr"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$work/server.ext" \
  -out "$work/server.crt"
openssl verify -CAfile "$work/ca.crt" "$work/server.crt" >/dev/null

# The directory readable to the proxy and the job, whose users differ (umask 077 above).
if [ ! -d "$dir" ]; then
  mkdir -p "$dir"
  chmod 755 "$dir"
fi
chmod 644 "$work/ca.crt" "$work/server.crt"
chmod 600 "$work/server.key"
if [ "$(id -u)" -eq 0 ]; then
  chown "$owner" "$work/server.key"
fi
# The CA's key is not kept: nothing else should ever be signed by this CA. The server's
# key last, so a half-written set is never taken for a complete one (see the check above).
cp -p "$work/ca.crt" "$work/server.crt" "$dir/"
cp -p "$work/server.key" "$dir/"
echo "certs: wrote $dir/ca.crt, $dir/server.crt (postgres, localhost, 127.0.0.1), $dir/server.key"
