package consensus

import (
	"context"
	"testing"
	"time"
)

// TestForceNewClusterKeepsUncommittedTail: a member of a 3-voter group
// that lost the other two holds an entry past its recorded commit index
// (the index is written lazily, so an acknowledged write can lie there).
// With ForceNewCluster it becomes the only voter, applies that entry, and
// commits new proposals alone; a later restart without the flag keeps it
// alone and replays the same state.
func TestForceNewClusterKeepsUncommittedTail(t *testing.T) {
	dir := t.TempDir()
	three := func(c *Config) { c.Peers = []Peer{{ID: 1}, {ID: 2}, {ID: 3}} }
	n := openReplica(t, dir, newCounterSM(), three)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	appendUnacked(t, dir, 4, 1, "tail") // after the 3 bootstrap conf changes

	// Without the flag: no quorum, the tail stays unapplied.
	sm := newCounterSM()
	n = openReplica(t, dir, sm, three)
	if _, _, counts := sm.state(); counts["tail"] != 0 {
		t.Fatalf("the tail was applied without a quorum: %v", counts)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	sm = newCounterSM()
	n = openReplica(t, dir, sm, three, func(c *Config) { c.ForceNewCluster = true })
	if _, _, counts := sm.state(); counts["tail"] != 1 {
		t.Fatalf("forced member did not keep its log's tail: %v", counts)
	}
	if cs := n.currentConf(); len(cs.Voters) != 1 || cs.Voters[0] != 1 {
		t.Fatalf("voters after forcing: %v", cs.Voters)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Propose(ctx, []byte("alone")); err != nil {
		t.Fatalf("propose on the forced member: %v", err)
	}
	applied, cmds, _ := sm.state()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	sm2 := newCounterSM()
	n = openReplica(t, dir, sm2, three)
	defer n.Stop()
	applied2, cmds2, counts2 := sm2.state()
	if cs := n.currentConf(); len(cs.Voters) != 1 || applied2 != applied+1 || cmds2 != cmds || counts2["tail"] != 1 || counts2["alone"] != 1 {
		t.Fatalf("restart without the flag: voters %v, applied %d cmds %d %v; want 1 voter, applied %d, cmds %d", cs.Voters, applied2, cmds2, counts2, applied+1, cmds)
	}
}
