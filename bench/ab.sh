#!/usr/bin/env bash
# A/B: two sessiond binaries on one route, measured in alternation on the same machine.
#
#   bash bench/ab.sh BIN_A BIN_B [MODE] [ROUNDS] [SECONDS]
#     MODE: db | compact | jwt | jwe | fa-db | fa-compact | fa-compact-jwt | compact-audit | db-audit
#     (as bench/profile.sh; the -audit modes record lifecycle events); db-hooks (as MODE_B)
#     delivers webhooks to a receiver that answers after 10 s, with 10 000 events queued
#     before the runs, so that deliveries hang on it throughout;
#     default compact. MODE_B=<mode> runs B in another mode on the same route (one binary
#     twice: what a setting costs), e.g. MODE_B=fa-compact-jwt with MODE fa-compact.
#     OTLP_B=<ratio> runs B with trace export on (OTLP/HTTP to a local sink, bench/otlp_sink.py,
#     sampler parentbased_traceidratio at that ratio), e.g. OTLP_B=0.01 with A = B = one
#     binary: what tracing costs.
#     SESSIONS=<n> spreads the requests over n distinct sessions (of n users, inserted in the
#     database, cookies signed here) instead of one: for the database modes, where reads of
#     one session would share its row.
#
# Both servers run at once on one throwaway database (idle one costs nothing), share a
# secret so one cookie serves both, and wrk -t2 -c64 alternates between them ROUNDS times
# (default 5), so that drift of a shared machine hits both alike. Prints every run and the
# median req/s and p99 of each binary. Everything it starts is stopped and the database
# dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
A=$(realpath "$1")
B=$(realpath "$2")
MODE=${3:-compact}
ROUNDS=${4:-5}
SECS=${5:-5}
OUT=${OUT:-$ROOT/bench/out}/ab
DB=sessiond_ab_$$
source "$ROOT/bench/lib.sh"
mkdir -p "$OUT"
cp "$A" "$OUT/a.bin"
cp "$B" "$OUT/b.bin"

PIDS=()
DB_CREATED=0
trap stop_started EXIT

HOOK_PORT=$(free_port)
export HOOK_URL=http://127.0.0.1:$HOOK_PORT/hook
if [[ "$MODE ${MODE_B:-}" == *-hooks* ]]; then
  python3 "$ROOT/bench/slow_receiver.py" "$HOOK_PORT" 10 &
  PIDS+=($!)
fi
bench_mode "$MODE"
[ "$MODE" != list ] || { echo "list is profile.sh's mode" >&2; exit 2; }
"${PSQL[@]}" -d postgres -c "create database $DB" >/dev/null
DB_CREATED=1
declare -A URL
for side in a b; do
  port=$(free_port)
  URL[$side]=http://127.0.0.1:$port
  if [ "$side" = b ] && [ -n "${MODE_B:-}" ]; then bench_mode "$MODE_B"; fi
  if [ "$side" = b ] && [ -n "${OTLP_B:-}" ]; then
    sink_port=$(free_port)
    python3 "$ROOT/bench/otlp_sink.py" "$sink_port" >"$OUT/otlp-sink.log" 2>&1 &
    PIDS+=($!)
    CACHE+=(OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
      OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG="$OTLP_B")
  fi
  start_sessiond_on "$OUT/$side.bin" "$DB" "$port" "$OUT/server-$side.log"
done
COOKIE=$(sign_up_cookie "${URL[a]}" ab@example.com "$OUT/jar")
WRK_ARGS=(-H "Cookie: $COOKIE")
if [ -n "${SESSIONS:-}" ]; then
  "${PSQL[@]}" -d "$DB" >/dev/null <<SQL
insert into "user" ("id", "name", "email", "emailVerified", "createdAt", "updatedAt")
  select 'au' || i, 'AB ' || i, 'ab' || i || '@bench.invalid', false, now(), now()
  from generate_series(1, $SESSIONS) i;
insert into "session" ("id", "token", "userId", "expiresAt", "createdAt", "updatedAt", "ipAddress", "userAgent")
  select 'ai' || i, 'as' || lpad(i::text, 30, '0'), 'au' || i, now() + interval '7 days', now(), now(), '', 'bench'
  from generate_series(1, $SESSIONS) i;
analyze;
SQL
  python3 - "$SECRET" "$OUT/cookies" "$SESSIONS" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
secret, path, n = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3])
with open(path, "w") as f:
    for i in range(1, n + 1):
        t = "as" + str(i).zfill(30)
        sig = base64.b64encode(hmac.new(secret, t.encode(), hashlib.sha256).digest()).decode()
        f.write("better-auth.session_token=" + urllib.parse.quote(t + "." + sig, safe="-_.!~*'()") + "\n")
PY
  export WRK_COOKIES=$OUT/cookies
  WRK_ARGS=(-s "$ROOT/bench/wrk.lua")
  COOKIE=$(head -1 "$OUT/cookies")
fi
for side in a b; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "${URL[$side]}$ROUTE")
  [ "$code" = 200 ] || { echo "$side answered $code" >&2; exit 1; }
  wrk -t2 -c64 -d2s "${WRK_ARGS[@]}" "${URL[$side]}$ROUTE" >/dev/null
done

if [[ "$MODE ${MODE_B:-}" == *-hooks* ]]; then
  # Events due at once, as triggers write them: the loop keeps its deliveries in flight.
  "${PSQL[@]}" -d "$DB" -c "insert into sessiond_event (\"eventId\", \"type\", \"occurredAt\", \"data\", \"nextAt\")
    select 'evt_bench' || g, 'session.created', now(), '{}'::jsonb, now() from generate_series(1, 10000) g" >/dev/null
fi
: >"$OUT/runs.tsv"
for r in $(seq "$ROUNDS"); do
  for side in a b; do
    line=$(wrk -t2 -c64 -d"${SECS}s" --latency "${WRK_ARGS[@]}" "${URL[$side]}$ROUTE" |
      tee "$OUT/wrk-$side-$r.txt" | awk '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} END {print rps "\t" p99}')
    printf '%s\t%s\t%s\n' "$side" "$r" "$line" | tee -a "$OUT/runs.tsv"
  done
done
if [[ "$MODE ${MODE_B:-}" == *-hooks* ]]; then
  echo "webhook events: $("${PSQL[@]}" -d "$DB" -At -F ' ' -c "select count(*) filter (where pending) || ' pending, ' || sum(attempts) || ' delivery rounds made' from sessiond_event")"
fi
python3 - "$OUT/runs.tsv" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
med = {}
for side in "ab":
    rps = [float(r[2]) for r in rows if r[0] == side]
    p99 = [ms(r[3]) for r in rows if r[0] == side]
    med[side] = statistics.median(rps)
    print(f"{side}: median {med[side]:,.0f} req/s (min {min(rps):,.0f}, max {max(rps):,.0f}), median p99 {statistics.median(p99):.2f} ms")
print(f"b/a: {med['b'] / med['a']:.3f}")
PY
