#!/usr/bin/env bash
# A 3-member cut-over from a stopped etcd member's data dir, timed:
# import-etcd on one member, start it as a one-member cluster, then add two
# members (stratactl member add, --initial-cluster-state existing on empty
# dirs) and wait until each serves the same X-Etcd-Index as the first.
#
#   bench/cutover/run.sh ETCD_DATA_DIR [BACKEND]
#
# ETCD_DATA_DIR: a stopped etcd member's --data-dir (only read), e.g. the
# synthetic 1M-key one: STRATA_SYNTHETIC_ETCD_DIR=/tmp/synth1m go test
# -run TestWriteSyntheticDataDir ./internal/etcddata
set -euo pipefail
src=${1:?usage: run.sh ETCD_DATA_DIR [BACKEND]}
backend=${2:-bbolt}
cd "$(dirname "$0")/../.."
. bench/cutover/common.sh
for i in 1 2 3; do c[$i]=$(port); p[$i]=$(port); done
peer() { echo "http://127.0.0.1:${p[$1]}"; }
client() { echo "http://127.0.0.1:${c[$1]}"; }
index() { curl -s -o /dev/null -D - "$(client "$1")/v2/keys/" 2>/dev/null | tr -d '\r' | sed -n 's/^X-Etcd-Index: //p'; }
start() { # member, initial-cluster, state
  "$work/strata" --name "m$1" --data-dir "$work/m$1" --backend "$backend" \
    --listen-client-urls "$(client "$1")" --advertise-client-urls "$(client "$1")" \
    --listen-peer-urls "$(peer "$1")" --initial-advertise-peer-urls "$(peer "$1")" \
    --initial-cluster "$2" --initial-cluster-state "$3" --initial-cluster-token cutover \
    --log-level warn > "$work/m$1.out" 2> "$work/m$1.log" &
  pids+=($!)
  until grep -q "ready to serve" "$work/m$1.out" 2>/dev/null; do sleep 0.1; done
}

echo "== cut-over of $src to a 3-member Strata ($backend)"
t0=$(now)
"$work/strata" import-etcd --etcd-data-dir "$src" --data-dir "$work/m1" --backend "$backend" \
  --initial-advertise-peer-urls "$(peer 1)" --initial-cluster-token cutover
echo "import-etcd:                          $(since "$t0")s"
t1=$(now)
ic="m1=$(peer 1)"
start 1 "$ic" new
want=$(index 1)
echo "m1 serving (X-Etcd-Index $want):   $(since "$t1")s"
for i in 2 3; do
  ti=$(now)
  "$work/stratactl" --endpoints "$(client 1)" member add "m$i" "$(peer "$i")" > /dev/null
  ic="$ic,m$i=$(peer "$i")"
  start "$i" "$ic" existing
  until [ "$(index "$i")" = "$want" ]; do sleep 0.2; done
  echo "m$i joined and caught up:             $(since "$ti")s"
done
echo "total cut-over:                       $(since "$t0")s"
# Not timed: the whole tree on each member, hashed, against m1's.
tree() { curl -s "$(client "$1")/v2/keys/?recursive=true&sorted=true" | sha256sum | cut -c1-16; }
h1=$(tree 1)
for i in 2 3; do
  h=$(tree "$i")
  [ "$h" = "$h1" ] || { echo "m$i's tree differs from m1's ($h vs $h1)"; exit 1; }
done
echo "trees equal on m1, m2, m3:            $h1"
