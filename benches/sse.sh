#!/usr/bin/env bash
# Benchmark (not a test): the live event stream with 1,000 subscribers on
# one business (examples/sse_bench.rs). Release build; the server runs as its
# own process so its memory is measured alone. Runs on SQLite, then on
# PostgreSQL: the server of DATABASE_URL when it is a postgres:// URL, else
# one started with scripts/postgres-local.sh (skipped when that fails).
# Prints p50/p99/max delivery latency (from the change's request to its
# arrival on every subscriber) and the server's RSS per idle subscriber
# (the growth over the second half of the subscribers).
# Targets: p99 <= 100 ms; <= 20 KiB per idle subscriber.
#
#   benches/sse.sh [--subscribers N] [--changes N] [--gap-ms N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin switchboard --example sse_bench 2>&1 | tail -n 1
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. benches/lib.sh
pg_url=$(postgres_url)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
env -u DATABASE_URL target/release/examples/sse_bench "$@" | tee -a "$results" || status=1
if [ -n "$pg_url" ]; then
  DATABASE_URL=$pg_url target/release/examples/sse_bench "$@" | tee -a "$results" || status=1
fi

echo; echo "== results"
echo "| database | subscribers | changes | delivered | p50 ms | p99 ms | max ms | RSS 1 sub KiB | RSS half KiB | RSS all KiB | KiB per idle subscriber | RSS after KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
grep -E '^\| (sqlite|postgres) ' "$results" || true
exit $status
