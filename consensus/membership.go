package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// MembershipStateMachine is a StateMachine that keeps details of the
// members (names, URLs) in its replicated state, next to raft's own
// configuration, which holds only member IDs. The Replica hands it every
// committed membership change before raft applies it, so the two never
// disagree.
type MembershipStateMachine[R any] interface {
	StateMachine[R]
	// ApplyConfChange decides and records the committed membership change
	// cc at index (cc.Context as proposed). It is called from the run
	// loop in log order, with every earlier entry applied and no Apply in
	// progress. It returns nil to accept the change (raft then applies it)
	// or an error to refuse it (raft's configuration stays as it was; the
	// proposer gets the error). The decision must be deterministic and
	// must be the same whenever the entry is applied again: after a
	// restart an entry at or below AppliedIndex is handed over again and
	// must get the decision it got the first time (the state machine
	// records refusals). A storage failure must not be returned as a
	// refusal: the state machine cannot go on (panic, as Apply does).
	ApplyConfChange(index uint64, cc raftpb.ConfChange) error
}

// ErrRemoveLastMember refuses a change that would leave raft without voters.
var ErrRemoveLastMember = errors.New("consensus: cannot remove the last member")

// ProposeConfChange replicates a membership change (cc.Type and NodeID;
// cc.Context carries what the state machine needs, e.g. the member's
// name and URLs; cc.ID is set here) and returns once it is applied: nil
// if the state machine and raft accepted it, the state machine's refusal,
// or as Propose: ctx.Err(), ErrTimeout, ErrStopped or a wrapped
// raft.ErrProposalDropped. Raft refuses a conf change while an earlier
// one is not yet applied by the leader (it logs it and the proposal ends
// with ErrTimeout): callers should make one change at a time.
func (n *Replica[R]) ProposeConfChange(ctx context.Context, cc raftpb.ConfChange) error {
	id := n.reqID.Add(1)
	cc.ID = id
	cc.Context = encodeEnvelope(n.id, id, cc.Context)
	p := &proposal[R]{id: id, cc: &cc, resc: make(chan result[R], 1)}
	_, err := n.submit(ctx, p)
	return err
}

// Removed is closed once this member has applied its own removal from the
// cluster: it must stop, and never rejoin under the same ID.
func (n *Replica[R]) Removed() <-chan struct{} { return n.removedc }

// applyCommitted applies committed entries in log order: runs of commands
// go to the state machine (through the applier once the loop runs),
// membership changes are applied on the loop once everything before them
// is applied (applyConfEntry).
func (n *Replica[R]) applyCommitted(ents []raftpb.Entry) error {
	start := 0
	for i := range ents {
		if t := ents[i].Type; t != raftpb.EntryConfChange && t != raftpb.EntryConfChangeV2 {
			continue
		}
		if i > start {
			if err := n.applyRun(ents[start:i]); err != nil {
				return err
			}
		}
		if err := n.applyConfEntry(&ents[i]); err != nil {
			return err
		}
		start = i + 1
	}
	if start < len(ents) {
		return n.applyRun(ents[start:])
	}
	return nil
}

func (n *Replica[R]) applyRun(ents []raftpb.Entry) error {
	if n.async {
		n.applyc <- applyJob{ents: ents}
		return nil
	}
	// Inline (replay in Open): a failure stops the start, naming why.
	if err := n.apply(ents); err != nil {
		return fmt.Errorf("apply committed entries %d-%d: %w", ents[0].Index, ents[len(ents)-1].Index, err)
	}
	return nil
}

