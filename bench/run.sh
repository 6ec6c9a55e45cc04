#!/usr/bin/env bash
# sessiond vs the real Better Auth 1.7 vs a bare axum handler, on one PostgreSQL database.
#
#   bash bench/run.sh                       # everything, ~20 min; prints the table, writes bench/RESULTS.md
#   DUR=5 WARM=1 bash bench/run.sh          # a quick pass
#   ROWS="ceiling gs_db gs_compact" bash bench/run.sh   # a subset (row keys below)
#
# What it does (see bench/README.md):
#   1. cargo build --release (sessiond) and bench/ceiling (bare axum); wrk (apt) and
#      compat/node_modules (npm ci) if missing;
#   2. a fresh database on $PGHOST:$PGPORT, migrated by Better Auth (node
#      compat/better-auth/server.mjs migrate) and adopted by sessiond; users signed up over
#      HTTP, 1,000 more sessions bulk-inserted;
#   3. per row: a fresh server, sign-in right before, wrk warm-up + REPS measured runs
#      (-t$THREADS -c$CONNS), peak RSS (VmHWM, reset after the warm-up), CPU of the server,
#      of its PostgreSQL backends, and of everything else on the machine; the report shows
#      the run with the median req/s of each row (and the highest peak RSS of its runs);
#   4. SQL round trips per request through a counting proxy (bench/pgcount.py);
#   5. scale: 1,000,000 sessions bulk-inserted, get-session and list-sessions again; the
#      get-session rows measured in turn with the same requests on a copy of the phase-A database;
#   6. the table on stdout and in bench/RESULTS.md; the raw files in bench/out/.
#
# Knobs (environment): DUR (s, 12), WARM (s, 3), REPS (measured runs per row, 3), THREADS (2),
#   CONNS (64), SIGNIN_CONNS (4),
#   SQL_N (requests per round-trip count, 200), SCALE_SESSIONS (1000000), SPREAD_SAMPLE
#   (cookies drawn from the big table, 50000), LIST_SESSIONS (1000), ROWS (subset of row keys),
#   PGHOST/PGPORT/PGUSER (127.0.0.1/5432/postgres), PG_SSLMODE (disable: sessiond's
#   connections as node-pg's, no TLS), BENCH_BIN (use this binary, skip the build),
#   QUIET_PCT/QUIET_MAX (before each row wait until the rest of the machine uses at most
#   QUIET_PCT % of it, at most QUIET_MAX s; default 10/0 = do not wait), RESULTS (output
#   file, bench/RESULTS.md), OUT (raw files, bench/out), SQL_WARM/SIGNIN_N (20/10: requests
#   before a round-trip count, sign-ins counted), PIN_WRK/PIN_SRV/PIN_PG (taskset CPU lists for
#   wrk and the load tools, the servers, the bench databases' PostgreSQL backends; unset =
#   unpinned), NGINX_WORKERS (1), BUILD_PROFILE (release), SMOKE (1 = does it still work: 2 s
#   runs of a few rows, debug builds, better-auth-rs only if already built; bench/out-smoke).
#
# Row keys: ceiling gs_db gs_tls gs_compact gs_jwt gs_jwe fa_cache fa_db list signin signin_unknown signin64
#   gs_mixed pgbench gs_redis fa_redis redis_get nginx peer scale (scale = spread_1k gs_db_ref
#   gs_db_1m spread_1k_ref spread_1m_1k spread_1m list_1k; peer = better-auth-rs's rows).
#
# Everything it starts is stopped by pid, and the database is dropped, on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench

# SMOKE=1: does the script still work? (CI) A second each, a few rows, debug builds.
if [ -n "${SMOKE:-}" ]; then
  DUR=${DUR:-2} REPS=${REPS:-1} WARM=${WARM:-0} SQL_N=${SQL_N:-20} SQL_WARM=${SQL_WARM:-3} SIGNIN_N=${SIGNIN_N:-2}
  ROWS=${ROWS:-"ceiling gs_db gs_compact fa_cache pgbench gs_redis fa_redis redis_get nginx peer"}
  OUT=${OUT:-$BENCH/out-smoke} RESULTS=${RESULTS:-$BENCH/out-smoke/RESULTS.md}
  BUILD_PROFILE=${BUILD_PROFILE:-debug}
fi
DUR=${DUR:-12}
REPS=${REPS:-3}
WARM=${WARM:-3}
BUILD_PROFILE=${BUILD_PROFILE:-release}
# taskset CPU lists (empty = unpinned): wrk and the load tools, the servers (all their threads),
# the PostgreSQL backends of the bench databases (pinned before each measured run)
PIN_WRK=${PIN_WRK:-}
PIN_SRV=${PIN_SRV:-}
PIN_PG=${PIN_PG:-}
PIN_WRK_CMD=()
[ -z "$PIN_WRK" ] || PIN_WRK_CMD=(taskset -c "$PIN_WRK")
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
SIGNIN_CONNS=${SIGNIN_CONNS:-4}
SQL_N=${SQL_N:-200}
SQL_WARM=${SQL_WARM:-20}
SIGNIN_N=${SIGNIN_N:-10}
SCALE_SESSIONS=${SCALE_SESSIONS:-1000000}
SPREAD_SAMPLE=${SPREAD_SAMPLE:-50000}
LIST_SESSIONS=${LIST_SESSIONS:-1000}
ROWS=${ROWS:-"ceiling gs_db gs_tls gs_compact gs_jwt gs_jwe fa_cache fa_db list signin signin_unknown signin64 gs_mixed pgbench gs_redis fa_redis redis_get nginx peer scale"}
PG_SSLMODE=${PG_SSLMODE:-disable}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_MAX=${QUIET_MAX:-0}
OUT=${OUT:-$BENCH/out}
RESULTS=${RESULTS:-$BENCH/RESULTS.md}
source "$BENCH/lib.sh"

