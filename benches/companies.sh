#!/usr/bin/env bash
# Benchmark (not a test): GET /v1/companies on the real server (release
# build, valid token, 100 businesses × 5 companies seeded through the API)
# against a bare axum handler returning the same JSON with no auth and no
# database. wrk: 64 connections, 2 threads, 10 s after a 3 s warm-up.
#
# DB=sqlite (default): the real endpoint is measured twice, with the default
# configuration (other processes may open the database file) and with
# sqlite_exclusive = true (the server holds the file alone; see README).
# DB=postgres: on the PostgreSQL server of scripts/postgres-local.sh (started
# if needed; a fresh database per run), beside `pgbench -S` (select-only,
# 64 clients) on the same server as the database's own ceiling.
#
# The targets are loaded in turn, ROUNDS times (default 3), so that a slow
# spell of the machine falls on all of them; each round prints req/s, p50
# and p99 of each and its ratios to the bare handler, and the last line
# gives the median ratios. Floor: >= 35% on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin switchboard --example bare 2>&1 | tail -n 1

work=$(mktemp -d)
port=18080; bare_port=18081
cleanup() {
  kill "${server:-}" "${bare:-}" 2>/dev/null || true
  if [ -n "${pgbench_url:-}" ]; then
    sleep 0.5
    psql "$base_url" -qc "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
    psql "$base_url" -qc "DROP DATABASE IF EXISTS ${name}_pgbench" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

DB=${DB:-sqlite}
if [ "$DB" = postgres ]; then
  eval "$(scripts/postgres-local.sh start)"
  base_url=$DATABASE_URL
  name="bench_$$"
  psql "$base_url" -qc "CREATE DATABASE $name" >/dev/null
  psql "$base_url" -qc "CREATE DATABASE ${name}_pgbench" >/dev/null
  export DATABASE_URL="${base_url%/*}/$name"
  pgbench_url="${base_url%/*}/${name}_pgbench"
  pgbench -q -i -s 10 "$pgbench_url" >/dev/null 2>&1
else
  export DATABASE_URL="sqlite://$work/bench.db?mode=rwc"
fi
export SWITCHBOARD_BIND=127.0.0.1:$port
export SWITCHBOARD_DEV_KEYS_PATH=$work/keys.json
export SWITCHBOARD_RATE_LIMIT__AUTH_PER_MINUTE=1000000
export SWITCHBOARD_LOG=warn
target/release/switchboard serve > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

api=http://127.0.0.1:$port/v1
json='content-type: application/json'
echo "seeding 100 businesses x 5 companies..."
for i in $(seq 1 100); do
  token=$(register_owner "$api" "$work/server.log" "bench$i@example.com" "benchmark password" "Bench $i")
  for c in 1 2 3 4 5; do
    curl -sf -XPOST "$api/companies" -H "$json" -H "authorization: Bearer $token" \
      -d "{\"name\":\"Company $i-$c\",\"kind\":\"product\"}" >/dev/null
  done
done
# Access tokens live 15 min: enough for this run.
curl -sf "$api/companies" -H "authorization: Bearer $token" > "$work/body.json"
echo "response: $(wc -c < "$work/body.json") bytes, $(grep -o '"code"' "$work/body.json" | wc -l) companies"

run() { # url, extra header
  wrk -t2 -c64 -d3s ${2:+-H "$2"} "$1" >/dev/null
  wrk -t2 -c64 -d10s --latency ${2:+-H "$2"} "$1"
}
serve() { # extra environment; restarts the server on the same database
  kill "$server"; wait "$server" 2>/dev/null || true
  env "$@" target/release/switchboard serve >> "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  curl -sf "$api/companies" -H "authorization: Bearer $token" | cmp -s - "$work/body.json" \
    || { echo "the restarted server ($*) answered a different body"; exit 1; }
}
field() { echo "$1" | awk -v k="$2" '$1==k {print $2}'; }
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
non2xx() { echo "$1" | awk '/Non-2xx/ {print $NF}'; }
row() { printf '%-28s %12s %10s %10s\n' "$1" "$(rps "$2")" "$(field "$2" 50%)" "$(field "$2" 99%)"; }

target/release/examples/bare "$work/body.json" 127.0.0.1:$bare_port &
bare=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$bare_port/v1/companies" >/dev/null && break; sleep 0.1; done

ratios=()
for round in $(seq 1 "${ROUNDS:-3}"); do
  if [ "$DB" = postgres ]; then
    real=$(run "$api/companies" "authorization: Bearer $token")
    # The database's own ceiling: primary-key selects, 64 clients.
    pg=$(pgbench -n -S -c 64 -j 2 -T 10 "$pgbench_url" 2>/dev/null | awk '/^tps/ {print $3; exit}')
    exclusive=$real
  else
    [ "$round" = 1 ] || serve SWITCHBOARD_SQLITE_EXCLUSIVE=false
    real=$(run "$api/companies" "authorization: Bearer $token")
    serve SWITCHBOARD_SQLITE_EXCLUSIVE=true
    exclusive=$(run "$api/companies" "authorization: Bearer $token")
  fi
  base=$(run "http://127.0.0.1:$bare_port/v1/companies")
  for r in "$real" "$exclusive"; do
    [ -z "$(non2xx "$r")" ] || echo "WARNING: the real endpoint answered $(non2xx "$r") non-2xx responses"
  done
  printf '\nround %s (%s)\n%-28s %12s %10s %10s\n' "$round" "$DB" "target" "req/s" "p50" "p99"
  row "GET /v1/companies (real)" "$real"
  if [ "$DB" = postgres ]; then
    printf '%-28s %12s\n' "pgbench -S (tps)" "$pg"
  else
    row "  same, sqlite_exclusive" "$exclusive"
  fi
  row "bare axum handler" "$base"
  ratio=$(awk -v a="$(rps "$real")" -v e="$(rps "$exclusive")" -v b="$(rps "$base")" \
    'BEGIN { printf "%.1f %.1f", 100*a/b, 100*e/b }')
  if [ "$DB" = postgres ]; then
    echo "ratio real/bare: ${ratio% *}%; real/pgbench -S: $(awk -v a="$(rps "$real")" -v p="$pg" 'BEGIN { printf "%.1f", 100*a/p }')%"
  else
    echo "ratio real/bare: ${ratio% *}% (default), ${ratio#* }% (sqlite_exclusive)"
  fi
  ratios+=("$ratio")
done
printf '%s\n' "${ratios[@]}" | awk '{ d[NR]=$1; e[NR]=$2 }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END { printf "\nmedian ratio real/bare over %d rounds: %.1f%% (default), %.1f%% (sqlite_exclusive; on postgres the same run); floor >= 35%% on SQLite\n", NR, median(d, NR), median(e, NR) }'
