#!/usr/bin/env bash
# Benchmark (not a test): Stripe webhook ingestion (examples/webhook_bench.rs).
# Release build; 1,000 businesses (1 company, 2 channels each) seeded in the
# database, then signed `customer.subscription.updated` events built from
# Stripe's fixtures posted at 64 keep-alive connections, 3 waves of one event
# per business (each wave changes every subscription's price, so every event
# changes the plan). Runs on SQLite, then on PostgreSQL: the server of
# DATABASE_URL when it is a postgres:// URL, else one started with
# scripts/postgres-local.sh (skipped when that fails). Prints events/s, p50,
# p99 and max per wave and combined, and checks the ledger (inbound_events).
# Target: >= 2,000 events/s on SQLite. With --purchases, end-customer
# payment events instead (paid, refunded, late expiries); target >= 5,000.
#
#   benches/webhooks.sh [--businesses N] [--waves N] [--connections N] [--purchases]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example webhook_bench 2>&1 | tail -n 1

. benches/lib.sh
pg_url=$(postgres_url)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
echo "== SQLite"
env -u DATABASE_URL target/release/examples/webhook_bench "$@" | tee -a "$results" || status=1
if [ -n "$pg_url" ]; then
  echo; echo "== PostgreSQL"
  DATABASE_URL=$pg_url target/release/examples/webhook_bench "$@" | tee -a "$results" || status=1
fi

echo; echo "== results"
echo "| database | round | events | wall | events/s | p50 | p99 | max |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
grep -E '^\| (sqlite|postgres) ' "$results" || true
target=2000
case " $* " in *" --purchases "*) target=5000 ;; esac
awk -F'|' -v target="$target" '$2 ~ /sqlite/ && $3 ~ /all waves|wave 1/ { r = $6 } END {
  if (r != "") printf "SQLite events/s: %d (target >= %d): %s\n", r, target, (r + 0 >= target ? "met" : "NOT met") }' "$results"
exit $status
