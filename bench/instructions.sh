#!/usr/bin/env bash
# Instructions per request of the cache-hit get-session, counted by callgrind: a figure that
# another process on the machine does not move, unlike req/s.
#
#   bash bench/instructions.sh BIN [RATIO] [N]
#     RATIO: off (default), or trace export on (OTLP/HTTP to bench/otlp_sink.py, sampler
#     parentbased_traceidratio at that ratio), e.g. 0.01.
#     N: requests counted (default 2000), after 300 that are not.
#   REQUEST="HEAD /forward-auth" bash bench/instructions.sh BIN   counts another route instead
#     (default "GET /api/auth/get-session"), with the same session's cookies.
#
# sessiond runs under valgrind on a throwaway database; one client sends the requests one
# after another on one connection. The count covers the whole process between the two marks
# (background threads included, a few hundred instructions per request of drift between
# runs). Everything it starts is stopped and the database dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$(realpath "$1")
RATIO=${2:-off}
N=${3:-2000}
REQUEST=${REQUEST:-GET /api/auth/get-session}
OUT=$(mktemp -d)
DB=sessiond_cg_$$
source "$ROOT/bench/lib.sh"
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }

PIDS=()
DB_CREATED=0
trap 'stop_started; rm -rf "$OUT"' EXIT

bench_mode compact
if [ "$RATIO" != off ]; then
  sink_port=$(free_port)
  python3 "$ROOT/bench/otlp_sink.py" "$sink_port" >/dev/null 2>&1 &
  PIDS+=($!)
  CACHE+=(OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG="$RATIO")
fi
"${PSQL[@]}" -d postgres -c "create database $DB" >/dev/null
DB_CREATED=1
port=$(free_port)
# The environment ends at the first word that is not VAR=value: valgrind runs BIN.
spawn_sessiond "$BIN" "postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=disable" "$port" \
  "$OUT/server.log" "${CACHE[@]}" valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out"
PIDS+=("$SPAWNED_PID")
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/auth/ok" && break; sleep 0.2; done
COOKIE=$(sign_up_cookie "http://127.0.0.1:$port" cg@example.com "$OUT/jar")
requests() {
  python3 - "$port" "$COOKIE" "$1" $REQUEST <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[3])):
    c.request(sys.argv[4], sys.argv[5], headers={"Cookie": sys.argv[2]})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
}
requests 300
callgrind_control -z "$SPAWNED_PID" >/dev/null 2>&1
requests "$N"
callgrind_control -d "$SPAWNED_PID" >/dev/null 2>&1
sleep 1
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT"/cg.out.*)
echo "$REQUEST, ratio $RATIO: $N requests, $total instructions, $((total / N)) per request"
