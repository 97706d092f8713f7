# Shared by the benchmarks (sourced, not run): signing up an owner through
# the API the way a person would, reading the emailed code from the server's
# console log; the PostgreSQL server a benchmark also runs on.

# register_owner API LOG EMAIL PASSWORD NAME: prints the owner's access token.
register_owner() {
  local api=$1 log=$2 email=$3 password=$4 name=$5 json='content-type: application/json' code="" reg
  curl -sf -XPOST "$api/auth/register/start" -H "$json" -d "{\"email\":\"$email\"}" >/dev/null
  for _ in $(seq 1 200); do # the job runner delivers (prints) it shortly after
    code=$(grep -A1 "email to $email:" "$log" | grep -o 'code is [0-9]\{6\}' | tail -n1 | cut -d' ' -f3 || true)
    [ -n "$code" ] && break
    sleep 0.02
  done
  reg=$(curl -sf -XPOST "$api/auth/register/verify" -H "$json" -d "{\"email\":\"$email\",\"code\":\"$code\"}" \
    | sed 's/.*"registration_token":"\([^"]*\)".*/\1/')
  curl -sf -XPOST "$api/auth/register/complete" -H "$json" \
    -d "{\"registration_token\":\"$reg\",\"password\":\"$password\",\"full_name\":\"$name\",\"business_name\":\"$name\"}" \
    | sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}

# postgres_url: prints the PostgreSQL URL a benchmark also runs on: the
# server of DATABASE_URL when it is a postgres:// URL, else one started with
# scripts/postgres-local.sh; prints nothing (and says why) when neither works.
postgres_url() {
  case "${DATABASE_URL:-}" in
    postgres://* | postgresql://*) echo "$DATABASE_URL" ;;
    *)
      local out
      if out=$(bash scripts/postgres-local.sh start 2>/dev/null); then
        echo "$out" | sed -n 's/^export DATABASE_URL=//p'
      else
        echo "PostgreSQL unavailable (scripts/postgres-local.sh start failed): SQLite only" >&2
      fi ;;
  esac
}
