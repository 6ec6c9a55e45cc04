#!/usr/bin/env bash
# The compatibility suite in one command: sessiond beside the real Better Auth 1.7.25.
#
#   bash compat/run.sh                  # uses target/debug/sessiond (cargo build / cargo test make it)
#   SESSIOND_BIN=target/release/sessiond bash compat/run.sh
#   bash compat/run.sh compat/test/sidecar.test.mjs     # only some test files
#
# Needs Node 20+ and PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; another server:
# COMPAT_PG_URL=postgres://user@host:port/postgres). Runs `npm ci` in compat/ when
# node_modules is missing or older than package-lock.json, creates fresh databases named
# compat_<run id>_… and drops them at the end, starts every server on a free loopback port
# and stops it. The output is the Node test runner's (TAP); exit status 0 when every test
# passed. See compat/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

# --- sessiond ---------------------------------------------------------------------------------
SESSIOND_BIN="${SESSIOND_BIN:-target/debug/sessiond}"
case "$SESSIOND_BIN" in /*) ;; *) SESSIOND_BIN="$ROOT/$SESSIOND_BIN" ;; esac
if [ ! -x "$SESSIOND_BIN" ]; then
  echo "compat: no sessiond binary at $SESSIOND_BIN (run 'cargo build' or set SESSIOND_BIN)" >&2
  exit 2
fi
export SESSIOND_BIN

# --- Node and the pinned packages --------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  echo "compat: node (20 or later) is required" >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "compat: node 20 or later is required (found $(node --version))" >&2
  exit 2
fi
stamp="$HERE/node_modules/.compat-lock.sha256"
want="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$HERE/node_modules/better-auth" ]; then
  echo "compat: npm ci (node_modules missing or stale)" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$stamp"
fi

# --- PostgreSQL, run id, cleanup ---------------------------------------------------------------
node "$HERE/lib/cleanup.mjs" --check

export COMPAT_RUN_ID="r$(date +%s)$$"
COMPAT_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sessiond-compat-run.XXXXXX")"
export COMPAT_RUN_DIR

cleanup() {
  # servers a test process could not stop (it was killed): by pid, only our own commands
  if [ -f "$COMPAT_RUN_DIR/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
      if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "$SESSIOND_BIN|compat/better-auth/server\.mjs|better-auth/server\.mjs|compat/compare\.mjs|compat/lib/"; then
        echo "compat: stopping leftover process $pid" >&2
        kill "$pid" 2>/dev/null || true
      fi
    done <"$COMPAT_RUN_DIR/pids"
  fi
  node "$HERE/lib/cleanup.mjs" "$COMPAT_RUN_ID" || true
  rm -rf "$COMPAT_RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the tests ----------------------------------------------------------------------------------
if [ $# -gt 0 ]; then
  files=("$@")
else
  files=(compat/test/client.test.mjs compat/test/sidecar.test.mjs compat/test/compare.test.mjs compat/test/profiles.test.mjs compat/test/tokens.test.mjs compat/test/admin.test.mjs compat/test/multi-session.test.mjs compat/test/jwt-verifier.test.mjs)
fi
set +e
node --test --test-reporter=tap --test-concurrency=1 "${files[@]}"
status=$?
set -e
exit "$status"
