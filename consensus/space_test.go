package consensus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
)

// fullSM is a counterSM whose storage can be made "full": TryApply then
// refuses every batch with ENOSPC, applying nothing.
type fullSM struct {
	*counterSM
	full    atomic.Bool
	refused atomic.Int64
}

func (s *fullSM) TryApply(ents []Entry) ([]uint64, error) {
	if s.full.Load() {
		s.refused.Add(1)
		return nil, fmt.Errorf("commit: %w", unix.ENOSPC)
	}
	return s.counterSM.Apply(ents), nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestApplyRetriedWhileStorageFull: a committed batch the state machine
// refuses with ENOSPC is neither acknowledged nor skipped; the member
// raises the NOSPACE alarm and refuses new proposals, retries the same
// batch, and once space returns applies it exactly once and answers it.
func TestApplyRetriedWhileStorageFull(t *testing.T) {
	dir := t.TempDir()
	sm := &fullSM{counterSM: newCounterSM()}
	n := openReplica(t, dir, sm, func(c *Config) { c.SpaceReserve = -1; c.SpaceProbeInterval = 10 * time.Millisecond })
	propose(t, n, "a")

	sm.full.Store(true)
	type answer struct {
		v   uint64
		err error
	}
	bc := make(chan answer, 1)
	go func() {
		v, err := n.Propose(context.Background(), []byte("b"))
		bc <- answer{v, err}
	}()
	waitFor(t, "the NOSPACE alarm", func() bool { return n.SpaceStalled() && sm.refused.Load() >= 3 })
	if err := n.SpaceErr(); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "apply committed entries") {
		t.Fatalf("SpaceErr = %v, want ErrNoSpace", err)
	}
	if _, err := n.Propose(context.Background(), []byte("c")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("proposal while stalled: %v, want ErrNoSpace", err)
	}
	select {
	case a := <-bc:
		t.Fatalf("b answered (%v, %v) while its batch was refused", a.v, a.err)
	default:
	}
	if _, cnt, _ := sm.state(); cnt != 1 {
		t.Fatalf("%d commands applied while full, want 1 (a)", cnt)
	}

	sm.full.Store(false)
	a := <-bc
	if a.err != nil || a.v == 0 {
		t.Fatalf("b after space returned (%d, %v), want its entry's index", a.v, a.err)
	}
	waitFor(t, "the alarm to clear", func() bool { return n.SpaceErr() == nil })
	propose(t, n, "d")
	_, _, counts := sm.state()
	if want := map[string]int{"a": 1, "b": 1, "d": 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("applied %v, want %v", counts, want)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	// The log holds the same: replayed into a fresh state machine.
	sm2 := newCounterSM()
	n = openReplica(t, dir, sm2)
	defer n.Stop()
	if _, _, counts := sm2.state(); fmt.Sprint(counts) != fmt.Sprint(map[string]int{"a": 1, "b": 1, "d": 1}) {
		t.Fatalf("replayed %v", counts)
	}
	if got := n.SpaceAlarms(); got != 0 {
		t.Fatalf("fresh member reports %d alarms", got)
	}
}

// chanTransport delivers messages between in-process members.
type chanTransport struct {
	nodes atomic.Pointer[map[uint64]*Replica[uint64]] // nil until every member is open
}

func (tr *chanTransport) Send(msgs []raftpb.Message) {
	p := tr.nodes.Load()
	if p == nil {
		return // lost, as on a network: raft retries
	}
	for _, m := range msgs {
		if n := (*p)[m.To]; n != nil {
			go n.Step(context.Background(), m)
		}
	}
}

// TestFullFollowerDoesNotStallCluster: a follower whose storage is full
// stops acknowledging and falls behind; the other two go on committing,
// and it catches up, applying every entry once, when space returns.
func TestFullFollowerDoesNotStallCluster(t *testing.T) {
	peers := []Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	tr := &chanTransport{}
	sms := map[uint64]*fullSM{}
	for id := uint64(1); id <= 3; id++ {
		sms[id] = &fullSM{counterSM: newCounterSM()}
	}
	// Open all three, then connect them.
	opened := make(chan *Replica[uint64], 3)
	for id := uint64(1); id <= 3; id++ {
		go func(id uint64) {
			n, err := Open(Config{ID: id, Peers: peers, DataDir: t.TempDir(), Logger: testLogger(t), Transport: tr,
				TickInterval: 10 * time.Millisecond, SpaceReserve: -1, SpaceProbeInterval: 10 * time.Millisecond}, sms[id])
			if err != nil {
				t.Errorf("Open %d: %v", id, err)
			}
			opened <- n
		}(id)
	}
	var nodes []*Replica[uint64]
	for i := 0; i < 3; i++ {
		n := <-opened
		if n == nil {
			t.FailNow()
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		defer n.Stop()
	}
	m := map[uint64]*Replica[uint64]{}
	for _, n := range nodes {
		m[n.id] = n
	}
	tr.nodes.Store(&m)
	var leader, full *Replica[uint64]
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		if n != leader {
			full = n
			break
		}
	}
	sms[full.id].full.Store(true)
	for i := 0; i < 30; i++ {
		propose(t, leader, fmt.Sprintf("x%02d", i))
	}
	waitFor(t, "the full member's alarm", full.SpaceStalled)
	if _, cnt, _ := sms[full.id].state(); cnt == 30 {
		t.Fatal("the full member applied everything while full")
	}
	sms[full.id].full.Store(false)
	waitFor(t, "the full member to catch up", func() bool {
		_, cnt, _ := sms[full.id].state()
		return cnt == 30 && full.SpaceErr() == nil
	})
	_, _, got := sms[full.id].state()
	_, _, want := sms[leader.id].state()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 30 {
		t.Fatalf("full member applied %v, leader %v", got, want)
	}
}
