package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

var (
	// ErrStopped is returned for calls on, or pending at, a stopped Replica.
	ErrStopped = errors.New("consensus: replica stopped")
	// ErrLeaderChanged fails a ReadIndex whose leader changed before it
	// was answered; retrying is safe.
	ErrLeaderChanged = errors.New("consensus: leader changed")
	// ErrTimeout fails a proposal not applied within Config.ProposalTimeout.
	// The entry may still commit later.
	ErrTimeout = errors.New("consensus: request timed out")
)

// proposal is one Propose call in flight. resc has room for the single
// answer it ever gets, so the run loop never blocks on a proposer.
type proposal[R any] struct {
	id       uint64
	data     []byte
	cc       *raftpb.ConfChange // a membership change instead of data
	resc     chan result[R]
	deadline int64 // unix ns; the run loop fails it with ErrTimeout after
}

type result[R any] struct {
	val R
	err error
}

// Propose replicates cmd and returns the state machine's result for it:
// only after the entry is fsync'd to the WAL (on a quorum) and applied.
// If ctx ends first, Propose returns ctx.Err() and the entry may still
// commit and apply. raft.ErrProposalDropped (no leader, or a leadership
// transfer) and ErrStopped are returned wrapped; retrying those is safe as
// the entry was not appended. An appended entry that a new leader later
// overwrites is not reported: ctx bounds that wait.
func (n *Replica[R]) Propose(ctx context.Context, cmd []byte) (R, error) {
	id := n.reqID.Add(1)
	p := &proposal[R]{id: id, data: encodeEnvelope(n.id, id, cmd), resc: make(chan result[R], 1)}
	return n.submit(ctx, p)
}

// expireProposals fails proposals past their deadline. Called by the run
// loop on each tick: a per-call context timer would cost every proposal
// an allocation and a timer.
func (n *Replica[R]) expireProposals(now time.Time) {
	if n.cfg.ProposalTimeout <= 0 {
		return
	}
	t := now.UnixNano()
	n.mu.Lock()
	for id, p := range n.waiters {
		if p.deadline != 0 && p.deadline < t {
			delete(n.waiters, id)
			p.resc <- result[R]{err: ErrTimeout}
		}
	}
	n.mu.Unlock()
}

// abandon forgets a proposal whose caller gave up.
func (n *Replica[R]) abandon(id uint64, err error) error {
	n.mu.Lock()
	delete(n.waiters, id)
	n.mu.Unlock()
	n.stats.proposalsFailed.Add(1)
	return err
}

// answer delivers results to local proposers. Called by the run loop.
func (n *Replica[R]) answer(acks []ack[R]) {
	if len(acks) == 0 {
		return
	}
	n.mu.Lock()
	for _, a := range acks {
		if p, ok := n.waiters[a.id]; ok {
			delete(n.waiters, a.id)
			p.resc <- a.res
		}
	}
	n.mu.Unlock()
}

type ack[R any] struct {
	id  uint64
	pos int // entry position in the applied batch
	res result[R]
}

// failAll fails every pending proposal and read and refuses new ones.
func (n *Replica[R]) failAll(err error) {
	n.mu.Lock()
	n.closed = true
	for id, p := range n.waiters {
		delete(n.waiters, id)
		p.resc <- result[R]{err: err}
	}
	n.mu.Unlock()
	for _, r := range n.readsWaiting {
		r.fail(err)
	}
	for _, rb := range n.readsIssued {
		rb.fail(err)
	}
	for _, rb := range n.readsApplying {
		rb.fail(err)
	}
	n.readsWaiting, n.readsIssued, n.readsApplying = nil, nil, nil
}

// propose hands one queued proposal to raft. Called by the run loop.
func (n *Replica[R]) propose(p *proposal[R]) {
	if n.space.hard() {
		// Stalled for want of space: raft cannot take the entry now.
		n.answer([]ack[R]{{id: p.id, res: result[R]{err: n.space.errOr()}}})
		return
	}
	var err error
	if p.cc != nil {
		err = n.rn.ProposeConfChange(*p.cc)
	} else {
		err = n.rn.Propose(p.data)
	}
	if err != nil {
		n.answer([]ack[R]{{id: p.id, res: result[R]{err: fmt.Errorf("consensus: propose: %w", err)}}})
	}
}

// readReq is one ReadIndex call; reads issued together share a readBatch.
type readReq struct{ done chan error }

func (r *readReq) fail(err error) { r.done <- err }

type readBatch struct {
	reqs  []*readReq
	index uint64 // commit index to reach, once raft has confirmed it
}

func (rb *readBatch) fail(err error) {
	for _, r := range rb.reqs {
		r.done <- err
	}
}

// ReadIndex is a linearizable read barrier: it returns nil once the local
// state machine has applied everything that was committed when ReadIndex
// was called (raft ReadIndex: the leader confirms its leadership with a
// quorum, a no-op round for a single member). Concurrent calls share one
// raft read. It fails with ErrLeaderChanged if leadership changed while
// waiting, ErrStopped on Stop, or ctx.Err(); without a leader it waits
// until ctx ends.
func (n *Replica[R]) ReadIndex(ctx context.Context) error {
	r := &readReq{done: make(chan error, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stoppedErr()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		select {
		case err := <-r.done: // answered just before the loop exited
			return err
		default:
			return n.stoppedErr()
		}
	}
}

// Step feeds a message from a peer into raft.
func (n *Replica[R]) Step(ctx context.Context, m raftpb.Message) error {
	if raft.IsLocalMsg(m.Type) {
		return fmt.Errorf("consensus: step: local message %s from the network", m.Type)
	}
	select {
	case n.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stoppedErr()
	}
}
