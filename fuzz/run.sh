#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, from seeds made out of the
# real Better Auth's values, and prints the executions each reached.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]      # default 60 s, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the machine's stable toolchain is used
# with RUSTC_BOOTSTRAP=1 for the flags cargo-fuzz passes. A crash stops the run with
# libFuzzer's report and leaves the input under fuzz/artifacts/<target>/: turn it into a
# regression test (tests/suite/robustness.rs) before fixing.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(cookie_header signed_cookie cache_compact cache_jwt cache_jwe request_bodies config_loader)
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo install cargo-fuzz" >&2; exit 2; }
export RUSTC_BOOTSTRAP=1
python3 seeds.py
cargo fuzz build --sanitizer none
summary=()
for t in "${targets[@]}"; do
  log="$(mktemp)"
  # -rss_limit_mb: a growing target is a bug too.
  if ! cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  summary+=("$(printf '%-15s %12s executions  %8s/s  0 crashes' "$t" "$execs" "$rate")")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
