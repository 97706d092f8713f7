#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server from Debian's packages for the test
# suite, on 127.0.0.1:${PGPORT:-55432}, user postgres / password postgres.
# Installs the packages when missing. Prints the DATABASE_URL to use.
#
#   scripts/postgres-local.sh start   # prints: export DATABASE_URL=postgres://...
#   scripts/postgres-local.sh stop
set -euo pipefail
PORT=${PGPORT:-55432}
DATA=${PGDATA_DIR:-/tmp/switchboard-pg}
cmd=${1:-start}

# The server's bin directory: one holding initdb and postgres (a client-only
# install, e.g. postgresql-client-15 alone, has the directory without them).
bindir() {
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; return; fi
  done
}

if [ "$cmd" = stop ]; then
  if [ -n "$(bindir)" ] && [ -d "$DATA" ]; then
    su postgres -c "$(bindir)/pg_ctl -D $DATA -m fast stop" >/dev/null 2>&1 || true
  fi
  exit 0
fi

if [ -z "$(bindir)" ]; then
  echo "installing PostgreSQL from Debian packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql postgresql-client >&2
fi
BIN=$(bindir)
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres

if [ ! -s "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA"; mkdir -p "$DATA"; chown postgres:postgres "$DATA"
  pwfile=$(mktemp); echo postgres > "$pwfile"; chown postgres "$pwfile"
  su postgres -c "$BIN/initdb -D $DATA -U postgres --pwfile=$pwfile -A scram-sha-256 --no-sync" >/dev/null
  rm -f "$pwfile"
  cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '/tmp'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi
if ! su postgres -c "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
  su postgres -c "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w start" >/dev/null
fi
echo "export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:$PORT/postgres"
