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

// StateMachine is the replicated application. All methods except Snapshot
// are called from one goroutine.
type StateMachine interface {
	// Apply applies committed entries in log order and returns one result
	// per entry (nil where the entry carries no command). It must be
	// deterministic: the same entries give the same state on every member.
	// Entries whose Index is at or below AppliedIndex must be skipped.
	Apply(entries []Entry) []any
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
