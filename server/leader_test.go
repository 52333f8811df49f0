package server

import "testing"

// A proposal's term-of-office context ends only when the member's view moves
// off the leader it was made under, never on a late notice of the move to
// the leader it was made under (TestClusterFailover hit that under load:
// writes made right after a failover got errLeaderFail).
func TestLeaderTracker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  []uint64 // views the poller observed first
		made    uint64   // the proposer's view of the leader
		after   []uint64 // views the poller observes afterwards
		wantEnd bool
	}{
		{"same leader", []uint64{1}, 1, []uint64{1}, false},
		{"leader lost", []uint64{1}, 1, []uint64{0}, true},
		{"leader replaced", []uint64{1}, 1, []uint64{2}, true},
		{"election only", []uint64{1, 0}, 0, []uint64{2}, false},
		{"late notice of its own leader", []uint64{1}, 2, []uint64{2}, false},
		{"its leader lost later", []uint64{1}, 2, []uint64{2, 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l leaderTracker
			for _, v := range tc.before {
				l.observe(v)
			}
			ctx := l.under(tc.made)
			for _, v := range tc.after {
				l.observe(v)
			}
			if ended := ctx.Err() != nil; ended != tc.wantEnd {
				t.Errorf("context ended = %v, want %v", ended, tc.wantEnd)
			}
		})
	}
}
