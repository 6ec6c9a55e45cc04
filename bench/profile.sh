#!/usr/bin/env bash
# Profiles sessiond's hot path with perf while wrk drives one route.
#
#   bash bench/profile.sh [MODE] [SECONDS]
#     MODE: db (get-session, no cache; default) | compact | jwt | jwe | fa-db | fa-compact
#           | list (list-sessions for a user with $LIST_SESSIONS sessions, 1000 by default)
#
# Builds the release binary (or uses BENCH_BIN), creates a throwaway database on
# $PGHOST:$PGPORT (sessiond migrates it), signs a user up, runs wrk -t2 -c64 under
# `perf record --call-graph dwarf`, then prints the hottest symbols and the share of samples
# under a few functions of interest. Files in bench/out/profile-MODE.*; everything it starts
# is stopped and the database dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-db}
SECS=${2:-8}
OUT=${OUT:-$ROOT/bench/out}
DB=sessiond_profile_$$
source "$ROOT/bench/lib.sh"
log() { echo "[profile $(date +%T)] $*" >&2; }
mkdir -p "$OUT"

command -v perf >/dev/null || { log "installing perf"; apt-get install -y -qq linux-perf >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }; }
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet
  BENCH_BIN=$ROOT/target/release/sessiond
fi
cp "$BENCH_BIN" "$OUT/sessiond-profile.bin"
BIN=$OUT/sessiond-profile.bin

PIDS=()
DB_CREATED=0
trap stop_started EXIT

bench_mode "$MODE"

"${PSQL[@]}" -d postgres -c "create database $DB" >/dev/null
DB_CREATED=1
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
start_sessiond_on "$BIN" "$DB" "$PORT" "$OUT/profile-$MODE.server.log"
PID=$SPAWNED_PID
COOKIE=$(sign_up_cookie "$URL" profile@example.com "$OUT/profile.jar")
if [ "$MODE" = list ]; then
  "${PSQL[@]}" -d "$DB" -c "insert into \"session\" (\"id\", \"token\", \"userId\", \"expiresAt\", \"createdAt\", \"updatedAt\", \"ipAddress\", \"userAgent\")
    select 'pi' || i, 'ps' || lpad(i::text, 30, '0'), u.\"id\", now() + interval '7 days', now(), now(), '127.0.0.1', 'profile list'
    from generate_series(2, ${LIST_SESSIONS:-1000}) i, \"user\" u" >/dev/null
fi

wrk -t2 -c64 -d2s -H "Cookie: $COOKIE" "$URL$ROUTE" >/dev/null   # warm-up
perf record -q -F 499 --call-graph dwarf,16384 -p "$PID" -o "$OUT/profile-$MODE.data" -- sleep "$((SECS + 1))" 2>/dev/null &
PERF=$!
sleep 0.5
wrk -t2 -c64 -d"${SECS}s" -H "Cookie: $COOKIE" "$URL$ROUTE" | grep -E 'Requests/sec|Latency' >&2
wait "$PERF" || true
perf script -i "$OUT/profile-$MODE.data" 2>/dev/null >"$OUT/profile-$MODE.txt"

echo "== hottest symbols (self) =="
perf report -i "$OUT/profile-$MODE.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  grep '%' | sed 's/  */ /g' | cut -c1-150 | head -30 || true
echo
echo "== share of samples with the function on the stack =="
python3 - "$OUT/profile-$MODE.txt" <<'PY'
import re, sys
samples, cur = [], []
for line in open(sys.argv[1], errors="replace"):
    if not line.strip():
        if cur:
            samples.append(cur)
        cur = []
    elif line[0] in " \t":
        parts = line.split(None, 1)
        if len(parts) == 2:
            cur.append(parts[1])
if cur:
    samples.append(cur)
groups = [
    ("handler (get_session_with / forward_auth::check)", r"get_session_with|forward_auth::check"),
    ("SessionService::resolve", r"SessionService::resolve"),
    ("cookie cache decode", r"CacheCodec::decode"),
    ("  JSON parse (serde_json::de)", r"serde_json::de|Deserialize for serde_json"),
    ("  HMAC / SHA-2 (RustCrypto)", r"sha2::|hmac::"),
    ("  josekit / OpenSSL", r"josekit|libcrypto|openssl"),
    ("Session/User from JSON", r"Session::from_json|User::from_json"),
    ("response JSON (json!/Value/serialize)", r"session_body|serde_json::value::ser|serde_json::ser"),
    ("store find_session", r"find_session"),
    ("sqlx pool ping (acquire + release)", r"::ping"),
    ("sqlx return_to_pool", r"return_to_pool"),
    ("AppState drop (Arc refcounts)", r"drop_in_place<sessiond::http::AppState>"),
    ("router service clones (clone_box)", r"clone_box|HandlerService<H,T,S> as core::clone"),
    ("metrics", r"sessiond::metrics|metrics::"),
    ("request id (uuid)", r"uuid|getrandom"),
    ("malloc/free", r"malloc|_int_free|cfree|realloc"),
    ("socket writes", r"writev|sendmsg|sendto"),
]
n = len(samples) or 1
print(f"{len(samples)} samples")
for name, pat in groups:
    r = re.compile(pat)
    k = sum(1 for s in samples if any(r.search(f) for f in s))
    print(f"{100 * k / n:6.1f} %  {name}")
PY
