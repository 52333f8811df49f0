# Shared by run.sh and live.sh: a work dir removed on exit with every
# process in pids killed, the two binaries built into it, and timing and
# free-port helpers. Source it from the repository root.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/strata" ./cmd/strata
go build -o "$work/stratactl" ./cmd/stratactl
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
