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

// FaultFileEnv names an environment variable for tests only: the path of
// a file listing (hex, whitespace-separated) the members this member must
// not exchange raft traffic with. The file is re-read every 20 ms; an
// absent or empty file means no fault. Messages to a listed member are
// dropped before the transport sees them (a snapshot is reported failed),
// and messages from one are dropped when they arrive, while client
// traffic is served as usual: a network partition between members, as
// the linearizability test needs. Never set it in production.
const FaultFileEnv = "STRATA_TEST_PEER_FAULTS"

// faults drops raft traffic to and from the members listed in a file.
type faults struct {
	path    string
	blocked atomic.Pointer[map[uint64]bool]
	next    consensus.Transport
	node    atomic.Pointer[consensus.Node] // set once Open returns
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
		if n := f.node.Load(); m.Type == raftpb.MsgSnap && n != nil {
			go n.ReportSnapshot(m.To, raft.SnapshotFailure)
		}
	}
	if len(kept) > 0 {
		f.next.Send(kept)
	}
}

// inbound wraps the node the transport delivers received messages to.
type inbound struct {
	f *faults
	*consensus.Node
}

var _ transport.Raft = inbound{}

// Step drops a message from a blocked member (as if it never arrived).
func (in inbound) Step(ctx context.Context, m raftpb.Message) error {
	if in.f.isBlocked(m.From) {
		return nil
	}
	return in.Node.Step(ctx, m)
}
