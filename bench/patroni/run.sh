#!/usr/bin/env bash
# Patroni + PostgreSQL acceptance run against a 3-member DCS: Strata (one
# backend) or etcd 3.4. Two Patroni 3 nodes (postgres user) on loopback;
# bootstrap, kill -9 the primary, kill -9 the DCS leader, switchover; prints
# each step's time. Not run in CI (needs patroni, postgresql, minutes).
#
#   bench/patroni/run.sh strata memory|bbolt|badger
#   bench/patroni/run.sh etcd
#
# Needs: root (to run postgres as the postgres user), patroni, postgresql 15
# (/usr/lib/postgresql/15/bin or PG_BIN), /usr/bin/python3, curl; for strata
# a binary at $STRATA or `go build` in the module.
set -euo pipefail
kind=${1:?usage: run.sh strata BACKEND | run.sh etcd}
backend=${2:-memory}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
for c in patroni curl "$PG_BIN/postgres" "$PY"; do command -v "$c" >/dev/null || { echo "SKIP: $c not found"; exit 0; }; done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run postgres as the postgres user"; exit 0; }

work=$(mktemp -d /tmp/patroni-run.XXXXXX)
chmod 755 "$work"
pids=()
# the postmaster of node n, by its pid file (no killing by name)
postmaster() { head -1 "$work/pg$1/data/postmaster.pid" 2>/dev/null || true; }
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for n in 0 1; do p=$(postmaster $n); [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  sleep 1
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

ports=($($PY -c 'import socket
s=[socket.socket() for _ in range(10)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
now() { date +%s.%N; }
since() { $PY -c "print('%.1f' % ($(now) - $1))"; }

# --- the DCS: 3 members
if [ "$kind" = strata ]; then
  bin=${STRATA:-$work/strata}
  [ -x "$bin" ] || (cd "$(dirname "$0")/../.." && go build -o "$bin" ./cmd/strata)
  dcs_cmd() { echo "$bin --backend $backend"; }
  label="strata ($backend)"
else
  command -v etcd >/dev/null || { echo "SKIP: etcd not found"; exit 0; }
  dcs_cmd() { echo "etcd --enable-v2=true"; }
  label="etcd $(etcd --version | sed -n 's/etcd Version: //p')"
fi
ic=""
for i in 0 1 2; do ic="$ic${ic:+,}d$i=http://127.0.0.1:${ports[$((2*i+1))]}"; done
dcs_pid=()
start_dcs() { # i
  local i=$1 c=${ports[$((2*$1))]} p=${ports[$((2*$1+1))]}
  $(dcs_cmd) --name d$i --data-dir "$work/dcs$i" --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster "$ic" \
    --initial-cluster-token patroni-run >"$work/dcs$i.log" 2>&1 &
  dcs_pid[$i]=$!
  pids+=($!)
}
for i in 0 1 2; do start_dcs $i; done
hosts="127.0.0.1:${ports[0]},127.0.0.1:${ports[2]},127.0.0.1:${ports[4]}"
dcs_leader() { # prints the index of the DCS leader
  for i in 0 1 2; do
    curl -s -m 1 "http://127.0.0.1:${ports[$((2*i))]}/v2/stats/self" 2>/dev/null | grep -q '"state":"StateLeader"' && { echo $i; return; }
  done
  echo -1
}
until [ "$(dcs_leader)" -ge 0 ]; do sleep 0.2; done

# --- two Patroni nodes
for n in 0 1; do
  pg=${ports[$((6+n))]} api=${ports[$((8+n))]}
  mkdir -p "$work/pg$n"
  cat >"$work/p$n.yml" <<YML
scope: run
name: pg$n
restapi: {listen: 127.0.0.1:$api, connect_address: 127.0.0.1:$api}
etcd: {hosts: "$hosts"}
bootstrap:
  dcs: {ttl: 10, loop_wait: 1, retry_timeout: 5, maximum_lag_on_failover: 1048576, postgresql: {use_pg_rewind: true}}
  initdb: [{encoding: UTF8}]
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $work/pg$n/data
  bin_dir: $PG_BIN
  pgpass: $work/pg$n/pgpass
  authentication:
    superuser: {username: postgres, password: pw}
    replication: {username: replicator, password: pw}
  pg_hba: ["local all all trust", "host all all 127.0.0.1/32 trust", "host replication replicator 127.0.0.1/32 trust"]
  parameters: {unix_socket_directories: "$work/pg$n"}
YML
done
chown -R postgres: "$work"
pat_pid=()
start_patroni() { # n
  HOME=$work setpriv --reuid=postgres --regid=postgres --init-groups patroni "$work/p$1.yml" >>"$work/patroni$1.log" 2>&1 &
  pat_pid[$1]=$!
  pids+=($!)
}
# cluster state from a node's REST API: "leader=pgX replicas=N" (streaming/running replicas)
state() {
  curl -s -m 1 "http://127.0.0.1:${ports[$((8+${1:-0}))]}/cluster" 2>/dev/null | $PY -c '
import json,sys
try: c=json.load(sys.stdin)
except Exception: print("none"); sys.exit()
m=c.get("members",[])
l=[x["name"] for x in m if x.get("role")=="leader" and x.get("state")=="running"]
r=[x for x in m if x.get("role") in ("replica","sync_standby") and x.get("state") in ("running","streaming")]
print("leader=%s replicas=%d" % (l[0] if l else "-", len(r)))' 2>/dev/null || echo none
}
wait_for() { # description predicate-command... ; prints seconds
  local start=$(now) deadline=$(( $(date +%s) + 120 ))
  until "$@"; do
    [ "$(date +%s)" -lt $deadline ] || { echo "TIMEOUT"; return 1; }
    sleep 0.2
  done
  since "$start"
}
healthy() { for n in 0 1; do [[ "$(state $n)" =~ ^leader=pg[01]\ replicas=1$ ]] && return 0; done; return 1; }
leader_is() { for n in 0 1; do [[ "$(state $n)" == "leader=$1 replicas=1" ]] && return 0; done; return 1; }
leader_now() { for n in 0 1; do s=$(state $n); [[ "$s" =~ ^leader=(pg[01]) ]] && { echo "${BASH_REMATCH[1]}"; return; }; done; echo -; }
led_by() { for n in 0 1; do [[ "$(state $n)" =~ ^leader=$1\  ]] && return 0; done; return 1; }

echo "== Patroni 3 + PostgreSQL 15 on $label"
t0=$(now)
start_patroni 0
start_patroni 1
t=$(wait_for healthy); echo "bootstrap (leader + streaming replica):     ${t}s"

old=$(leader_now); oldn=${old#pg}; other=pg$((1-oldn))
t1=$(now)
pm=$(postmaster "$oldn")
kill -9 "${pat_pid[$oldn]}"
[ -n "$pm" ] && kill -9 "$pm"
wait_for led_by "$other" >/dev/null; echo "kill -9 primary $old: $other leads after    $(since "$t1")s"
start_patroni "$oldn"
t=$(wait_for leader_is "$other"); echo "  $old back as streaming replica after:      ${t}s"

dl=$(dcs_leader)
t2=$(now)
kill -9 "${dcs_pid[$dl]}"
until [ "$(dcs_leader)" -ge 0 ]; do sleep 0.1; done
echo "kill -9 DCS leader d$dl: new DCS leader after    $(since "$t2")s"
# Patroni keeps its leader key: the cluster stays led by $other, both running
t=$(wait_for leader_is "$other"); echo "  cluster healthy (same primary) after:       $(since "$t2")s"
start_dcs "$dl"

cand=$old
t3=$(now)
# Patroni refuses a candidate it does not yet consider healthy (a replica
# that just came back, or is reconnecting after the DCS leader change):
# ask again for up to 30 s, and say how many tries it took.
tries=0
while :; do
  tries=$((tries + 1))
  resp=$(curl -s -m 60 -XPOST "http://127.0.0.1:${ports[$((8+${other#pg}))]}/switchover" -d "{\"leader\":\"$other\",\"candidate\":\"$cand\"}" || true)
  [[ "$resp" == *"no good candidates"* ]] && [ "$(since "$t3" | cut -d. -f1)" -lt 30 ] || break
  sleep 1
done
echo "  POST /switchover: $resp (try $tries)"
t=$(wait_for leader_is "$cand"); echo "switchover $other -> $cand (both running):     $(since "$t3")s"
echo "total:                                      $(since "$t0")s"
echo "Patroni tracebacks logged:                  $(cat "$work"/patroni*.log | grep -c Traceback || true)"
