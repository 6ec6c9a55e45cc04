# Shared by profile.sh and ab.sh: one sessiond on a throwaway database, driven on one route.
# Source it after setting ROOT and OUT; it sets PGHOST/PGPORT/PGUSER defaults, SECRET and PSQL.

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
PSQL=(psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PGUSER")

# bench_mode MODE: CACHE (sessiond's cookie-cache environment) and ROUTE for a mode:
# db | fa-db | list (no cache), compact | fa-compact, jwt | jwe.
bench_mode() {
  case $1 in
  db | fa-db | list) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=false) ;;
  compact | fa-compact) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=compact) ;;
  jwt | jwe) CACHE=(SESSIOND_SESSION__COOKIE_CACHE__ENABLED=true SESSIOND_SESSION__COOKIE_CACHE__STRATEGY=$1) ;;
  *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
  case $1 in fa-*) ROUTE=/forward-auth ;; list) ROUTE=/api/auth/list-sessions ;; *) ROUTE=/api/auth/get-session ;; esac
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_sessiond BIN DB PORT LOG: sessiond in production mode (rate limiter off, built-in
# defaults plus the environment, CACHE from bench_mode) on http://127.0.0.1:PORT; sets
# STARTED_PID, adds it to PIDS (the caller's cleanup stops them) and returns once it answers.
start_sessiond() {
  local bin=$1 db=$2 port=$3 log=$4
  mkdir -p "$OUT/sessiond-cwd"
  : >"$OUT/sessiond-cwd/empty.toml"
  (cd "$OUT/sessiond-cwd" && exec env DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db?sslmode=disable" \
    SESSIOND_HOST=127.0.0.1 SESSIOND_PORT="$port" SESSIOND_BASE_URL="http://127.0.0.1:$port" BETTER_AUTH_SECRET="$SECRET" \
    SESSIOND_ENVIRONMENT=production SESSIOND_ADVANCED__USE_SECURE_COOKIES=false \
    SESSIOND_RATE_LIMIT__ENABLED=false SESSIOND_LOG__LEVEL=warn "${CACHE[@]}" \
    "$bin" --config "$OUT/sessiond-cwd/empty.toml") >"$log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/auth/ok" && return 0; sleep 0.1; done
  echo "sessiond on port $port did not start (see $log)" >&2
  exit 1
}

# sign_up_cookie URL EMAIL JAR: signs a user up and prints the Cookie header it was given.
sign_up_cookie() {
  curl -sS -o /dev/null -c "$3" -H "Origin: $1" -H 'Content-Type: application/json' \
    --data "{\"name\":\"P\",\"email\":\"$2\",\"password\":\"bench-password-123\"}" "$1/api/auth/sign-up/email"
  awk -F'\t' 'NF==7 {printf "%s%s=%s", (n++ ? "; " : ""), $6, $7}' "$3"
}
