package consensus

import (
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/strata-kv/strata/consensus/wal"
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

	Fsyncs      uint64        // WAL fdatasyncs
	FsyncTotal  time.Duration // cumulative time in them
	WALBytes    uint64        // bytes written to the WAL since Open
	WALSegments int           // live WAL segment files
	// FsyncBuckets counts fdatasyncs by duration: element i those at most
	// wal.FsyncBucketBounds[i] (and above the bound before), the last
	// those above every bound.
	FsyncBuckets [len(wal.FsyncBucketBounds) + 1]uint64

	Snapshots            uint64
	SnapshotFailures     uint64
	SnapshotIndex        uint64
	LastSnapshotDuration time.Duration
	// SnapshotTotal is the cumulative duration of the Snapshots taken;
	// SnapshotBuckets counts them by duration as FsyncBuckets does, with
	// SnapshotBucketBounds.
	SnapshotTotal   time.Duration
	SnapshotBuckets [len(SnapshotBucketBounds) + 1]uint64

	LeaderChanges uint64
}

type counters struct {
	lead, term, commit, applied            atomic.Uint64
	state                                  atomic.Uint32
	proposalsCommitted, proposalsApplied   atomic.Uint64
	proposalsFailed                        atomic.Uint64
	snapshots, snapshotFailures, snapIndex atomic.Uint64
	lastSnapNanos                          atomic.Int64
	snapTotalNanos                         atomic.Int64
	snapHist                               [len(SnapshotBucketBounds) + 1]atomic.Uint64
	leaderChanges                          atomic.Uint64
	// commitBeforeDurable counts Readys whose committed entries were not
	// yet durable before that Ready (expected 0 for a single voter).
	commitBeforeDurable atomic.Uint64
}

// SnapshotBucketBounds are the upper bounds of Status.SnapshotBuckets:
// 1 ms doubling up to about 65 s (a metadata-only snapshot is one backend
// sync; an image of 5M keys takes seconds).
var SnapshotBucketBounds = [...]time.Duration{
	1 << 0 * time.Millisecond, 1 << 1 * time.Millisecond, 1 << 2 * time.Millisecond, 1 << 3 * time.Millisecond,
	1 << 4 * time.Millisecond, 1 << 5 * time.Millisecond, 1 << 6 * time.Millisecond, 1 << 7 * time.Millisecond,
	1 << 8 * time.Millisecond, 1 << 9 * time.Millisecond, 1 << 10 * time.Millisecond, 1 << 11 * time.Millisecond,
	1 << 12 * time.Millisecond, 1 << 13 * time.Millisecond, 1 << 14 * time.Millisecond, 1 << 15 * time.Millisecond,
	1 << 16 * time.Millisecond,
}

// recordSnapshot counts a snapshot that took d.
func (c *counters) recordSnapshot(d time.Duration) {
	i := 0
	for i < len(SnapshotBucketBounds) && d > SnapshotBucketBounds[i] {
		i++
	}
	c.snapHist[i].Add(1)
	c.snapTotalNanos.Add(int64(d))
	c.lastSnapNanos.Store(int64(d))
	c.snapshots.Add(1)
}

// Status returns the member's current status; safe for concurrent use.
func (n *Replica[R]) Status() Status {
	ws := n.wal.Stats()
	n.mu.Lock()
	pending := len(n.waiters)
	n.mu.Unlock()
	st := Status{
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
		FsyncBuckets:         ws.FsyncBuckets,
		WALBytes:             ws.Bytes,
		WALSegments:          ws.Segments,
		SnapshotTotal:        time.Duration(n.stats.snapTotalNanos.Load()),
	}
	for i := range n.stats.snapHist {
		st.SnapshotBuckets[i] = n.stats.snapHist[i].Load()
	}
	return st
}

// Progress is the applied index and current term, read without locks for
// hot paths such as response headers.
func (n *Replica[R]) Progress() (applied, term uint64) {
	return n.stats.applied.Load(), n.stats.term.Load()
}
