#!/usr/bin/env bash
# Benchmark (not a test): WAHA webhook ingestion (examples/waha_bench.rs).
# Release build; 10 businesses x 10 WhatsApp channels connected through the
# API against the local WAHA server (each session its own key), then 100
# signed deliveries per session (one session.status WORKING, 99 messages),
# sessions interleaved, at 64 keep-alive connections; then all of them
# again (duplicates). Runs on SQLite, then on PostgreSQL: the server of
# DATABASE_URL when it is a postgres:// URL, else one started with
# scripts/postgres-local.sh (skipped when that fails). Prints events/s, p50,
# p99 and max per round, and checks the ledger (each event once) and that
# every channel is connected. Target: >= 5,000 events/s on SQLite.
#
#   benches/waha.sh [--businesses N] [--channels N] [--events N] [--connections N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example waha_bench 2>&1 | tail -n 1

. benches/lib.sh
pg_url=$(postgres_url)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
echo "== SQLite"
env -u DATABASE_URL target/release/examples/waha_bench "$@" | tee -a "$results" || status=1
if [ -n "$pg_url" ]; then
  echo; echo "== PostgreSQL"
  DATABASE_URL=$pg_url target/release/examples/waha_bench "$@" | tee -a "$results" || status=1
fi

echo; echo "== results"
echo "| database | round | events | wall | events/s | p50 | p99 | max |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
grep -E '^\| (sqlite|postgres) ' "$results" || true
awk -F'|' '$2 ~ /sqlite/ && $3 ~ /first deliveries/ { r = $6 } END {
  if (r != "") printf "SQLite events/s: %d (target >= 5000): %s\n", r, (r + 0 >= 5000 ? "met" : "NOT met") }' "$results"
exit $status
