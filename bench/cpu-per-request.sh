#!/usr/bin/env bash
# CPU time a server spends per request under v2load: the figure that decides
# throughput when server and load generator share a small machine.
# usage: bench/cpu-per-request.sh URL PID [clients] [workloads...]
#   e.g. bench/cpu-per-request.sh http://127.0.0.1:2379 $(pgrep -f 'strata --data-dir x') 16 put get
set -euo pipefail
url=$1 pid=$2 clients=${3:-16}
shift $(( $# < 3 ? $# : 3 ))
workloads=${*:-put get}
cd "$(dirname "$0")/.."
go build -o /tmp/v2load.$$ ./bench/cmd/v2load
trap 'rm -f /tmp/v2load.$$ /tmp/v2load.$$.out' EXIT
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
for wl in $workloads; do
  /tmp/v2load.$$ --target "$url" --workload "$wl" --clients "$clients" --duration 9s --quiet > /tmp/v2load.$$.out 2>&1 &
  lp=$!
  sleep 3; t0=$(ticks); sleep 4; t1=$(ticks)
  wait "$lp"
  rps=$(awk '/throughput/ {print $2}' /tmp/v2load.$$.out)
  awk -v wl="$wl" -v rps="$rps" -v t="$((t1 - t0))" -v hz="$hz" -v c="$clients" 'BEGIN {
    cpu = t / hz / 4                      # cores used over the 4 s window
    printf "%s x%d: %.0f req/s, server %.2f cores, %.1f us CPU/request\n", wl, c, rps, cpu, cpu * 1e6 / rps }'
done
