# Sourced by run.sh (after its helpers): the rows beside the two servers of the main table.
#   pgbench   pgbench -S -M prepared on a database of its own, measured in turn with sessiond's gs_db
#   redis     get-session and forward-auth with Redis secondary storage (a private redis-server),
#             sessiond and Better Auth, measured in turn with redis-benchmark's GET (their ceiling)
#   proxy     wrk through nginx (auth_request to /forward-auth, the README's recipe) and through
#             the same nginx without auth, in turn
#   peer      better-auth-rs (bench/peers/better-auth-rs): get-session (database, compact cache),
#             list-sessions, sign-in
# Each function starts what it needs, adds the pids to PIDS and stops its servers.

PGBENCH_DB=${DB}_pgbench
PEER_DIR=$BENCH/peers/better-auth-rs
PEER_BIN=$PEER_DIR/target/release/bench-better-auth-rs
REDIS_PORT=""
REDIS_PID=""

# measure_tool KEY TOOL TARGET CONNS TAG: runs pgbench or redis-benchmark for DUR seconds and
# writes its figures as wrk.lua's WRKJSON line to $OUT/wrk-TAG.txt (measure_once reads it).
measure_tool() {
  local key=$1 tool=$2 target=$3 conns=$4 tag=$5 f=$OUT/wrk-$5.txt
  case $tool in
  pgbench)
    "${PIN_WRK_CMD[@]}" pgbench -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -n -S -M prepared -c "$conns" -j "$THREADS" \
      -T "$DUR" "$target" >"$f.raw" 2>&1 || { log "pgbench failed: $(tail -3 "$f.raw")"; return 1; }
    python3 - "$f.raw" >"$f" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read()
num = lambda pat: float(m.group(1)) if (m := re.search(pat, t)) else 0.0
# no tps line when no transaction completed (connecting 64 clients can take a short run's whole -T)
tps, lat = num(r"tps = ([0-9.]+)"), num(r"latency average = ([0-9.]+) ms")
n = int(num(r"number of transactions actually processed: (\d+)"))
fail = re.search(r"number of failed transactions: (\d+)", t)
print("WRKJSON " + json.dumps({"requests": n, "rps": tps, "lat_mean_ms": lat, "lat_p50_ms": None, "lat_p90_ms": None,
      "lat_p99_ms": None, "lat_p999_ms": None, "lat_max_ms": None, "err_connect": 0, "err_read": 0, "err_write": 0,
      "err_timeout": 0, "non2xx": int(fail.group(1)) if fail else 0}))
PY
    ;;
  redis-benchmark)
    # redis-benchmark has no duration: as many requests as a fast GET ceiling serves in DUR s
    "${PIN_WRK_CMD[@]}" redis-benchmark -h 127.0.0.1 -p "$target" -t get -c "$conns" -n $((DUR * 60000)) --csv \
      >"$f.raw" 2>&1 || { log "redis-benchmark failed: $(tail -3 "$f.raw")"; return 1; }
    python3 - "$f.raw" "$((DUR * 60000))" >"$f" <<'PY'
import csv, json, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if r and r[0] == "GET"]
_, rps, avg, _mn, p50, _p95, p99, mx = rows[-1]
print("WRKJSON " + json.dumps({"requests": int(sys.argv[2]), "rps": float(rps), "lat_mean_ms": float(avg),
      "lat_p50_ms": float(p50), "lat_p90_ms": None, "lat_p99_ms": float(p99), "lat_p999_ms": None,
      "lat_max_ms": float(mx), "err_connect": 0, "err_read": 0, "err_write": 0, "err_timeout": 0, "non2xx": 0}))
PY
    ;;
  esac
}

# redis_count KEY SERVER LABEL N URL COOKIE: Redis commands per request, from INFO commandstats
# before and after N sequential requests (after SQL_WARM to warm up), per command, to redis.tsv.
# Each request waits for its answer, so none is in flight when counting. A round trip carries at
# least one command: commands per request bound the round trips from above.
REDIS_TSV=$OUT/redis.tsv
redis_count() {
  local key=$1 server=$2 label=$3 n=$4 url=$5 cookie=$6 i urls=()
  for i in $(seq "$SQL_WARM"); do urls+=("$url"); done
  curl -sS -H "Cookie: $cookie" "${urls[@]}" >/dev/null
  redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' >"$OUT/redis-$key-$server-before.txt"
  urls=()
  for i in $(seq "$n"); do urls+=("$url"); done
  curl -sS -H "Cookie: $cookie" "${urls[@]}" >/dev/null
  redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' >"$OUT/redis-$key-$server-after.txt"
  [ -s "$REDIS_TSV" ] || printf 'key\tserver\tpath\trequests\tcommands_per_req\tcommands\n' >"$REDIS_TSV"
  python3 - "$key" "$server" "$label" "$n" "$OUT/redis-$key-$server-before.txt" "$OUT/redis-$key-$server-after.txt" \
    >>"$REDIS_TSV" <<'PY'
import re, sys
key, server, label, n, a, b = sys.argv[1:]
calls = lambda f: {m[1]: int(m[2]) for m in re.finditer(r"^cmdstat_(\S+?):calls=(\d+)", open(f).read(), re.M)}
a, b, n = calls(a), calls(b), int(n)
d = {k: v - a.get(k, 0) for k, v in b.items() if k != "info" and v - a.get(k, 0) > 0}
print("\t".join([key, server, label, str(n), f"{sum(d.values()) / n:.2f}",
                 ", ".join(f"{v / n:g}× {k.upper()}" for k, v in sorted(d.items(), key=lambda x: -x[1])) or "none"]))
PY
  log "Redis $(tail -1 "$REDIS_TSV")"
}

