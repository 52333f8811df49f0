package consensus

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRetention: MaxSnapshots bounds the snapshot files (negative keeps
// all, and then the whole WAL), MaxWALSegments releases old WAL segments
// beyond it but never past the newest snapshot, and a node restarts from
// what is left with every command.
func TestRetention(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		maxSnaps, maxSegs    int
		wantSnaps, wantSegsL int // wantSnaps -1: every snapshot taken; wantSegsL: at most this many segments (0: all)
	}{
		{"keep everything", -1, 0, -1, 0},
		{"two snapshots", 2, 0, 2, 0},
		{"all snapshots, two segments", -1, 2, -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := func(c *Config) {
				c.SnapshotCount = 50
				c.SnapshotCatchUpEntries = 10
				c.SnapshotSpacing = -1
				c.walSegmentSize = 8 << 10
				c.MaxSnapshots, c.MaxWALSegments = tc.maxSnaps, tc.maxSegs
			}
			sm := newCounterSM()
			n := openReplica(t, dir, sm, mod)
			const total = 1500
			for i := 0; i < total; i++ {
				propose(t, n, fmt.Sprintf("k%d", i%7))
			}
			for deadline := time.Now().Add(10 * time.Second); n.Status().SnapshotIndex < total-50 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
			st := n.Status()
			snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
			segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
			want := tc.wantSnaps
			if want < 0 {
				want = int(st.Snapshots)
			}
			if len(snaps) != want {
				t.Errorf("%d snapshot files, want %d (%d taken)", len(snaps), want, st.Snapshots)
			}
			first := filepath.Base(segs[0])
			switch {
			case tc.wantSegsL == 0 && tc.maxSnaps < 0 && first[:16] != "0000000000000000":
				t.Errorf("with every snapshot kept the WAL must start at segment 0, starts at %s", first)
			case tc.wantSegsL > 0 && len(segs) > tc.wantSegsL:
				t.Errorf("%d WAL segments, want at most %d", len(segs), tc.wantSegsL)
			}
			t.Logf("%d snapshots taken, %d files kept; %d WAL segments kept", st.Snapshots, len(snaps), len(segs))
			applied, cmds, counts := sm.state()
			sm2 := newCounterSM()
			n = openReplica(t, dir, sm2, mod)
			defer n.Stop()
			applied2, cmds2, counts2 := sm2.state()
			if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
				t.Fatalf("after restart applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
			}
		})
	}
}
