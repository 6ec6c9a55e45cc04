# Shared by run.sh, profile.sh, ab.sh and instructions.sh: connection settings, the secret and password every
# bench server uses, starting sessiond, and reading the cookies a sign-up or sign-in set.
# Source it after setting OUT; it sets PGHOST/PGPORT/PGUSER defaults, SECRET,
# PASSWORD and PSQL.

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
SECRET=bench-secret-Qm7xV2pL9sK4wR8tY3nB6hJ1cF5gD0zA
PASSWORD=bench-password-123
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER")

# bench_mode MODE: CACHE (sessiond's cookie-cache environment) and ROUTE for a mode:
# db | fa-db | list (no cache), compact | fa-compact, jwt | jwe; fa-compact-jwt is fa-compact
# with a JWT for the upstream on every answer (forward_auth.jwt); db-hooks is db with webhooks
# to a receiver at HOOK_URL.
bench_mode() {
  case $1 in
  db | fa-db | list) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false) ;;
  compact | fa-compact) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact) ;;
  fa-compact-jwt) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact
    SESSIOND_PLUGINS__JWT__ENABLED=true SESSIOND_FORWARD_AUTH__JWT__ENABLED=true) ;;
  jwt | jwe) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=$1) ;;
  compact-audit) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact
    SESSIOND_SESSION__AUDIT__KEEP_DAYS=30) ;;
  db-audit) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false SESSIOND_SESSION__AUDIT__KEEP_DAYS=30) ;;
  # Webhooks to HOOK_URL (bench/ab.sh starts a receiver there that answers after 10 s).
  db-hooks) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false
    "SESSIOND_WEBHOOKS__ENDPOINTS=[{\"id\":\"slow\",\"url\":\"$HOOK_URL\",\"secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}]") ;;
  *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
  case $1 in fa-*) ROUTE=/forward-auth ;; list) ROUTE=/api/auth/list-sessions ;; *) ROUTE=/api/auth/get-session ;; esac
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# spawn_sessiond BIN DATABASE_URL PORT LOG [VAR=value...]: sessiond in the background in
# production mode (rate limiter off, warnings only, built-in defaults plus the environment:
# an empty --config, or it would read config/default.toml, which figment looks for in every
# parent directory too) on http://127.0.0.1:PORT, the VARs last; sets SPAWNED_PID.
spawn_sessiond() {
  local bin=$1 url=$2 port=$3 log=$4
  shift 4
  mkdir -p "$OUT/sessiond-cwd"
  : >"$OUT/sessiond-cwd/empty.toml"
  (cd "$OUT/sessiond-cwd" && exec env DATABASE_URL="$url" SESSIOND_HOST=127.0.0.1 SESSIOND_PORT="$port" \
    SESSIOND_BASE_URL="http://127.0.0.1:$port" BETTER_AUTH_SECRET="$SECRET" \
    SESSIOND_ENVIRONMENT=production SESSIOND_ADVANCED__USE_SECURE_COOKIES=false \
    SESSIOND_RATE_LIMIT__ENABLED=false SESSIOND_LOG__LEVEL=warn "$@" \
    "$bin" --config "$OUT/sessiond-cwd/empty.toml") >"$log" 2>&1 &
  SPAWNED_PID=$!
}

# start_sessiond_on BIN DB PORT LOG: spawn_sessiond on database DB (no TLS) with CACHE from
# bench_mode; adds it to PIDS (the caller's cleanup stops them) and returns once it answers.
start_sessiond_on() {
  local port=$3 log=$4
  spawn_sessiond "$1" "postgres://$PGUSER@$PGHOST:$PGPORT/$2?sslmode=disable" "$port" "$log" "${CACHE[@]}"
  PIDS+=("$SPAWNED_PID")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/auth/ok" && return 0; sleep 0.1; done
  echo "sessiond on port $port did not start (see $log)" >&2
  exit 1
}

# cookie_header JAR [ONLY]: the Cookie header of a curl cookie jar ("a=1; b=2"), or of its
# cookie named ONLY.
cookie_header() {
  awk -F'\t' -v only="${2:-}" 'NF==7 && (only=="" || $6==only) {printf "%s%s=%s", (n++ ? "; " : ""), $6, $7}' "$1"
}

# sign_up_cookie URL EMAIL JAR: signs a user up and prints the Cookie header it was given.
sign_up_cookie() {
  curl -sS -o /dev/null -c "$3" -H "Origin: $1" -H 'Content-Type: application/json' \
    --data "{\"name\":\"P\",\"email\":\"$2\",\"password\":\"$PASSWORD\"}" "$1/api/auth/sign-up/email"
  cookie_header "$3"
}

# stop_started: stops every pid in PIDS and drops database DB if DB_CREATED is 1 (the scripts'
# exit trap).
stop_started() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ "$DB_CREATED" = 1 ] && "${PSQL[@]}" -d postgres -c "drop database if exists $DB with (force)" >/dev/null
}
