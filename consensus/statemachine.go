// Package consensus replicates Strata's command log with go.etcd.io/raft/v3.
//
// It owns the durable write-ahead log, snapshots and compaction, and the
// raft state machine loop. It knows nothing of etcd v2 semantics: commands
// are opaque bytes handed to a StateMachine in log order, and a proposer is
// answered with the StateMachine's result only after its entry is durable
// (fsync'd) and applied.
package consensus

import "io"

// Entry is one committed command handed to the state machine.
type Entry struct {
	Index uint64 // raft log index
	Term  uint64 // raft term
	Data  []byte // the command as proposed; nil for raft-internal entries
}

// StateMachine is the replicated application; R is the result it gives a
// proposer for each command (typed, so a result crosses the Replica without
// boxing or a type assertion). All methods except Snapshot are called from
// one goroutine.
type StateMachine[R any] interface {
	// Apply applies committed entries in log order and returns one result
	// per entry (the zero R where the entry carries no command or was
	// skipped). It must be deterministic: the same entries give the same
	// state on every member. Entries whose Index is at or below
	// AppliedIndex must be skipped. The Replica reads the results before
	// the next Apply, so the state machine may reuse the slice.
	Apply(entries []Entry) []R
	// AppliedIndex is the index of the last entry applied, as durable as
	// the state machine's own storage (0 for a new state machine).
	AppliedIndex() uint64
	// Snapshot writes a consistent image of the state to w and returns the
	// raft index it reflects. It may run concurrently with Apply.
	Snapshot(w io.Writer) (uint64, error)
	// Restore replaces the state with an image made by Snapshot.
	Restore(r io.Reader) error
	// Sync makes the applied state durable on the state machine's own
	// storage, so the log before AppliedIndex may be dropped.
	Sync() error
}

// DurableStateMachine is a StateMachine whose own storage is a durable
// copy of the applied state (a disk backend), as opposed to one that is
// rebuilt from snapshot images and the log at every start (an in-memory
// store). When Durable reports true the Replica takes metadata-only
// snapshots: it calls Sync (from the applier, between two Apply calls),
// records a snapshot at the AppliedIndex that Sync covered with no image,
// and releases the log behind it. Restarting then restores no image: the
// state machine reopens at or after that index and the log replays the
// rest. An image is only made for a peer that needs one (Replica.PeerSnapshot).
type DurableStateMachine[R any] interface {
	StateMachine[R]
	// Durable reports whether this state machine keeps the guarantee
	// below, for the whole life of the Replica: once Sync returns nil, the
	// state as of the AppliedIndex it covered survives a process crash
	// and a power loss, and a state machine reopened on the same storage
	// reports an AppliedIndex at least that high.
	Durable() bool
}

// FallibleStateMachine is a StateMachine whose storage may refuse a batch
// (a full disk). The Replica calls TryApply instead of Apply: on an error it
// answers none of the batch's proposers and either retries the same
// entries later (the error is ENOSPC or EDQUOT: the member raises its
// NOSPACE alarm meanwhile) or stops the member. Entries applied before the
// failure must be reflected in AppliedIndex, so the retry skips them.
type FallibleStateMachine[R any] interface {
	StateMachine[R]
	TryApply(entries []Entry) ([]R, error)
}
