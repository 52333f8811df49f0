package consensus

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ReportUnreachable tells raft that a message to peer id could not be
// delivered, so the leader stops pipelining appends to it and probes
// instead. It never blocks (it may be called from within Transport.Send):
// the report is dropped if the receive queue is full, which raft tolerates.
func (n *Replica[R]) ReportUnreachable(id uint64) {
	select {
	case n.recvc <- raftpb.Message{Type: raftpb.MsgUnreachable, From: id}:
	default:
	}
}

// ReportSnapshot tells raft how sending a snapshot to peer id ended. The
// report must reach raft (a leader waits for it before probing the peer
// again), so it blocks until queued or the replica stops: never call it from
// Transport.Send.
func (n *Replica[R]) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	select {
	case n.recvc <- raftpb.Message{Type: raftpb.MsgSnapStatus, From: id, Reject: status == raft.SnapshotFailure}:
	case <-n.done:
	}
}

// stepLocal handles the reports above on the run loop; it returns false
// for any other message.
func (n *Replica[R]) stepLocal(m raftpb.Message) bool {
	switch m.Type {
	case raftpb.MsgUnreachable:
		n.rn.ReportUnreachable(m.From)
	case raftpb.MsgSnapStatus:
		st := raft.SnapshotFinish
		if m.Reject {
			st = raft.SnapshotFailure
		}
		n.rn.ReportSnapshot(m.From, st)
	default:
		return false
	}
	return true
}

// Leader returns the leader this member knows of, 0 if none. Lock-free.
func (n *Replica[R]) Leader() uint64 { return n.stats.lead.Load() }
