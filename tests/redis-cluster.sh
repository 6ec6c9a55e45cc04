#!/usr/bin/env bash
# The Redis API tests once more, on a three-master Redis Cluster on loopback: each test's
# sessiond gets `redis.cluster.urls` and a hash-tagged key prefix (tests/suite/support/redis.rs,
# TEST_REDIS_CLUSTER). Tests that start a private redis-server of their own keep it.
# The nodes are private redis-servers on free ports, stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Redis API tests: api::redis and the tests of other areas that run on the shared Redis.
# (replicas:: runs sessiond processes configured through REDIS_URL: single-server only.)
filters=(api::redis:: with_redis on_redis redis_ends_held redis_keeps_the_limit --skip replicas::)

dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

addrs=()
for i in 1 2 3; do
  port="$(free_port)"
  bus="$(free_port)"
  mkdir -p "$dir/$i"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/$i" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$bus" \
    --cluster-node-timeout 5000 --logfile "$dir/$i/redis.log" &
  pids+=("$!")
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  addrs+=("127.0.0.1:$port")
done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for a in "${addrs[@]}"; do
  for _ in $(seq 1 600); do
    redis-cli -p "${a##*:}" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
  done
  redis-cli -p "${a##*:}" cluster info | grep -q cluster_state:ok \
    || { echo "redis-cluster: the cluster on ${addrs[*]} did not come up" >&2; exit 1; }
done

echo "redis-cluster: running the Redis API tests on the cluster ${addrs[*]}"
cluster="$(IFS=,; echo "${addrs[*]}")"
log="$(mktemp)"
status=0
TEST_REDIS_CLUSTER="$cluster" cargo test --locked --test suite -- "${filters[@]}" 2>&1 \
  | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "redis-cluster: %d tests run on the cluster, %d passed, %d failed\n", p + f, p, f }' "$log"
rm -f "$log"
# The tests' keys must have gone to the cluster, not to a single server by mistake.
keys=0
for a in "${addrs[@]}"; do keys=$((keys + $(redis-cli -p "${a##*:}" dbsize))); done
echo "redis-cluster: $keys keys left on the cluster's nodes"
if [ "$status" -eq 0 ] && [ "$keys" -eq 0 ]; then
  echo "redis-cluster: no key reached the cluster: the tests did not run on it" >&2
  status=1
fi
exit "$status"
