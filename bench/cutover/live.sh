#!/usr/bin/env bash
# A live import from a running etcd 3.4 (import-etcd --from-url), timed:
# etcd is loaded with KEYS keys, the import reads them with one recursive
# GET and follows etcd while a put load runs against it, then the load
# stops and SIGTERM cuts over. Prints the import's own progress lines and
# a summary: the GET, the lag under load, the cut-over, peak RSS, and
# whether the Strata tree equals etcd's.
#
#   bench/cutover/live.sh [KEYS] [BACKEND] [LOAD_SECONDS]
#
# Needs etcd (Debian etcd-server) and /usr/bin/time.
set -euo pipefail
keys=${1:-100000}
backend=${2:-bbolt}
load=${3:-20}
cd "$(dirname "$0")/../.."
. bench/cutover/common.sh
ec=$(port) ep=$(port) sc=$(port)
etcd --enable-v2=true --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ec" --advertise-client-urls "http://127.0.0.1:$ec" \
  --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
  --initial-cluster "default=http://127.0.0.1:$ep" --quota-backend-bytes 8589934592 > "$work/etcd.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$ec/version" >/dev/null; do sleep 0.1; done
index() { curl -s -o /dev/null -D - "$1/v2/keys/_probe" | tr -d '\r' | sed -n 's/^X-Etcd-Index: //p'; }
tree() { curl -s "$1/v2/keys/?recursive=true&sorted=true" | sha256sum | cut -c1-16; }

echo "== loading $keys keys into etcd"
t0=$(now)
"$work/stratactl" --endpoints "http://127.0.0.1:$ec" bench --mix get=100 --keys "$keys" --requests 1 --clients 32 --quiet > /dev/null
echo "loaded in $(since "$t0")s, etcd index $(index "http://127.0.0.1:$ec")"

echo "== import-etcd --from-url ($backend)"
t0=$(now)
/usr/bin/time -v -o "$work/time" "$work/strata" import-etcd --from-url "http://127.0.0.1:$ec" --data-dir "$work/data" --backend "$backend" \
  > "$work/import.out" 2> "$work/import.err" &
ipid=$!
pids+=($ipid)
until grep -q "following etcd.s events" "$work/import.err"; do kill -0 "$ipid" 2>/dev/null || { cat "$work/import.err"; exit 1; }; sleep 0.1; done
echo "initial GET and seed:    $(since "$t0")s"
"$work/stratactl" --endpoints "http://127.0.0.1:$ec" bench --mix put=100 --keys 10000 --prefix /live --duration "${load}s" --clients 16 --quiet > "$work/load.out"
puts=$(awk '$1 == "put" {printf "%s (%s/s)", $2, $5; exit}' "$work/load.out")
e=$(index "http://127.0.0.1:$ec")
echo "put load for ${load}s:    ${puts:-?} puts; etcd index $e"
tail -n 3 "$work/import.err"
until grep -q "index $e (etcd" "$work/import.err"; do sleep 0.1; done
t1=$(now)
# ipid is /usr/bin/time, which does not pass SIGTERM on: signal the import.
kill -TERM "$(pgrep -P "$ipid")"
wait "$ipid"
echo "cut-over and write:      $(since "$t1")s"
grep "following:" "$work/import.err" | tail -n 4
cat "$work/import.out"
echo "peak RSS:                $(awk '/Maximum resident/ {printf "%.0f MiB", $6/1024}' "$work/time")"
want=$(tree "http://127.0.0.1:$ec")
"$work/strata" --data-dir "$work/data" --backend "$backend" --listen-client-urls "http://127.0.0.1:$sc" \
  --advertise-client-urls "http://127.0.0.1:$sc" --listen-peer-urls "http://127.0.0.1:$(port)" --log-level warn > "$work/s.out" 2> "$work/s.log" &
pids+=($!)
until grep -q "ready to serve" "$work/s.out" 2>/dev/null; do sleep 0.1; done
got=$(tree "http://127.0.0.1:$sc")
[ "$got" = "$want" ] || { echo "Strata's tree differs from etcd's ($got vs $want)"; exit 1; }
echo "trees equal:             $got (X-Etcd-Index etcd $(index "http://127.0.0.1:$ec"), strata $(index "http://127.0.0.1:$sc"))"
