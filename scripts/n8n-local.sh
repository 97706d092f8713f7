#!/usr/bin/env bash
# Start a real, local n8n (the automation engine Switchboard provisions) for tests.
# (The team's shared tool, kept here so CI has it; one change: n8n's
# WEBHOOK_URL is set, so the webhooks it registers name 127.0.0.1.)
#
#   scripts/n8n-local.sh start   # installs (once), starts on 127.0.0.1:$N8N_PORT, prints `export` lines
#   scripts/n8n-local.sh stop
#
# Needs: Node.js 20 + npm (on the machine), PostgreSQL running locally (N8N_PGHOST, N8N_PGPORT or PGPORT,
# default 127.0.0.1:5432, user/password postgres/postgres) (n8n's own database;
# n8n's SQLite driver is a native module that cannot be built here). Prints, on success:
#   export N8N_BASE_URL=http://127.0.0.1:5678
#   export N8N_API_KEY=...        (a public-API key with every scope, for X-N8N-API-KEY)
#   export N8N_WEBHOOK_BASE=http://127.0.0.1:5678   (where n8n serves production webhooks)
# Facts behind the recipe: n8n 2.x needs Node >= 24; n8n 1.123 installs with --ignore-scripts when
# the `xlsx` dependency (a tarball URL outside the npm registry) is overridden to the registry's 0.18.5,
# and runs with N8N_EXPRESSION_ENGINE=legacy because isolated-vm's native build is skipped;
# N8N_SECURE_COOKIE=false lets curl keep the owner session over plain http on 127.0.0.1.
set -euo pipefail
HOME_DIR=${N8N_HOME:-${TMPDIR:-/tmp}/switchboard-n8n}
PORT=${N8N_PORT:-5678}
PGHOST_=${N8N_PGHOST:-127.0.0.1}
PGPORT_=${N8N_PGPORT:-${PGPORT:-5432}}
PGUSER_=${N8N_PGUSER:-postgres}
PGPASSWORD_=${N8N_PGPASSWORD:-postgres}
DB=${N8N_DB:-switchboard_n8n}
cmd=${1:-start}

if [ "$cmd" = stop ]; then
  if [ -f "$HOME_DIR/pid" ]; then
    pid=$(cat "$HOME_DIR/pid")
    kill "$pid" 2>/dev/null || true
    # n8n takes up to 30 s to shut down; a start meanwhile would find the
    # old process still on the port.
    for _ in $(seq 1 45); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$HOME_DIR/pid"; exit 0
fi

mkdir -p "$HOME_DIR/app" "$HOME_DIR/user"
cd "$HOME_DIR/app"
if [ ! -x node_modules/.bin/n8n ]; then
  cat > package.json <<'JSON'
{"name":"switchboard-n8n","version":"1.0.0","private":true,
 "dependencies":{"n8n":"1.123.81"},"overrides":{"xlsx":"0.18.5"}}
JSON
  echo "installing n8n (a few minutes, once)..." >&2
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2
fi

PGPASSWORD=$PGPASSWORD_ psql -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" -tc "select 1 from pg_database where datname='$DB'" postgres | grep -q 1 \
  || PGPASSWORD=$PGPASSWORD_ createdb -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" "$DB"

export N8N_EXPRESSION_ENGINE=legacy DB_TYPE=postgresdb DB_POSTGRESDB_HOST=$PGHOST_ DB_POSTGRESDB_PORT=$PGPORT_ \
  DB_POSTGRESDB_DATABASE=$DB DB_POSTGRESDB_USER=$PGUSER_ DB_POSTGRESDB_PASSWORD=$PGPASSWORD_ \
  N8N_USER_FOLDER=$HOME_DIR/user N8N_DIAGNOSTICS_ENABLED=false N8N_PORT=$PORT N8N_LISTEN_ADDRESS=127.0.0.1 \
  N8N_PERSONALIZATION_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false N8N_TEMPLATES_ENABLED=false \
  N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=false N8N_SECURE_COOKIE=false \
  WEBHOOK_URL=http://127.0.0.1:$PORT/
nohup node_modules/.bin/n8n start > "$HOME_DIR/n8n.log" 2>&1 &
echo $! > "$HOME_DIR/pid"
# /healthz answers before the database and REST API are ready; /healthz/readiness waits for them.
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$PORT/healthz/readiness" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/healthz/readiness" >/dev/null || { echo "n8n did not start; see $HOME_DIR/n8n.log" >&2; exit 1; }

jar=$HOME_DIR/cookies
email=owner@switchboard.test pass=Switchboard-Test-1
api=http://127.0.0.1:$PORT
# The owner may already exist (a second start on the same database): setup then fails, login works.
scopes=""
for _ in $(seq 1 60); do
  curl -s -c "$jar" -X POST "$api/rest/owner/setup" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"firstName\":\"Test\",\"lastName\":\"Owner\",\"password\":\"$pass\"}" >/dev/null || true
  curl -s -b "$jar" -c "$jar" -X POST "$api/rest/login" -H 'content-type: application/json' \
    -d "{\"emailOrLdapLoginId\":\"$email\",\"password\":\"$pass\"}" >/dev/null || true
  scopes=$(curl -s -b "$jar" "$api/rest/api-keys/scopes" \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]))' 2>/dev/null) && break
  sleep 1
done
[ -n "$scopes" ] || { echo "n8n owner session could not be opened; see $HOME_DIR/n8n.log" >&2; exit 1; }
key=$(curl -s -b "$jar" -X POST "$api/rest/api-keys" -H 'content-type: application/json' \
  -d "{\"label\":\"switchboard-$(date +%s%N)\",\"scopes\":$scopes,\"expiresAt\":null}" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d.get("rawApiKey") or d["apiKey"])')
echo "export N8N_BASE_URL=$api"
echo "export N8N_API_KEY=$key"
echo "export N8N_WEBHOOK_BASE=$api"
