package consensus

import (
	"errors"
	"testing"
	"time"
)

func TestExpireProposals(t *testing.T) {
	n := &Replica[uint64]{cfg: Config{ProposalTimeout: time.Second}, waiters: map[uint64]*proposal[uint64]{}}
	now := time.Now()
	late := &proposal[uint64]{id: 1, resc: make(chan result[uint64], 1), deadline: now.Add(-time.Millisecond).UnixNano()}
	onTime := &proposal[uint64]{id: 2, resc: make(chan result[uint64], 1), deadline: now.Add(time.Second).UnixNano()}
	n.waiters[1], n.waiters[2] = late, onTime
	n.expireProposals(now)
	select {
	case r := <-late.resc:
		if !errors.Is(r.err, ErrTimeout) {
			t.Fatalf("late proposal got %v", r.err)
		}
	default:
		t.Fatal("late proposal was not failed")
	}
	if len(onTime.resc) != 0 || n.waiters[2] != onTime || n.waiters[1] != nil {
		t.Fatalf("waiters after expiry: %v", n.waiters)
	}
}
