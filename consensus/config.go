package consensus

import (
	"errors"
	"log/slog"
	"math"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Peer is a member of the raft group.
type Peer struct {
	ID   uint64
	URLs []string
	// Context goes with the member's bootstrap conf change (raft.Peer's
	// Context): the state machine sees it in ApplyConfChange.
	Context []byte
}

// Transport delivers raft messages to peers. Send must not block the
// caller for long (queue and return); lost messages are tolerated by raft.
// A MsgSnap carries only snapshot metadata: the transport must attach an
// image from Replica.PeerSnapshot (which may reflect a later index than the
// metadata), and on receipt put it in Snapshot.Data.
type Transport interface {
	Send(msgs []raftpb.Message)
}

// Config configures a Replica.
type Config struct {
	ID    uint64 // this member's raft id, non-zero
	Peers []Peer // initial members, this one included; used on first boot only
	// Join starts a new member of a running cluster: the first boot does
	// not bootstrap Peers, and the member waits for the leader to send it
	// the log or a snapshot (it must have been added by a conf change).
	Join bool
	// ForceNewCluster restarts a member that has a log as the only voter
	// of its cluster (etcd's --force-new-cluster; see force.go). Ignored
	// on a first boot.
	ForceNewCluster bool
	// DataDir holds the WAL (DataDir/wal) and snapshots (DataDir/snap).
	DataDir string
	// SnapshotCount: take a snapshot every N applied entries (default 10000).
	SnapshotCount uint64
	// SnapshotCatchUpEntries entries are kept in memory before a snapshot's
	// index so slow followers can catch up without a snapshot (default 5000).
	SnapshotCatchUpEntries uint64
	TickInterval           time.Duration // default 100ms
	ElectionTicks          int           // default 10
	HeartbeatTicks         int           // default 1
	// MaxSnapshots is the number of snapshot files kept (default 3;
	// negative: all). The WAL is kept back to the oldest kept one.
	MaxSnapshots int
	// MaxWALSegments, when positive, also releases the oldest WAL segments
	// beyond this many, but never one holding an entry after the newest
	// snapshot (etcd's --max-wals): older snapshots then cannot be
	// restarted from, the newest always can.
	MaxWALSegments int
	// UnsafeNoFsync disables fsync of the WAL and snapshots: acknowledged
	// writes can be lost on a machine crash. Test rigs only.
	UnsafeNoFsync bool
	// SnapshotSpacing is the least idle time between two snapshots, in
	// multiples of the last one's duration (default 10; negative: none),
	// so snapshotting a large store takes at most ~1/(1+spacing) of a core.
	SnapshotSpacing int
	// ProposalTimeout fails a proposal with ErrTimeout if it is not applied
	// within this long (checked every tick); 0 waits as long as ctx allows.
	ProposalTimeout time.Duration
	Logger          *slog.Logger
	// SpaceReserve: the NOSPACE alarm is raised while the data dir's file
	// system has fewer free bytes than this (default 16 MiB; negative: only
	// a write that actually fails with ENOSPC/EDQUOT raises it, not the free
	// space nor a failed preallocation of the next WAL segment). It is checked every SpaceProbeInterval
	// (default 100ms), which is also how often a write that failed for want
	// of space is retried.
	SpaceReserve       int64
	SpaceProbeInterval time.Duration
	// Transport is nil for a single member.
	Transport Transport

	// walSegmentSize overrides the WAL segment size (tests).
	walSegmentSize int64
}

const (
	defaultSnapshotCount  = 10000
	defaultCatchUpEntries = 5000
	defaultTickInterval   = 100 * time.Millisecond
	defaultElectionTicks  = 10
	defaultHeartbeatTicks = 1
	keepSnapshots         = 3       // default MaxSnapshots
	maxSizePerMsg         = 1 << 20 // raft append message size
	maxCommittedPerReady  = 16 << 20
	maxInflightMsgs       = 256
	proposalQueue         = 4096
	maxProposalsPerReady  = 4096 // bounds one group-commit batch
	readQueue             = 1024
	applyQueue            = 64 // committed batches waiting for the applier
	recvQueue             = 4096
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.ID == 0 {
		return cfg, errors.New("consensus: Config.ID must be non-zero")
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("consensus: Config.DataDir is required")
	}
	if len(cfg.Peers) == 0 && !cfg.Join {
		cfg.Peers = []Peer{{ID: cfg.ID}}
	}
	if cfg.SnapshotCount == 0 {
		cfg.SnapshotCount = defaultSnapshotCount
	}
	switch {
	case cfg.MaxSnapshots == 0:
		cfg.MaxSnapshots = keepSnapshots
	case cfg.MaxSnapshots < 0:
		cfg.MaxSnapshots = math.MaxInt
	}
	if cfg.SnapshotSpacing == 0 {
		cfg.SnapshotSpacing = 10
	}
	if cfg.SnapshotCatchUpEntries == 0 {
		cfg.SnapshotCatchUpEntries = defaultCatchUpEntries
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = defaultTickInterval
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = defaultElectionTicks
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = defaultHeartbeatTicks
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SpaceReserve == 0 {
		cfg.SpaceReserve = defaultSpaceReserve
	}
	if cfg.SpaceProbeInterval <= 0 {
		cfg.SpaceProbeInterval = defaultSpaceProbe
	}
	return cfg, nil
}