DB=sessiond_bench_$$
DB_URL=postgres://$PGUSER@$PGHOST:$PGPORT/$DB
# a copy of the database as phase A left it: the scale rows are measured in turn against it
REF_DB=${DB}_ref
FILLER_USERS=1000
CLK_TCK=$(getconf CLK_TCK)

unset WRK_COOKIES WRK_METHOD WRK_BODY
log() { echo "[bench $(date +%T)] $*" >&2; }
has_row() { [[ " $ROWS " == *" $1 "* ]]; }

mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.tsv "$OUT"/*.json "$OUT"/*.log "$OUT"/*.cookies "$OUT"/*.jar "$OUT"/*.time "$OUT"/sessiond.bin

# ------------------------------------------------------------------ cleanup
PIDS=()
DB_CREATED=0
DB_EXTRA=()
cleanup() {
  set +e
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null; fi
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$DB_CREATED" = 1 ]; then
    "${PSQL[@]}" -d postgres -c "drop database if exists $REF_DB with (force)" >/dev/null 2>&1
    for p in "${DB_EXTRA[@]}"; do "${PSQL[@]}" -d postgres -c "drop database if exists $p with (force)" >/dev/null 2>&1; done
    "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null 2>&1 &&
      log "dropped database $DB"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ prerequisites
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
need() { # ROW-KEY PROGRAM...: the programs a requested row runs must be there
  local row=$1 prog
  shift
  has_row "$row" || return 0
  for prog in "$@"; do
    command -v "$prog" >/dev/null || { log "row $row needs $prog (not found): install it or leave the row out of ROWS"; exit 1; }
  done
}
need pgbench pgbench
need gs_redis redis-server redis-cli
need fa_redis redis-server redis-cli
need redis_get redis-server redis-cli redis-benchmark
need nginx nginx
if [ -n "$PIN_WRK$PIN_SRV$PIN_PG" ] && ! command -v taskset >/dev/null; then log "PIN_* need taskset (util-linux)"; exit 1; fi
if [ ! -d compat/node_modules/better-auth ]; then
  log "npm ci in compat/"
  (cd compat && npm ci --no-audit --no-fund >/dev/null)
fi
if [ -n "${BENCH_BIN:-}" ]; then
  BENCH_BIN=$(realpath "$BENCH_BIN")
  log "using $BENCH_BIN (no build)"
else
  log "cargo build --profile $BUILD_PROFILE"
  cargo build --profile "${BUILD_PROFILE/debug/dev}" --quiet
  BENCH_BIN=$ROOT/target/$BUILD_PROFILE/sessiond
fi
# run a private copy: other builds may replace target/release/sessiond mid-run
cp "$BENCH_BIN" "$OUT/sessiond.bin"
BENCH_BIN=$OUT/sessiond.bin
log "building bench/ceiling"
cargo build --profile "${BUILD_PROFILE/debug/dev}" --quiet --locked --manifest-path bench/ceiling/Cargo.toml
CEILING_BIN=$BENCH/ceiling/target/$BUILD_PROFILE/bench-ceiling

# ------------------------------------------------------------------ machine
{
  echo "date	$(date -u +%FT%TZ)"
  echo "commit	$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock migrations 2>/dev/null || echo ' (+ uncommitted changes in src/)')"
  echo "cpu	$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory	$(free -m | awk '/Mem:/{printf "%.1f GiB", $2/1024}')"
  echo "kernel	$(uname -r)"
  # scrypt's 32 MiB buffer runs a third faster on huge pages: this setting moves Better Auth's
  # sign-in rows (sessiond asks for huge pages itself unless it is never)
  echo "transparent huge pages	$(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
  echo "rustc	$(rustc --version)"
  echo "node	$(node -v)"
  echo "better-auth	$(node -p 'require("./compat/node_modules/better-auth/package.json").version')"
  echo "postgres	$("${PSQL[@]}" -d postgres -Atc 'show server_version') (shared_buffers $("${PSQL[@]}" -d postgres -Atc 'show shared_buffers'))"
  echo "wrk	$(wrk -v 2>&1 | head -1)"
  echo "settings	wrk -t$THREADS -c$CONNS, ${WARM} s warm-up + $REPS × ${DUR} s measured per row (the median run is shown); sign-in -c$SIGNIN_CONNS; sessiond sslmode=$PG_SSLMODE; $BUILD_PROFILE builds"
  pins="${PIN_WRK:+wrk and load tools on CPU $PIN_WRK; }${PIN_SRV:+servers on CPU $PIN_SRV; }${PIN_PG:+bench PostgreSQL backends on CPU $PIN_PG}"
  echo "pinning	${pins:-none (taskset: PIN_WRK, PIN_SRV, PIN_PG)}"
} >"$OUT/machine.tsv"
sed 's/\t/: /' "$OUT/machine.tsv" >&2

# ------------------------------------------------------------------ helpers
wait_http() { # url pid
  local i
  for i in $(seq 200); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || { log "server exited while starting ($1)"; return 1; }
    sleep 0.1
  done
  log "timeout waiting for $1"
  return 1
}

SRV_PID=""
SRV_URL=""
SRV_NAME=""
# started PID PORT NAME READY_PATH: the server just put in the background becomes the current one
started() {
  SRV_PID=$1
  PIDS+=("$SRV_PID")
  SRV_URL=http://127.0.0.1:$2
  SRV_NAME=$3
  wait_http "$SRV_URL$4" "$SRV_PID"
  # every thread; threads started later inherit it
  [ -z "$PIN_SRV" ] || taskset -a -p -c "$PIN_SRV" "$SRV_PID" >/dev/null
}
# start_ba NAME [VAR=value...] / start_sessiond NAME [VAR=value...] / start_ceiling
start_ba() {
  local name=$1 port
  shift
  port=$(free_port)
  env DATABASE_URL="${BA_DB_URL:-$DB_URL}" HOST=127.0.0.1 PORT="$port" BETTER_AUTH_SECRET="$SECRET" RATE_LIMIT=0 "$@" \
    node compat/better-auth/server.mjs >"$OUT/server-ba-$name.log" 2>&1 &
  started $! "$port" "$name" /api/auth/ok
}
start_sessiond() {
  local name=$1 port
  shift
  port=$(free_port)
  spawn_sessiond "$BENCH_BIN" "${SD_DB_URL:-$DB_URL?sslmode=$PG_SSLMODE}" "$port" "$OUT/server-sessiond-$name.log" \
    SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false "$@"
  started "$SPAWNED_PID" "$port" "$name" /api/auth/ok
}
start_ceiling() {
  local port
  port=$(free_port)
  "$CEILING_BIN" "$port" >"$OUT/server-ceiling.log" 2>&1 &
  started $! "$port" ceiling /
}
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  kill "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  SRV_PID=""
}
sign_up() { # base email name
  local code
  code=$(curl -sS -o "$OUT/signup-$2.json" -w '%{http_code}' -H "Origin: $1" -H 'Content-Type: application/json' \
    --data "{\"name\":\"$3\",\"email\":\"$2\",\"password\":\"$PASSWORD\"}" "$1/api/auth/sign-up/email")
  [ "$code" = 200 ] || { log "sign-up $2 on $1 failed: $code $(cat "$OUT/signup-$2.json")"; return 1; }
}
sign_in() { # base email jar -> the Cookie header of everything the sign-in set
  local code
  rm -f "$3"
  code=$(curl -sS -o /dev/null -w '%{http_code}' -c "$3" -H "Origin: $1" -H 'Content-Type: application/json' \
    --data "{\"email\":\"$2\",\"password\":\"$PASSWORD\"}" "$1/api/auth/sign-in/email")
  [ "$code" = 200 ] || { log "sign-in $2 on $1 failed: $code"; return 1; }
  cookie_header "$3"
}
expect_session() { # url cookie what
  local body
  body=$(curl -sS -H "Cookie: $2" "$1")
  case "$body" in
  *'"userId"'*) return 0 ;;
  *) log "expected a session from $1 ($3), got: ${body:0:200}"; return 1 ;;
  esac
}
ticks() { # utime+stime of the given pids
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat")))
  done
  echo $t
}
sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# "pid ticks" of every PostgreSQL backend connected to the bench database, and "reaped ticks":
# the CPU of the postmaster's children that have exited (a server drops the connections of
# requests cut short when wrk stops, so backends come and go during a row).
pg_ticks() {
  local p pm=""
  for p in $("${PSQL[@]}" -d postgres -Atc "select pid from pg_stat_activity where datname in ('$DB', '$REF_DB', '${DB}_pgbench')"); do
    echo "$p $(ticks "$p")"
    [ -n "$pm" ] || pm=$(awk '{sub(/^.*\) /,""); print $2}' "/proc/$p/stat" 2>/dev/null || true)
  done
  if [ -n "$pm" ] && [ -r "/proc/$pm/stat" ]; then
    echo "reaped $(awk '{sub(/^.*\) /,""); print $14+$15}' "/proc/$pm/stat")"
  fi
}
hwm_kib() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || log "could not reset VmHWM of $1 (peak RSS is the lifetime peak)"; }
wait_quiet() {
  [ "$QUIET_MAX" -gt 0 ] || return 0
  local waited=0 a b pct
  while :; do
    a=($(sys_ticks)); sleep 2; b=($(sys_ticks))
    pct=$((100 * (b[0] - a[0]) / (b[1] - a[1] + 1)))
    [ "$pct" -le "$QUIET_PCT" ] && return 0
    [ "$waited" -ge "$QUIET_MAX" ] && { log "machine still busy (${pct}%), running anyway"; return 0; }
    log "machine busy (${pct}% used by others), waiting"
    sleep 3; waited=$((waited + 5))
  done
}

# run_wrk KEY SERVER PATH_LABEL URL CONNS [wrk args...]: one row on the current server (a single
# job of run_interleaved): warm-up, then REPS measured runs, a TSV row each (report.py keeps the median).
ROWS_TSV=$OUT/rows.tsv
printf 'key\tserver\tpath\trps\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms\trequests\tnon2xx\tsock_err\tpeak_rss_kib\tserver_cpu_pct\tpg_cpu_pct\twrk_cpu_pct\tother_cpu_pct\tconns\trep\n' >"$ROWS_TSV"
run_wrk() {
  RUN_JOB=("$1" "$2" "$3" "$4" "$5" "$SRV_PID" "${@:6}")
  run_interleaved RUN_JOB
}
# run_interleaved JOB...: rows that are compared with each other, measured in turn. Each JOB
# names an array (key server label url conns pid [wrk args...]); after a warm-up of each, every
# round measures each job once, so that the machine's drift over minutes (a shared VM's speed
# wanders) hits the rows of a ratio alike instead of favouring whichever ran first.
run_interleaved() {
  local job rep spec args cookies
  wait_quiet
  for job in "$@"; do
    job_spec "$job"
    if [ "$WARM" -gt 0 ] && ! is_tool "${spec[1]}"; then
      WRK_COOKIES=$cookies "${PIN_WRK_CMD[@]}" wrk -t"$THREADS" -c"${spec[4]}" -d"${WARM}s" -s "$BENCH/wrk.lua" "${args[@]}" "${spec[3]}" \
        >"$OUT/wrk-${spec[0]}-${spec[1]}-warmup.txt" 2>&1
    fi
  done
  for rep in $(seq "$REPS"); do
    for job in "$@"; do
      job_spec "$job"
      WRK_COOKIES=$cookies measure_once "${spec[0]}" "${spec[1]}" "${spec[2]}" "${spec[3]}" "${spec[4]}" "${spec[5]}" \
        "${spec[0]}-${spec[1]}-$rep" "$rep" "${args[@]}"
    done
  done
}
is_tool() { [ "$1" = pgbench ] || [ "$1" = redis-benchmark ]; }
# job_spec JOB: sets spec (the job's array), args (its wrk arguments) and cookies (the file of
# a WRK_COOKIES=file element, else the caller's WRK_COOKIES)
job_spec() {
  eval "spec=(\"\${$1[@]}\")"
  args=()
  cookies=${WRK_COOKIES:-}
  local a
  for a in "${spec[@]:6}"; do
    case $a in
    WRK_COOKIES=*) cookies=${a#WRK_COOKIES=} ;;
    *) args+=("$a") ;;
    esac
  done
}
# measure_once KEY SERVER LABEL URL CONNS PID TAG REP [wrk args...]: one measured run, one TSV row.
measure_once() {
  local key=$1 server=$2 label=$3 url=$4 conns=$5 pid=$6 tag=$7 rep=$8
  shift 8
  [ -z "$pid" ] || reset_hwm "$pid"
  local y0 y1 s0 s1 t0 t1
  [ "$server" = ceiling ] || pg_ticks >"$OUT/pg-$tag-before.txt"
  if [ -n "$PIN_PG" ] && [ "$server" != ceiling ]; then
    for p in $(awk '$1 != "reaped" {print $1}' "$OUT/pg-$tag-before.txt"); do taskset -p -c "$PIN_PG" "$p" >/dev/null 2>&1 || true; done
  fi
  y0=$(sys_ticks); s0=$(ticks $pid); t0=$(date +%s.%N)
  local TIMEFORMAT='%U %S'
  if is_tool "$server"; then
    { time measure_tool "$key" "$server" "$url" "$conns" "$tag"; } 2>"$OUT/wrk-$tag.time"
  else
    { time "${PIN_WRK_CMD[@]}" wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --latency -s "$BENCH/wrk.lua" "$@" "$url" >"$OUT/wrk-$tag.txt" 2>&1; } 2>"$OUT/wrk-$tag.time"
  fi
  t1=$(date +%s.%N); s1=$(ticks $pid); y1=$(sys_ticks)
  # backends that connected during the run count whole; ones that left are lost (rare)
  local pg=0
  if [ "$server" != ceiling ]; then
    pg_ticks >"$OUT/pg-$tag-after.txt"
    # live backends by their growth; one that exited during the run is in "reaped" whole, so
    # what it had used before the run is taken off again
    pg=$(awk 'NR==FNR {b[$1]=$2; next} {a[$1]=$2}
      END {for (k in a) s += a[k] - b[k]; for (k in b) if (!(k in a)) s -= b[k]; print (s > 0 ? s : 0)}' \
      "$OUT/pg-$tag-before.txt" "$OUT/pg-$tag-after.txt")
  fi
  local hwm=0
  [ -z "$pid" ] || hwm=$(hwm_kib "$pid")
  python3 - "$key" "$server" "$label" "$OUT/wrk-$tag.txt" "$OUT/wrk-$tag.time" "$hwm" "$s0" "$s1" 0 "$pg" \
    "$t0" "$t1" "$CLK_TCK" "$y0" "$y1" "$conns" "${EXTRA_TICKS:-0}" "$rep" >>"$ROWS_TSV" <<'PY'
import json, sys
(key, server, label, wrkf, timef, hwm, s0, s1, p0, p1, t0, t1, clk, y0, y1, conns, extra, rep) = sys.argv[1:]
lines = [l for l in open(wrkf) if l.startswith("WRKJSON ")]
if not lines:
    sys.exit(f"no WRKJSON line in {wrkf}: {open(wrkf).read()[:500]}")
j = json.loads(lines[-1][len("WRKJSON "):])
wall, clk = float(t1) - float(t0), float(clk)
u, s = (float(x) for x in open(timef).read().split())
srv, pg = int(s1) - int(s0), max(0, int(p1) - int(p0))
busy = int(y1.split()[0]) - int(y0.split()[0])
other = max(0.0, 100.0 * (busy - srv - pg - (u + s) * clk - int(extra)) / clk / wall)
pct = lambda t: 100.0 * t / clk / wall
sock = j["err_connect"] + j["err_read"] + j["err_write"] + j["err_timeout"]
ms = lambda k: "-" if j.get(k) is None else f"{j[k]:.2f}"  # pgbench reports no percentiles
print("\t".join([key, server, label, f'{j["rps"]:.0f}', ms("lat_p50_ms"), ms("lat_p90_ms"),
    ms("lat_p99_ms"), ms("lat_p999_ms"), ms("lat_max_ms"), str(j["requests"]),
    str(j["non2xx"]), str(sock), hwm, f"{pct(srv):.0f}", "-" if server == "ceiling" else f"{pct(pg):.0f}",
    f"{100 * (u + s) / wall:.0f}", f"{other:.0f}", conns, rep]))
PY
  log "$(tail -1 "$ROWS_TSV" | cut -f1-8,11,13-17,19)"
}

# ------------------------------------------------------------------ SQL round trips (counting proxy)
PROXY_PID=""
PROXY_STATS=$OUT/pgcount-stats.json
start_proxy() {
  local port
  port=$(free_port)
  python3 "$BENCH/pgcount.py" "$port" "$PGHOST" "$PGPORT" "$PROXY_STATS" 2>"$OUT/pgcount.log" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  local i
  for i in $(seq 50); do [ -s "$PROXY_STATS" ] && break; sleep 0.1; done
  PROXY_URL=postgres://$PGUSER@127.0.0.1:$port/$DB
}
proxy_snapshot() { # file
  rm -f "$PROXY_STATS"
  kill -USR1 "$PROXY_PID"
  local i
  for i in $(seq 50); do [ -s "$PROXY_STATS" ] && break; sleep 0.05; done
  cp "$PROXY_STATS" "$1"
}
SQL_TSV=$OUT/sql.tsv
printf 'key\tserver\tpath\trequests\tround_trips_per_req\tstatements_per_req\tpings_per_req\tstatements\n' >"$SQL_TSV"
# sql_count KEY SERVER LABEL N curl-args... : N sequential requests on one connection, after 20 to warm up.
sql_count() {
  local key=$1 server=$2 label=$3 n=$4
  shift 4
  local urls=() i last=("${@: -1}")
  for i in $(seq "$SQL_WARM"); do urls+=("$last"); done
  curl -sS "${@:1:$#-1}" "${urls[@]}" >/dev/null
  proxy_snapshot "$OUT/sql-$key-$server-before.json"
  urls=()
  for i in $(seq "$n"); do urls+=("$last"); done
  curl -sS "${@:1:$#-1}" "${urls[@]}" >/dev/null
  proxy_snapshot "$OUT/sql-$key-$server-after.json"
  python3 - "$key" "$server" "$label" "$n" "$OUT/sql-$key-$server-before.json" "$OUT/sql-$key-$server-after.json" >>"$SQL_TSV" <<'PY'
import json, sys
key, server, label, n, a, b = sys.argv[1:]
a, b, n = json.load(open(a)), json.load(open(b)), int(n)
d = lambda k: (b[k] - a[k]) / n
texts = {t: c - a["texts"].get(t, 0) for t, c in b["texts"].items() if c - a["texts"].get(t, 0) > 0}
stmts = " || ".join(f"{c / n:g}x {t}" for t, c in sorted(texts.items(), key=lambda x: -x[1]))
print("\t".join([key, server, label, str(n), f'{d("round_trips"):.2f}', f'{d("statements"):.2f}',
                 f'{d("pings"):.2f}', stmts or "(prepared statements reused: see round trips)"]))
PY
  log "SQL $(tail -1 "$SQL_TSV" | cut -f1-7)"
}

# ------------------------------------------------------------------ database and users
log "creating database $DB"
"${PSQL[@]}" -d postgres -c "create database $DB" >/dev/null
DB_CREATED=1
DATABASE_URL=$DB_URL node compat/better-auth/server.mjs migrate >"$OUT/migrate-ba.log" 2>&1
log "schema migrated by Better Auth; sessiond adopts it"

start_sessiond setup
SD_SETUP=$SRV_URL
SD_SETUP_PID=$SRV_PID
sign_up "$SD_SETUP" bench@example.com "Bench User"
sign_up "$SD_SETUP" list@example.com "List User"
sign_up "$SD_SETUP" list1k@example.com "List 1k User"
start_ba setup
BA_SETUP=$SRV_URL
sign_up "$BA_SETUP" signin@example.com "Sign-in User"
# sessions are interchangeable: a Better Auth sign-in works on sessiond and the reverse
c=$(sign_in "$BA_SETUP" bench@example.com "$OUT/x.jar")
expect_session "$SD_SETUP/api/auth/get-session" "$c" "Better Auth's cookie on sessiond"
c=$(sign_in "$SD_SETUP" signin@example.com "$OUT/x.jar")
expect_session "$BA_SETUP/api/auth/get-session" "$c" "sessiond's cookie on Better Auth"
log "a sign-in on either server is accepted by the other"
stop_server
SRV_PID=$SD_SETUP_PID
stop_server

# filler: FILLER_USERS users with one session each (tokens "bs" + 30 digits, cookies signed here)
"${PSQL[@]}" -d "$DB" <<SQL
insert into "user" ("id", "name", "email", "emailVerified", "createdAt", "updatedAt")
  select 'bu' || lpad(i::text, 30, '0'), 'Filler ' || i, 'filler' || i || '@bench.invalid', false, now(), now()
  from generate_series(1, $FILLER_USERS) i;
insert into "session" ("id", "token", "userId", "expiresAt", "createdAt", "updatedAt", "ipAddress", "userAgent")
  select 'bi' || lpad(i::text, 30, '0'), 'bs' || lpad(i::text, 30, '0'),
         'bu' || lpad(((i - 1) % $FILLER_USERS + 1)::text, 30, '0'),
         now() + interval '7 days', now(), now(), '', 'bench'
  from generate_series(1, $FILLER_USERS) i;
analyze;
SQL
SESSIONS_PHASE_A=$("${PSQL[@]}" -d "$DB" -Atc 'select count(*) from "session"')
log "$SESSIONS_PHASE_A sessions stored"
if has_row scale; then
  # no server is connected now, as copying a database requires
  "${PSQL[@]}" -d postgres -c "create database $REF_DB template $DB" >/dev/null
  log "copied to $REF_DB (the scale rows' reference)"
fi
# cookies for sessions i in [1, N], or SAMPLE random ones: one Cookie header per line
make_cookies() { # file max sample
  python3 - "$SECRET" "$1" "$2" "${3:-0}" <<'PY'
import base64, hashlib, hmac, random, sys, urllib.parse
secret, path, hi, sample = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = random.Random(8).sample(range(1, hi + 1), sample) if sample else range(1, hi + 1)
with open(path, "w") as f:
    for i in ids:
        t = "bs" + str(i).zfill(30)
        sig = base64.b64encode(hmac.new(secret, t.encode(), hashlib.sha256).digest()).decode()
        f.write("better-auth.session_token=" + urllib.parse.quote(t + "." + sig, safe="-_.!~*'()") + "\n")
PY
}
make_cookies "$OUT/spread-1k.cookies" "$FILLER_USERS"

# ------------------------------------------------------------------ rows
GS=/api/auth/get-session
LS=/api/auth/list-sessions
SI=/api/auth/sign-in/email
SI_BODY="{\"email\":\"signin@example.com\",\"password\":\"$PASSWORD\"}"
# an email no user has: answered 401 after the same scrypt (a dummy hash), so as slow as signin
SI_UNKNOWN_BODY="{\"email\":\"nobody@example.com\",\"password\":\"$PASSWORD\"}"

# The ceiling is measured in turn with the compact cache hit it is compared with (see
# run_interleaved); alone when that row is not run. It idles in between.
CEIL_JOB=()
if has_row ceiling; then
  start_ceiling
  if has_row gs_compact; then
    CEIL_JOB=(ceiling ceiling "bare axum, fixed JSON" "$SRV_URL/" "$CONNS" "$SRV_PID")
    SRV_PID=""
  else
    run_wrk ceiling ceiling "bare axum, fixed JSON" "$SRV_URL/" "$CONNS"
    stop_server
  fi
fi

# --- SQL round trips, each server through the counting proxy
if has_row gs_db || has_row fa_db || has_row list || has_row gs_compact || has_row signin; then
  start_proxy
  SD_DB_URL="$PROXY_URL?sslmode=disable" start_sessiond sql-nocache
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/sql.jar")
  sql_count gs_db sessiond "get-session, no cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL$GS"
  sql_count fa_db sessiond "forward-auth, no cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL/forward-auth"
  c=$(sign_in "$SRV_URL" list@example.com "$OUT/sql.jar")
  sql_count list sessiond "list-sessions" "$SQL_N" -H "Cookie: $c" "$SRV_URL$LS"
  sql_count signin sessiond "sign-in/email" "$SIGNIN_N" -H "Origin: $SRV_URL" -H 'Content-Type: application/json' --data "$SI_BODY" "$SRV_URL$SI"
  stop_server
  SD_DB_URL="$PROXY_URL?sslmode=disable" start_sessiond sql-compact SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/sql.jar")
  sql_count gs_compact sessiond "get-session, compact cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL$GS"
  sql_count fa_cache sessiond "forward-auth, compact cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL/forward-auth"
  stop_server
  BA_DB_URL=$PROXY_URL start_ba sql-nocache
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/sql.jar")
  sql_count gs_db better-auth "get-session, no cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL$GS"
  c=$(sign_in "$SRV_URL" list@example.com "$OUT/sql.jar")
  sql_count list better-auth "list-sessions" "$SQL_N" -H "Cookie: $c" "$SRV_URL$LS"
  sql_count signin better-auth "sign-in/email" "$SIGNIN_N" -H "Origin: $SRV_URL" -H 'Content-Type: application/json' --data "$SI_BODY" "$SRV_URL$SI"
  stop_server
  BA_DB_URL=$PROXY_URL start_ba sql-compact COOKIE_CACHE=1 COOKIE_CACHE_STRATEGY=compact
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/sql.jar")
  sql_count gs_compact better-auth "get-session, compact cache" "$SQL_N" -H "Cookie: $c" "$SRV_URL$GS"
  stop_server
  kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true
fi

# --- the database path (no cookie cache), both servers
db_rows() { # server start-function
  local server=$1 start=$2
  $start nocache
  local c
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/$server.jar")
  local jobs=()
  if has_row gs_db; then
    expect_session "$SRV_URL$GS" "$c" "$server get-session"
    GS_JOB=(gs_db "$server" "get-session, database" "$SRV_URL$GS" "$CONNS" "$SRV_PID" -H "Cookie: $c")
    jobs+=(GS_JOB)
  fi
  if has_row fa_db && [ "$server" = sessiond ]; then
    FA_JOB=(fa_db "$server" "forward-auth, database" "$SRV_URL/forward-auth" "$CONNS" "$SRV_PID" -H "Cookie: $c")
    jobs+=(FA_JOB)
  fi
  # forward-auth is compared with get-session: measured in turn
  [ ${#jobs[@]} -eq 0 ] || run_interleaved "${jobs[@]}"
  if has_row scale; then
    WRK_COOKIES=$OUT/spread-1k.cookies run_wrk spread_1k "$server" \
      "get-session, database, 1,000 distinct sessions" "$SRV_URL$GS" "$CONNS"
  fi
  if has_row list; then
    local lc
    lc=$(sign_in "$SRV_URL" list@example.com "$OUT/$server-list.jar")
    run_wrk list "$server" "list-sessions (user with 1 session)" "$SRV_URL$LS" "$CONNS" -H "Cookie: $lc"
  fi
  if has_row signin; then
    # A fresh server: the memory rows must not inherit what earlier rows left allocated.
    stop_server
    $start nocache
    WRK_METHOD=POST WRK_BODY="$SI_BODY" run_wrk signin "$server" "sign-in/email (scrypt)" "$SRV_URL$SI" \
      "$SIGNIN_CONNS" -H "Origin: $SRV_URL"
  fi
  if has_row signin_unknown; then
    # every response is a 401 (counted under errors): its rate is the one to compare with signin
    WRK_METHOD=POST WRK_BODY="$SI_UNKNOWN_BODY" run_wrk signin_unknown "$server" \
      "sign-in/email, unknown email (401 after the same scrypt)" "$SRV_URL$SI" "$SIGNIN_CONNS" -H "Origin: $SRV_URL"
  fi
  if has_row signin64; then
    # The same at 64 connections: most of them wait for a hashing thread, hence the long
    # timeout (wrk's 2 s would count them as errors and leave them out of the latencies).
    stop_server
    $start nocache
    WRK_METHOD=POST WRK_BODY="$SI_BODY" run_wrk signin64 "$server" "sign-in/email (scrypt), queued" "$SRV_URL$SI" \
      "$CONNS" --timeout 60s -H "Origin: $SRV_URL"
  fi
  if has_row gs_mixed; then
    stop_server
    $start nocache
    c=$(sign_in "$SRV_URL" bench@example.com "$OUT/$server.jar")
    # sign-ins hash passwords for the whole warm-up and every measured run
    WRK_METHOD=POST WRK_BODY="$SI_BODY" "${PIN_WRK_CMD[@]}" wrk -t1 -c"$SIGNIN_CONNS" -d"$((WARM + REPS * (DUR + 1) + 2))s" -s "$BENCH/wrk.lua" \
      -H "Origin: $SRV_URL" "$SRV_URL$SI" >"$OUT/wrk-gs_mixed-$server-signins.txt" 2>&1 &
    local bg=$!
    PIDS+=("$bg")
    sleep 1
    run_wrk gs_mixed "$server" "get-session, database, while sign-ins run (-c$SIGNIN_CONNS)" "$SRV_URL$GS" "$CONNS" -H "Cookie: $c"
    wait "$bg" || true
  fi
  stop_server
}
if has_row gs_db || has_row fa_db || has_row list || has_row signin || has_row signin_unknown || has_row signin64 || has_row gs_mixed || has_row scale; then
  db_rows sessiond start_sessiond
  db_rows better-auth start_ba
fi

if has_row gs_tls; then
  # sqlx's default sslmode (prefer): TLS to PostgreSQL when the server offers it
  SD_DB_URL=$DB_URL start_sessiond tls
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/tls.jar")
  run_wrk gs_tls sessiond "get-session, database, TLS to PostgreSQL (sqlx default sslmode)" "$SRV_URL$GS" "$CONNS" -H "Cookie: $c"
  stop_server
fi

# --- cookie cache hits
for strategy in compact jwt jwe; do
  has_row "gs_$strategy" || { [ "$strategy" = compact ] && has_row fa_cache; } || continue
  start_sessiond "$strategy" SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=$strategy
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/sd-$strategy.jar")
  case "$c" in *session_data*) ;; *) log "sessiond set no session_data cookie ($strategy)"; exit 1 ;; esac
  jobs=()
  if has_row "gs_$strategy"; then
    GS_JOB=("gs_$strategy" sessiond "get-session, $strategy cache hit" "$SRV_URL$GS" "$CONNS" "$SRV_PID" -H "Cookie: $c")
    jobs+=(GS_JOB)
  fi
  if [ "$strategy" = compact ]; then
    # the compact hit is compared with the ceiling and with forward-auth: measured in turn
    if has_row fa_cache; then
      FA_JOB=(fa_cache sessiond "forward-auth, compact cache hit" "$SRV_URL/forward-auth" "$CONNS" "$SRV_PID" -H "Cookie: $c")
      jobs+=(FA_JOB)
    fi
    if [ ${#CEIL_JOB[@]} -gt 0 ]; then
      jobs=(CEIL_JOB "${jobs[@]}")
    fi
  fi
  [ ${#jobs[@]} -eq 0 ] || run_interleaved "${jobs[@]}"
  stop_server
  has_row "gs_$strategy" || continue
  start_ba "$strategy" COOKIE_CACHE=1 COOKIE_CACHE_STRATEGY=$strategy
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/ba-$strategy.jar")
  case "$c" in *session_data*) ;; *) log "Better Auth set no session_data cookie ($strategy)"; exit 1 ;; esac
  run_wrk "gs_$strategy" better-auth "get-session, $strategy cache hit" "$SRV_URL$GS" "$CONNS" -H "Cookie: $c"
  stop_server
done

# --- pgbench, Redis secondary storage, nginx in front, better-auth-rs (bench/more_rows.sh)
source "$BENCH/more_rows.sh"
if has_row pgbench; then pgbench_rows; fi
if has_row gs_redis || has_row fa_redis || has_row redis_get; then redis_rows; fi
if has_row nginx; then proxy_rows; fi
if has_row peer; then peer_rows; fi

# ------------------------------------------------------------------ scale
SESSIONS_PHASE_B=""
if has_row scale; then
  log "bulk-inserting $SCALE_SESSIONS sessions"
  t0=$(date +%s)
  "${PSQL[@]}" -d "$DB" <<SQL
set session_replication_role = replica; -- skip the FK triggers: the users exist
insert into "session" ("id", "token", "userId", "expiresAt", "createdAt", "updatedAt", "ipAddress", "userAgent")
  select 'bi' || lpad(i::text, 30, '0'), 'bs' || lpad(i::text, 30, '0'),
         'bu' || lpad(((i - 1) % $FILLER_USERS + 1)::text, 30, '0'),
         now() + interval '7 days', now(), now(), '', 'bench'
  from generate_series($FILLER_USERS + 1, $SCALE_SESSIONS) i;
insert into "session" ("id", "token", "userId", "expiresAt", "createdAt", "updatedAt", "ipAddress", "userAgent")
  select 'li' || lpad(i::text, 30, '0'), 'ls' || lpad(i::text, 30, '0'), u."id",
         now() + interval '7 days', now(), now(), '127.0.0.1', 'bench list'
  from generate_series(1, $LIST_SESSIONS) i, "user" u where u."email" = 'list1k@example.com';
reset session_replication_role;
vacuum analyze "session";
SQL
  SESSIONS_PHASE_B=$("${PSQL[@]}" -d "$DB" -Atc 'select count(*) from "session"')
  log "$SESSIONS_PHASE_B sessions stored ($(($(date +%s) - t0)) s); session table $("${PSQL[@]}" -d "$DB" -Atc "select pg_size_pretty(pg_total_relation_size('session'))")"
  make_cookies "$OUT/spread-1m.cookies" "$SCALE_SESSIONS" "$SPREAD_SAMPLE"
  make_cookies "$OUT/spread-1m-1k.cookies" "$SCALE_SESSIONS" "$FILLER_USERS"
  for server in sessiond better-auth; do
    if [ "$server" = sessiond ]; then
      # The 1M rows are compared with the same requests against the phase-A copy ($REF_DB,
      # served by a second sessiond), measured in turn: minutes apart, the machine's drift
      # would decide the ratio.
      SD_DB_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$REF_DB?sslmode=$PG_SSLMODE" start_sessiond scale-ref
      REF_URL=$SRV_URL
      REF_PID=$SRV_PID
      cr=$(sign_in "$REF_URL" bench@example.com "$OUT/scale-ref.jar")
      start_sessiond scale
    else
      start_ba scale
    fi
    c=$(sign_in "$SRV_URL" bench@example.com "$OUT/scale.jar")
    expect_session "$SRV_URL$GS" "$(head -1 "$OUT/spread-1m.cookies")" "a bulk-inserted session"
    if [ "$server" = sessiond ]; then
      REF_HOT=(gs_db_ref sessiond "get-session, database, $SESSIONS_PHASE_A sessions stored (measured in turn)" \
        "$REF_URL$GS" "$CONNS" "$REF_PID" -H "Cookie: $cr")
      BIG_HOT=(gs_db_1m sessiond "get-session, database, 1M sessions stored" "$SRV_URL$GS" "$CONNS" "$SRV_PID" \
        -H "Cookie: $c")
      run_interleaved REF_HOT BIG_HOT
      # the request pattern of spread_1k (1,000 distinct sessions), drawn from the million
      REF_1K=(spread_1k_ref sessiond "get-session, database, 1,000 distinct of $SESSIONS_PHASE_A (measured in turn)" \
        "$REF_URL$GS" "$CONNS" "$REF_PID" "WRK_COOKIES=$OUT/spread-1k.cookies")
      BIG_1K=(spread_1m_1k sessiond "get-session, database, 1,000 distinct of 1M sessions" "$SRV_URL$GS" "$CONNS" \
        "$SRV_PID" "WRK_COOKIES=$OUT/spread-1m-1k.cookies")
      run_interleaved REF_1K BIG_1K
      kill "$REF_PID" 2>/dev/null || true
      wait "$REF_PID" 2>/dev/null || true
    fi
    WRK_COOKIES=$OUT/spread-1m.cookies run_wrk spread_1m "$server" "get-session, database, $SPREAD_SAMPLE distinct of 1M sessions" "$SRV_URL$GS" "$CONNS"
    c=$(sign_in "$SRV_URL" list1k@example.com "$OUT/scale-list.jar")
    n=$(curl -sS -H "Cookie: $c" "$SRV_URL$LS" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    run_wrk list_1k "$server" "list-sessions, user with $n sessions" "$SRV_URL$LS" "$CONNS" -H "Cookie: $c"
    stop_server
  done
fi

# ------------------------------------------------------------------ report
python3 "$BENCH/report.py" "$OUT" "$SESSIONS_PHASE_A" "${SESSIONS_PHASE_B:-}" >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
python3 "$BENCH/report.py" --terminal "$OUT" "$SESSIONS_PHASE_A" "${SESSIONS_PHASE_B:-}"
log "wrote $RESULTS; raw files in $OUT"