# ------------------------------------------------------------------ pgbench
pgbench_rows() {
  log "pgbench -i on $PGBENCH_DB"
  "${PSQL[@]}" -d postgres -c "create database $PGBENCH_DB" >/dev/null
  DB_EXTRA+=("$PGBENCH_DB")
  pgbench -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -i -q "$PGBENCH_DB" >"$OUT/pgbench-init.log" 2>&1
  start_sessiond pgbench-ref
  local c
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/pgbench.jar")
  PGB_JOB=(pgbench pgbench "pgbench -S -M prepared (one indexed read)" "$PGBENCH_DB" "$CONNS" "")
  GSP_JOB=(gs_db_pgb sessiond "get-session, database (measured in turn with pgbench)" "$SRV_URL$GS" "$CONNS" \
    "$SRV_PID" -H "Cookie: $c")
  run_interleaved PGB_JOB GSP_JOB
  stop_server
}

# ------------------------------------------------------------------ Redis secondary storage
start_private_redis() {
  REDIS_PORT=$(free_port)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$OUT" --logfile "$OUT/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  local i
  for i in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  [ -n "$PIN_SRV" ] && taskset -a -p -c "$PIN_SRV" "$REDIS_PID" >/dev/null
  log "private redis-server on port $REDIS_PORT"
}
redis_rows() {
  start_private_redis
  local url=redis://127.0.0.1:$REDIS_PORT/0 c
  start_sessiond redis "REDIS_URL=$url"
  local sd_url=$SRV_URL sd_pid=$SRV_PID
  SRV_PID=""
  start_ba redis "REDIS_URL=$url"
  local ba_url=$SRV_URL ba_pid=$SRV_PID
  SRV_PID=""
  # one session, written to Redis by sessiond: both servers read the same key
  c=$(sign_in "$sd_url" bench@example.com "$OUT/redis.jar")
  expect_session "$sd_url$GS" "$c" "sessiond, Redis"
  expect_session "$ba_url$GS" "$c" "Better Auth, Redis (a session sessiond stored)"
  redis_count gs_redis sessiond "get-session" "$SQL_N" "$sd_url$GS" "$c"
  redis_count fa_redis sessiond "forward-auth" "$SQL_N" "$sd_url/forward-auth" "$c"
  redis_count gs_redis better-auth "get-session" "$SQL_N" "$ba_url$GS" "$c"
  local jobs=()
  if has_row gs_redis; then
    SDR_JOB=(gs_redis sessiond "get-session, Redis secondary storage" "$sd_url$GS" "$CONNS" "$sd_pid" -H "Cookie: $c")
    BAR_JOB=(gs_redis better-auth "get-session, Redis secondary storage" "$ba_url$GS" "$CONNS" "$ba_pid" -H "Cookie: $c")
    jobs+=(SDR_JOB BAR_JOB)
  fi
  if has_row fa_redis; then
    FAR_JOB=(fa_redis sessiond "forward-auth, Redis secondary storage" "$sd_url/forward-auth" "$CONNS" "$sd_pid" \
      -H "Cookie: $c")
    jobs+=(FAR_JOB)
  fi
  if has_row redis_get; then
    RB_JOB=(redis_get redis-benchmark "redis-benchmark -t get (the Redis ceiling)" "$REDIS_PORT" "$CONNS" "$REDIS_PID")
    jobs+=(RB_JOB)
  fi
  run_interleaved "${jobs[@]}"
  for SRV_PID in "$sd_pid" "$ba_pid" "$REDIS_PID"; do stop_server; done
}

