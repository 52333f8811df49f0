package main

import (
	"flag"
	"fmt"
	"net"
	"time"
)

// raftFlags are the cluster timing flags, in milliseconds as etcd's.
type raftFlags struct {
	heartbeatMs, electionMs uint
	catchUpEntries          uint64
	peerFlagsSet            bool // --listen-peer-urls given explicitly
}

func (r *raftFlags) register(fs *flag.FlagSet) {
	fs.UintVar(&r.heartbeatMs, "heartbeat-interval", 100, "time (in milliseconds) of a heartbeat interval: raft's tick")
	fs.UintVar(&r.electionMs, "election-timeout", 1000, "time (in milliseconds) for an election to timeout (a whole number of heartbeat intervals)")
	fs.Uint64Var(&r.catchUpEntries, "experimental-snapshot-catchup-entries", 5000, "number of entries kept after a snapshot for slow followers to catch up from the log")
}

// check validates the timing flags with etcd's rules and messages.
func (r *raftFlags) check(fs *flag.FlagSet) error {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "listen-peer-urls" {
			r.peerFlagsSet = true
		}
	})
	switch {
	case r.heartbeatMs == 0:
		return fmt.Errorf("--heartbeat-interval must be >0 (set to %dms)", r.heartbeatMs)
	case r.electionMs < 5*r.heartbeatMs:
		return fmt.Errorf("--election-timeout[%dms] should be at least as 5 times as --heartbeat-interval[%dms]", r.electionMs, r.heartbeatMs)
	case r.electionMs > 50000:
		return fmt.Errorf("--election-timeout[%dms] is too long, and should be set less than 50000ms", r.electionMs)
	case r.catchUpEntries == 0:
		return fmt.Errorf("--experimental-snapshot-catchup-entries must be positive")
	}
	return nil
}

func (r *raftFlags) heartbeat() time.Duration { return time.Duration(r.heartbeatMs) * time.Millisecond }
func (r *raftFlags) election() time.Duration  { return time.Duration(r.electionMs) * time.Millisecond }

// listenPeers binds the peer URLs. A lone member (--initial-cluster names
// only itself) binds them only when --listen-peer-urls is given, so that
// single members started with the defaults do not contend for port 2380;
// a member of a cluster always does.
func listenPeers(o *options, initial map[string][]string) ([]net.Listener, error) {
	urls, err := parseURLs("listen-peer-urls", o.listenPeer)
	if err != nil {
		return nil, err
	}
	if len(initial) <= 1 && !o.raft.peerFlagsSet {
		return nil, nil
	}
	var lns []net.Listener
	for _, u := range urls {
		ln, err := net.Listen("tcp", hostPort(u))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen on peer URL %s: %w", u, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}
