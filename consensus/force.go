package consensus

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// forceNewCluster is etcd's --force-new-cluster: it rewrites this member's
// log so that, when restore runs next, the member is the only voter of its
// cluster and can commit alone. A member of a cluster that lost quorum for
// good is so brought back with its data; members are then added again.
//
// It runs restore once with every entry of the log taken as committed
// (unlike etcd, which drops the entries past the commit index it last
// recorded: that index is written lazily, so an acknowledged write can lie
// past it; an entry this member holds but that was never committed may be
// applied, which a client that saw its proposal time out must allow for,
// as after any timeout). That replay applies the state machine and yields
// the final configuration; one conf change removing each other voter and
// learner is then appended at the log's term and recorded as committed in
// the same fsync'd WAL batch. The caller's restore then replays those
// changes through the state machine (so it drops the members' records) and
// raft. Run again (the flag left on), it removes the members added since,
// as etcd does.
func (n *Replica[R]) forceNewCluster() error {
	n.forcing = true
	defer func() { n.forcing = false }()
	err := n.restore()
	if err == nil && n.fresh {
		n.log.Info("consensus: --force-new-cluster on a member without a log: bootstrapping normally")
	}
	if err != nil || n.fresh {
		return errors.Join(err, n.closeWAL())
	}
	cs := n.currentConf()
	self := false
	for _, id := range cs.Voters {
		self = self || id == n.id
	}
	if !self || len(cs.VotersOutgoing) > 0 {
		return errors.Join(fmt.Errorf("this member is not a voter of the configuration its log ends with (voters %v, outgoing %v)",
			hexIDs(cs.Voters), hexIDs(cs.VotersOutgoing)), n.closeWAL())
	}
	hs, _, err := n.ms.InitialState()
	if err != nil {
		return errors.Join(err, n.closeWAL())
	}
	last, err := n.ms.LastIndex()
	if err != nil {
		return errors.Join(err, n.closeWAL())
	}
	var ents []raftpb.Entry
	var removed []uint64
	for _, id := range append(append([]uint64(nil), cs.Voters...), cs.Learners...) {
		if id == n.id {
			continue
		}
		data, err := (&raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}).Marshal()
		if err != nil {
			return errors.Join(err, n.closeWAL())
		}
		ents = append(ents, raftpb.Entry{Type: raftpb.EntryConfChange, Term: hs.Term, Index: last + uint64(len(ents)) + 1, Data: data})
		removed = append(removed, id)
	}
	hs.Commit = last + uint64(len(ents))
	if err := n.wal.Save(hs, ents); err != nil {
		return errors.Join(err, n.closeWAL())
	}
	if err := n.wal.Sync(); err != nil {
		return errors.Join(err, n.closeWAL())
	}
	n.log.Warn("consensus: --force-new-cluster: this member is now the only one of its cluster; remove the flag before the next restart, or members added meanwhile are removed again",
		"kept_through", last, "removed", hexIDs(removed))
	return n.closeWAL()
}

func (n *Replica[R]) closeWAL() error {
	if n.wal == nil {
		return nil
	}
	err := n.wal.Close()
	n.wal = nil
	return err
}