# ------------------------------------------------------------------ nginx in front
proxy_rows() {
  start_sessiond proxy SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact
  local sd_port=${SRV_URL##*:} sd_pid=$SRV_PID c
  SRV_PID=""
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/proxy.jar")
  local dir=$OUT/nginx auth_port up_port plain_port
  mkdir -p "$dir"
  auth_port=$(free_port); up_port=$(free_port); plain_port=$(free_port)
  # The README's recipe as the tests run it, an upstream answering a fixed body, and the same
  # proxy_pass to it (the recipe's keep-alive upstream block) without auth_request.
  {
    echo "daemon off; worker_processes ${NGINX_WORKERS:-1}; pid $dir/nginx.pid; error_log $dir/error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off;"
    echo "client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fcgi;"
    echo "uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;"
    sed -e "s/8080/$auth_port/" -e "s/127.0.0.1:3000/127.0.0.1:$sd_port/" -e "s/127.0.0.1:9000/127.0.0.1:$up_port/" \
      "$ROOT/examples/proxies/nginx.conf"
    echo "server { listen 127.0.0.1:$up_port; location / { return 200 \"upstream ok\\n\"; } }"
    echo "server { listen 127.0.0.1:$plain_port; location / { proxy_pass http://app;"
    echo "  proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; } }"
    echo "}"
  } >"$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/stderr.log" &
  local nginx_pid=$!
  PIDS+=("$nginx_pid")
  wait_http "http://127.0.0.1:$plain_port/" "$nginx_pid"
  [ -n "$PIN_SRV" ] && taskset -a -p -c "$PIN_SRV" "$nginx_pid" >/dev/null
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $c" "http://127.0.0.1:$auth_port/app")
  [ "$code" = 200 ] || { log "nginx auth_request answered $code with a session"; return 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$auth_port/app")
  [ "$code" = 401 ] || { log "nginx auth_request answered $code without a session"; return 1; }
  # the server CPU column is sessiond's; nginx's own shows in "other"
  NGA_JOB=(nginx_auth nginx "nginx + auth_request to forward-auth (compact cache)" "http://127.0.0.1:$auth_port/app" \
    "$CONNS" "$sd_pid" -H "Cookie: $c")
  NGP_JOB=(nginx_noauth nginx "nginx, the same upstream, no auth" "http://127.0.0.1:$plain_port/app" "$CONNS" "$sd_pid" \
    -H "Cookie: $c")
  run_interleaved NGA_JOB NGP_JOB
  for SRV_PID in "$nginx_pid" "$sd_pid"; do stop_server; done
}

# ------------------------------------------------------------------ better-auth-rs
build_peer() {
  if [ -n "${SMOKE:-}" ] && [ ! -x "$PEER_BIN" ]; then
    log "smoke: better-auth-rs not built (cargo build --release in $PEER_DIR takes minutes): its rows are skipped"
    return 1
  fi
  log "building bench/peers/better-auth-rs (cached in its own target/)"
  # better-auth-core collates with ICU (rust_icu_sys without bindgen): it picks the bindings
  # pre-generated for the system's ICU major version, which it must be told (libicu-dev)
  local icu
  icu=$(pkg-config --modversion icu-uc 2>/dev/null) || { log "better-auth-rs needs ICU (libicu-dev)"; return 1; }
  RUST_ICU_MAJOR_VERSION_NUMBER=${icu%%.*} cargo build --release --quiet --locked --manifest-path "$PEER_DIR/Cargo.toml"
}
start_peer() {
  local name=$1 port
  shift
  port=$(free_port)
  env DATABASE_URL="$DB_URL" PORT="$port" BETTER_AUTH_SECRET="$SECRET" "$@" "$PEER_BIN" \
    >"$OUT/server-better-auth-rs-$name.log" 2>&1 &
  started $! "$port" "$name" /api/auth/ok
}
peer_rows() {
  # a peer that does not build (another toolchain, no ICU) costs its rows, not the run
  build_peer || { log "better-auth-rs: no build, its rows are left out"; return 0; }
  local c
  start_peer nocache
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/peer.jar")
  expect_session "$SRV_URL$GS" "$c" "better-auth-rs get-session"
  run_wrk gs_db better-auth-rs "get-session, database" "$SRV_URL$GS" "$CONNS" -H "Cookie: $c"
  c=$(sign_in "$SRV_URL" list@example.com "$OUT/peer-list.jar")
  run_wrk list better-auth-rs "list-sessions (user with 1 session)" "$SRV_URL$LS" "$CONNS" -H "Cookie: $c"
  stop_server
  start_peer signin
  WRK_METHOD=POST WRK_BODY="$SI_BODY" run_wrk signin better-auth-rs "sign-in/email (scrypt)" "$SRV_URL$SI" \
    "$SIGNIN_CONNS" -H "Origin: $SRV_URL"
  stop_server
  start_peer compact COOKIE_CACHE=compact
  c=$(sign_in "$SRV_URL" bench@example.com "$OUT/peer-compact.jar")
  case "$c" in *session_data*) ;; *) log "better-auth-rs set no session_data cookie"; return 1 ;; esac
  run_wrk gs_compact better-auth-rs "get-session, compact cache hit" "$SRV_URL$GS" "$CONNS" -H "Cookie: $c"
  stop_server
}
