#!/usr/bin/env bash
# A/B: two sessiond binaries on one route, measured in alternation on the same machine.
#
#   bash bench/ab.sh BIN_A BIN_B [MODE] [ROUNDS] [SECONDS]
#     MODE: db | compact | jwt | jwe | fa-db | fa-compact (as bench/profile.sh); default compact
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
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
OUT=${OUT:-$ROOT/bench/out}/ab
DB=sessiond_ab_$$
SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
PSQL=(psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER")
mkdir -p "$OUT/cwd"
: >"$OUT/cwd/empty.toml"
cp "$A" "$OUT/a.bin"
cp "$B" "$OUT/b.bin"

PIDS=()
DB_CREATED=0
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ "$DB_CREATED" = 1 ] && "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null
}
trap cleanup EXIT

case $MODE in
db | fa-db) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false) ;;
compact | fa-compact) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact) ;;
jwt | jwe) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=$MODE) ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
case $MODE in fa-*) ROUTE=/forward-auth ;; *) ROUTE=/api/auth/get-session ;; esac

"${PSQL[@]}" -d postgres -c "create database $DB" >/dev/null
DB_CREATED=1
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A URL
for side in a b; do
  port=$(free_port)
  URL[$side]=http://127.0.0.1:$port
  (cd "$OUT/cwd" && exec env DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=disable" \
    SESSIOND_HOST=127.0.0.1 SESSIOND_PORT="$port" SESSIOND_BASE_URL="${URL[$side]}" BETTER_AUTH_SECRET="$SECRET" \
    SESSIOND_ENVIRONMENT=production SESSIOND_ADVANCED__USE_SECURE_COOKIES=false \
    SESSIOND_RATE_LIMIT__ENABLED=false SESSIOND_LOG__LEVEL=warn "${CACHE[@]}" \
    "$OUT/$side.bin" --config "$OUT/cwd/empty.toml") >"$OUT/server-$side.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "${URL[$side]}/api/auth/ok" && break; sleep 0.1; done
done
curl -sS -o /dev/null -c "$OUT/jar" -H "Origin: ${URL[a]}" -H 'Content-Type: application/json' \
  --data '{"name":"P","email":"ab@example.com","password":"bench-password-123"}' "${URL[a]}/api/auth/sign-up/email"
COOKIE=$(awk -F'\t' 'NF==7 {printf "%s%s=%s", (n++ ? "; " : ""), $6, $7}' "$OUT/jar")
for side in a b; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "${URL[$side]}$ROUTE")
  [ "$code" = 200 ] || { echo "$side answered $code" >&2; exit 1; }
  wrk -t2 -c64 -d2s -H "Cookie: $COOKIE" "${URL[$side]}$ROUTE" >/dev/null
done

: >"$OUT/runs.tsv"
for r in $(seq "$ROUNDS"); do
  for side in a b; do
    line=$(wrk -t2 -c64 -d"${SECS}s" --latency -H "Cookie: $COOKIE" "${URL[$side]}$ROUTE" |
      awk '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} END {print rps "\t" p99}')
    printf '%s\t%s\t%s\n' "$side" "$r" "$line" | tee -a "$OUT/runs.tsv"
  done
done
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
