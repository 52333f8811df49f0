//go:build failpoints

package server

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
)

// peerFaults wraps the transport when FaultFileEnv is set, and returns
// what the transport must deliver received messages to.
func (s *Server) peerFaults() (consensus.Transport, func(*replica) transport.Raft) {
	path := os.Getenv(FaultFileEnv)
	if path == "" {
		return s.tr, func(n *replica) transport.Raft { return n }
	}
	f := newFaults(path, s.tr, s.stop)
	s.log.Warn("peer traffic fault injection is enabled (tests only)", "file", path)
	return f, func(n *replica) transport.Raft {
		f.replica.Store(n)
		return inbound{f, n}
	}
}

// faults drops raft traffic to and from the members listed in a file.
type faults struct {
	path    string
	blocked atomic.Pointer[map[uint64]bool]
	next    consensus.Transport
	replica atomic.Pointer[replica] // set once Open returns
	stop    <-chan struct{}
}

func newFaults(path string, next consensus.Transport, stop <-chan struct{}) *faults {
	f := &faults{path: path, next: next, stop: stop}
	f.load()
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				f.load()
			}
		}
	}()
	return f
}

func (f *faults) load() {
	m := map[uint64]bool{}
	if b, err := os.ReadFile(f.path); err == nil {
		for _, w := range strings.Fields(string(b)) {
			if id, err := strconv.ParseUint(w, 16, 64); err == nil {
				m[id] = true
			}
		}
	}
	f.blocked.Store(&m)
}

func (f *faults) isBlocked(id uint64) bool { return (*f.blocked.Load())[id] }

// Send implements consensus.Transport.
func (f *faults) Send(msgs []raftpb.Message) {
	kept := make([]raftpb.Message, 0, len(msgs))
	for _, m := range msgs {
		if !f.isBlocked(m.To) {
			kept = append(kept, m)
			continue
		}
		if n := f.replica.Load(); m.Type == raftpb.MsgSnap && n != nil {
			go n.ReportSnapshot(m.To, raft.SnapshotFailure)
		}
	}
	if len(kept) > 0 {
		f.next.Send(kept)
	}
}

// inbound wraps the replica the transport delivers received messages to.
type inbound struct {
	f *faults
	*replica
}

var _ transport.Raft = inbound{}

// Step drops a message from a blocked member (as if it never arrived).
func (in inbound) Step(ctx context.Context, m raftpb.Message) error {
	if in.f.isBlocked(m.From) {
		return nil
	}
	return in.replica.Step(ctx, m)
}
