package consensus

import (
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
)

// Status is a point-in-time view of a member, for metrics and debugging.
type Status struct {
	ID        uint64
	Lead      uint64 // 0 when no leader is known
	Term      uint64
	Commit    uint64
	Applied   uint64
	RaftState string // StateLeader, StateFollower, StateCandidate, StatePreCandidate

	ProposalsCommitted uint64 // command entries committed (from any member)
	ProposalsApplied   uint64 // command entries applied to the state machine
	ProposalsFailed    uint64 // local proposals that returned an error
	ProposalsPending   int    // local proposals waiting for their result

	Fsyncs     uint64        // WAL fdatasyncs
	FsyncTotal time.Duration // cumulative time in them

	Snapshots            uint64
	SnapshotFailures     uint64
	SnapshotIndex        uint64
	LastSnapshotDuration time.Duration

	LeaderChanges uint64
}

type counters struct {
	lead, term, commit, applied            atomic.Uint64
	state                                  atomic.Uint32
	proposalsCommitted, proposalsApplied   atomic.Uint64
	proposalsFailed                        atomic.Uint64
	snapshots, snapshotFailures, snapIndex atomic.Uint64
	lastSnapNanos                          atomic.Int64
	leaderChanges                          atomic.Uint64
	// commitBeforeDurable counts Readys whose committed entries were not
	// yet durable before that Ready (expected 0 for a single voter).
	commitBeforeDurable atomic.Uint64
}

// Status returns the member's current status; safe for concurrent use.
func (n *Node) Status() Status {
	ws := n.wal.Stats()
	n.mu.Lock()
	pending := len(n.waiters)
	n.mu.Unlock()
	return Status{
		ID:                   n.id,
		Lead:                 n.stats.lead.Load(),
		Term:                 n.stats.term.Load(),
		Commit:               n.stats.commit.Load(),
		Applied:              n.stats.applied.Load(),
		RaftState:            raft.StateType(n.stats.state.Load()).String(),
		ProposalsCommitted:   n.stats.proposalsCommitted.Load(),
		ProposalsApplied:     n.stats.proposalsApplied.Load(),
		ProposalsFailed:      n.stats.proposalsFailed.Load(),
		ProposalsPending:     pending,
		Fsyncs:               ws.Fsyncs,
		FsyncTotal:           time.Duration(ws.FsyncNanos),
		Snapshots:            n.stats.snapshots.Load(),
		SnapshotFailures:     n.stats.snapshotFailures.Load(),
		SnapshotIndex:        n.stats.snapIndex.Load(),
		LastSnapshotDuration: time.Duration(n.stats.lastSnapNanos.Load()),
		LeaderChanges:        n.stats.leaderChanges.Load(),
	}
}

// Progress is the applied index and current term, read without locks for
// hot paths such as response headers.
func (n *Node) Progress() (applied, term uint64) {
	return n.stats.applied.Load(), n.stats.term.Load()
}