// applyConfEntry applies one committed membership change: it waits for
// the applier to go idle (so the state machine has applied everything
// before it), lets the state machine decide and record it, applies it to
// raft if accepted, and answers its proposer. Conf changes are rare: the
// wait costs nothing that matters.
func (n *Replica[R]) applyConfEntry(e *raftpb.Entry) error {
	var cc raftpb.ConfChange
	switch e.Type {
	case raftpb.EntryConfChange:
		if err := cc.Unmarshal(e.Data); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.Index, err)
		}
	default:
		var v2 raftpb.ConfChangeV2
		if err := v2.Unmarshal(e.Data); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.Index, err)
		}
		v1, ok := v2.AsV1()
		if !ok {
			// Never proposed by this package: raft alone applies it.
			n.quiesce()
			n.applyConfChange(e.Index, v2)
			n.stats.applied.Store(e.Index)
			return nil
		}
		cc = v1
	}
	member, id, ctx, local := decodeEnvelope(cc.Context)
	if local {
		cc.Context = ctx
	}
	n.quiesce()
	var refused error
	if cs := n.currentConf(); cc.Type == raftpb.ConfChangeRemoveNode && len(cs.Voters) == 1 && cs.Voters[0] == cc.NodeID {
		refused = ErrRemoveLastMember
	} else if msm, ok := n.sm.(MembershipStateMachine[R]); ok {
		refused = msm.ApplyConfChange(e.Index, cc)
	} else {
		// A plain state machine sees the entry as raft-internal (nil data).
		n.apply([]raftpb.Entry{{Index: e.Index, Term: e.Term}})
	}
	if refused == nil {
		n.applyConfChange(e.Index, cc)
	} else {
		n.log.Warn("consensus: membership change refused", "index", e.Index, "type", cc.Type, "member", fmt.Sprintf("%x", cc.NodeID), "err", refused)
	}
	n.stats.applied.Store(e.Index)
	if local && member == n.id {
		n.answer([]ack[R]{{id: id, res: result[R]{err: refused}}})
	}
	if refused == nil && cc.Type == raftpb.ConfChangeRemoveNode && cc.NodeID == n.id {
		n.log.Warn("consensus: this member was removed from the cluster", "index", e.Index)
		n.handOverAfterRemoval()
		n.removedOnce.Do(func() { close(n.removedc) })
	}
	return nil
}

// handOverAfterRemoval is called when a leader applies its own removal.
// Raft lets a removed leader go on leading the new configuration (it
// counts no more in quorums) until it stops; this one hands leadership
// at once to the remaining voter whose log matches furthest (raft's
// leader transfer: that voter campaigns without waiting for an election
// timeout), so the cluster is without a leader only for one round trip.
// If the transfer cannot finish, the others elect a leader an election
// timeout after this member stops.
func (n *Replica[R]) handOverAfterRemoval() {
	st := n.rn.Status()
	if st.RaftState != raft.StateLeader {
		return
	}
	var to, match uint64
	for id, pr := range st.Progress {
		if id != n.id && !pr.IsLearner && (to == 0 || pr.Match > match) {
			to, match = id, pr.Match
		}
	}
	if to != 0 {
		n.log.Info("consensus: removed leader hands leadership over", "to", fmt.Sprintf("%x", to))
		n.rn.TransferLeader(to)
	}
}

// submit registers p, queues it for the run loop and waits for its result.
func (n *Replica[R]) submit(ctx context.Context, p *proposal[R]) (R, error) {
	var none R // what a failed proposal returns
	if n.cfg.ProposalTimeout > 0 {
		p.deadline = time.Now().Add(n.cfg.ProposalTimeout).UnixNano()
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.stats.proposalsFailed.Add(1)
		return none, n.stoppedErr()
	}
	n.waiters[p.id] = p
	n.mu.Unlock()

	select {
	case n.propc <- p:
	case <-ctx.Done():
		return none, n.abandon(p.id, ctx.Err())
	case <-n.done:
		// The loop failed every waiter on its way out.
	}
	select {
	case r := <-p.resc:
		if r.err != nil {
			n.stats.proposalsFailed.Add(1)
		}
		return r.val, r.err
	case <-ctx.Done():
		return none, n.abandon(p.id, ctx.Err())
	}
}
