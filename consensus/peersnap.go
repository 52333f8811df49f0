package consensus

import (
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
)

// PeerSnapshot is the snapshot a leader sends a member that needs one
// (what a transport attaches to raft's MsgSnap): the metadata of the
// member's current applied index X (its term and the membership in force
// at X) and a fresh image streamed from StateMachine.Snapshot, which
// reflects X or a later applied index. As etcd's merged snapshot message,
// it is taken now rather than from the newest snapshot file, because a
// member added after that file was written is not in the file's
// membership, and raft refuses a snapshot whose membership does not
// include the receiver. The receiver restores the image and skips the
// entries at or below its AppliedIndex, as StateMachine.Apply requires.
//
// The caller must Close the reader; closing it early stops the stream.
// Safe for concurrent use, also with the run loop and Apply.
func (n *Replica[R]) PeerSnapshot() (raftpb.SnapshotMetadata, io.ReadCloser, error) {
	x := n.stats.applied.Load()
	term, cs, err := n.snapMeta(x)
	if err != nil {
		return raftpb.SnapshotMetadata{}, nil, fmt.Errorf("peer snapshot at applied index %d: %w", x, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := n.sm.Snapshot(pw)
		pw.CloseWithError(err)
	}()
	return raftpb.SnapshotMetadata{Index: x, Term: term, ConfState: cs}, pr, nil
}
