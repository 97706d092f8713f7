#!/usr/bin/env bash
# Benchmark (not a test): does the API stay fast under a login flood?
# Release build, zero-config SQLite server, one business with 5 companies.
#   W1: wrk -t2 -c64 on GET /v1/companies with a valid token, alone (10 s);
#   then W1 again while 200 concurrent logins run (wrk -t1 -c200 posting
#   the real password, benches/login.lua), with the auth rate limit raised
#   as many client IPs would do.
# Prints W1's req/s and p99 alone and under the flood (goal: >= 80% and
# p99 < 2x), and the logins' status codes and latency (goal: every login
# answers within 2 s, as 200, or 503 `auth_overloaded` with Retry-After).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin switchboard 2>&1 | tail -n 1

work=$(mktemp -d)
port=18180
cleanup() { kill "${server:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export DATABASE_URL="sqlite://$work/bench.db?mode=rwc"
export SWITCHBOARD_BIND=127.0.0.1:$port
export SWITCHBOARD_DEV_KEYS_PATH=$work/keys.json
export SWITCHBOARD_RATE_LIMIT__AUTH_PER_MINUTE=100000000
export SWITCHBOARD_LOG=warn
target/release/switchboard serve > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

api=http://127.0.0.1:$port/v1
json='content-type: application/json'
email=flood@example.com
password="benchmark password"
token=$(register_owner "$api" "$work/server.log" "$email" "$password" "Flood")
for c in 1 2 3 4 5; do
  curl -sf -XPOST "$api/companies" -H "$json" -H "authorization: Bearer $token" \
    -d "{\"name\":\"Company $c\",\"kind\":\"product\"}" >/dev/null
done

w1() { wrk -t2 -c64 -d"$1" --latency -H "authorization: Bearer $token" "$api/companies"; }
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
p99() { echo "$1" | awk '$1=="99%" {print $2}'; }

w1 3s >/dev/null
alone=$(w1 10s)
cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"email":"$email","password":"$password"}'
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() ok, busy, busy_bare, other = 0, 0, 0, 0 end
response = function(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
    if headers["Retry-After"] == nil and headers["retry-after"] == nil then busy_bare = busy_bare + 1 end
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local o, b, bb, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("busy"); bb = bb + t:get("busy_bare"); x = x + t:get("other")
  end
  io.write(string.format("logins: %d answered (200: %d, 503: %d, of which without Retry-After: %d, other: %d), timeouts %d; latency p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
    summary.requests, o, b, bb, x, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
LUA
# The flood: 200 connections posting logins back to back for 14 s, W1 in the middle.
wrk -t1 -c200 -d14s --timeout 10s -s "$work/login.lua" "$api/auth/login" > "$work/flood.txt" 2>&1 &
flood=$!
sleep 2
under=$(w1 10s)
wait $flood

printf '%-34s %12s %10s\n' "" "req/s" "p99"
printf '%-34s %12s %10s\n' "W1 alone" "$(rps "$alone")" "$(p99 "$alone")"
printf '%-34s %12s %10s\n' "W1 under 200 concurrent logins" "$(rps "$under")" "$(p99 "$under")"
awk -v a="$(rps "$alone")" -v u="$(rps "$under")" 'BEGIN { printf "W1 keeps %.1f%% of its throughput (goal >= 80%%)\n", 100*u/a }'
grep -E "^logins:" "$work/flood.txt" || cat "$work/flood.txt"
