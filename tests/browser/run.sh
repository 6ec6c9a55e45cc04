#!/usr/bin/env bash
# The browser tests: examples/devices and examples/account-switcher in headless Chromium
# (Debian's package) driven by playwright-core, against target/debug/sessiond. Installs what it needs, runs
# `node --test tests/browser/`, exits non-zero on failure.
#
#   bash tests/browser/run.sh
#
# SESSIOND_BIN: a sessiond binary to use instead of building target/debug/sessiond.
# CHROMIUM_BIN: a Chromium to use instead of /usr/bin/chromium.
# Artifacts: target/browser/ (devices.png, devices-phone.png, account-switcher.png,
# *sessiond.log, requests.log, console.log).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${CHROMIUM_BIN:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "browser: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
command -v node >/dev/null || { echo "browser: node is required" >&2; exit 1; }

if [ -z "${SESSIOND_BIN:-}" ]; then
  cargo build --locked --quiet --bin sessiond
fi

# playwright-core pinned by tests/browser/package-lock.json; it never downloads a browser.
if ! (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
  echo "browser: npm ci failed" >&2
  exit 1
fi

mkdir -p target/browser
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 node --test --test-concurrency=1 tests/browser/
