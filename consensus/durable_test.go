package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-kv/strata/consensus/snap"
	"github.com/strata-kv/strata/consensus/wal"
)

// durableSM is a counterSM with a "disk": Sync copies the state there, and
// reopen builds a new state machine from what the disk holds, as a disk
// backend reopens at its last sync after a crash.
type durableSM struct {
	*counterSM
	disk *durableDisk
}

type durableDisk struct {
	mu    sync.Mutex
	image []byte // counterSM image as of the last Sync
	index uint64 // its applied index
	syncs int
}

func (s *durableSM) Durable() bool { return true }

func (s *durableSM) Sync() error {
	var buf bytes.Buffer
	index, err := s.counterSM.Snapshot(&buf)
	if err != nil {
		return err
	}
	s.disk.mu.Lock()
	defer s.disk.mu.Unlock()
	s.disk.image, s.disk.index = buf.Bytes(), index
	s.disk.syncs++
	return nil
}

// reopen returns a state machine holding what the disk holds. Its Restore
// counter stays 0: a restored image would show in restored.
func (d *durableDisk) reopen(t *testing.T) *durableSM {
	t.Helper()
	sm := newCounterSM()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.image != nil {
		if err := sm.Restore(bytes.NewReader(d.image)); err != nil {
			t.Fatal(err)
		}
		sm.restored = 0
	}
	return &durableSM{counterSM: sm, disk: d}
}

func (d *durableDisk) synced() (uint64, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.index, d.syncs
}

func waitSnapshot(t *testing.T, n *Replica[uint64], index uint64) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	st := n.Status()
	for st.SnapshotIndex < index && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		st = n.Status()
	}
	if st.SnapshotIndex < index {
		t.Fatalf("no snapshot at or after %d: %+v", index, st)
	}
	return st
}

func snapFiles(t *testing.T, dir string) []*snap.File {
	t.Helper()
	ss, err := snap.New(filepath.Join(dir, "snap"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
	var out []*snap.File
	for range names {
		f, err := ss.LoadFunc(func(f *snap.File) bool {
			for _, o := range out {
				if o.Path == f.Path {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

var smallSnaps = func(c *Config) {
	c.SnapshotCount = 50
	c.SnapshotCatchUpEntries = 10
	c.SnapshotSpacing = -1
	c.walSegmentSize = 8 << 10
}

// TestDurableSnapshotsHaveNoImage: with a DurableStateMachine, snapshots
// are metadata-only, each at an index the state machine had synced before
// it was written; the WAL is released behind them; a restart restores no
// image and replays only the log after the state machine's applied index.
func TestDurableSnapshotsHaveNoImage(t *testing.T) {
	dir := t.TempDir()
	disk := &durableDisk{}
	sm := disk.reopen(t)
	n := openReplica(t, dir, sm, smallSnaps)
	const total = 400
	for i := range total {
		propose(t, n, fmt.Sprintf("k%d", i%5))
	}
	st := waitSnapshot(t, n, 350)
	syncedIndex, _ := disk.synced()
	// What a power loss now would leave: the disk as of its last sync.
	disk.mu.Lock()
	lost := durableDisk{image: disk.image, index: disk.index}
	disk.mu.Unlock()
	if st.SnapshotIndex > syncedIndex {
		t.Fatalf("snapshot %d is beyond the last synced index %d", st.SnapshotIndex, syncedIndex)
	}
	files := snapFiles(t, dir)
	if len(files) != keepSnapshots {
		t.Fatalf("%d snapshot files, want %d", len(files), keepSnapshots)
	}
	for _, f := range files {
		if f.HasImage() {
			t.Fatalf("snapshot %s has an image", f.Path)
		}
		if fi, err := os.Stat(f.Path); err != nil || fi.Size() > 200 {
			t.Fatalf("metadata-only snapshot %s: size %v (%v)", f.Path, fi.Size(), err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) == 0 || strings.HasPrefix(filepath.Base(segs[0]), "0000000000000000") {
		t.Fatalf("old wal segments not released: %v", segs)
	}
	if err := n.Stop(); err != nil { // syncs
		t.Fatal(err)
	}
	applied, cmds, counts := sm.state()

	// Power loss: the disk is back at the sync taken for the newest
	// snapshot (or a later one), and the log replays the rest.
	sm2 := lost.reopen(t)
	if sm2.AppliedIndex() < st.SnapshotIndex {
		t.Fatalf("disk at %d, behind snapshot %d", sm2.AppliedIndex(), st.SnapshotIndex)
	}
	n = openReplica(t, dir, sm2, smallSnaps)
	defer n.Stop()
	applied2, cmds2, counts2 := sm2.state()
	if sm2.restored != 0 {
		t.Fatalf("restart restored an image at %d", sm2.restored)
	}
	if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
		t.Fatalf("after restart applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
	}
	if got := propose(t, n, "x"); got != applied+2 {
		t.Fatalf("index = %d, want %d", got, applied+2)
	}
}

// TestDurableBehindSnapshotRebuilds: a durable state machine that comes
// back behind the newest (metadata-only) snapshot is rebuilt from the
// whole log while it still starts at index 1, and refused once it does not.
func TestDurableBehindSnapshotRebuilds(t *testing.T) {
	for _, released := range []bool{false, true} {
		t.Run(fmt.Sprintf("released=%v", released), func(t *testing.T) {
			dir := t.TempDir()
			disk := &durableDisk{}
			sm := disk.reopen(t)
			mod := func(c *Config) {
				c.SnapshotCount = 50
				c.SnapshotSpacing = -1
				if released {
					c.walSegmentSize = 8 << 10
				}
			}
			n := openReplica(t, dir, sm, mod)
			for i := range 200 {
				propose(t, n, fmt.Sprintf("k%d", i%3))
			}
			waitSnapshot(t, n, 150)
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
			applied, cmds, counts := sm.state()
			// The disk lost everything: an empty state machine.
			empty := &durableSM{counterSM: newCounterSM(), disk: &durableDisk{}}
			n2, err := Open(Config{ID: 1, DataDir: dir, Logger: testLogger(t), SnapshotCount: 50, SnapshotSpacing: -1}, empty)
			if released {
				if err == nil || !errors.Is(err, wal.ErrGap) || !strings.Contains(err.Error(), "no image") {
					if n2 != nil {
						n2.Stop()
					}
					t.Fatalf("Open behind a snapshot without image or log: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer n2.Stop()
			applied2, cmds2, counts2 := empty.state()
			if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
				t.Fatalf("rebuilt applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
			}
		})
	}
}

// TestDurableBehindSnapshotUsesOlderImage: a data dir whose older
// snapshots carry images (taken before its state machine was durable, as
// by an older release) and whose newer ones do not: a durable state
// machine that comes back empty is rebuilt from the newest image and the
// log kept behind it, though the log no longer starts at index 1.
func TestDurableBehindSnapshotUsesOlderImage(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *Config) {
		c.SnapshotCount = 50
		c.SnapshotSpacing = -1
		c.walSegmentSize = 4 << 10
	}
	plain := newCounterSM()
	n := openReplica(t, dir, plain, mod)
	for i := range 120 {
		propose(t, n, fmt.Sprintf("k%d", i%3))
	}
	waitSnapshot(t, n, 100)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	disk := &durableDisk{}
	sm := &durableSM{counterSM: plain, disk: disk}
	n = openReplica(t, dir, sm, mod)
	// Where the first metadata-only snapshot falls depends on how the
	// applier merged batches: write until one is at or past 160.
	for i := 0; n.Status().SnapshotIndex < 160; i++ {
		if i == 400 {
			t.Fatalf("no snapshot at or after 160 after %d writes: %+v", i, n.Status())
		}
		propose(t, n, fmt.Sprintf("k%d", i%3))
		if i >= 80 {
			time.Sleep(time.Millisecond) // let the snapshot goroutine finish
		}
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	files := snapFiles(t, dir)
	if len(files) != keepSnapshots || files[0].HasImage() || !files[len(files)-1].HasImage() {
		t.Fatalf("want %d snapshots, the newest metadata-only, the oldest with an image", keepSnapshots)
	}
	if first, err := wal.FirstIndex(filepath.Join(dir, "wal")); err != nil || first <= 1 {
		t.Fatalf("wal first index %d (%v): the log must be released", first, err)
	}
	applied, cmds, counts := sm.state()
	empty := &durableSM{counterSM: newCounterSM(), disk: &durableDisk{}}
	n = openReplica(t, dir, empty, mod)
	defer n.Stop()
	applied2, cmds2, counts2 := empty.state()
	var newestImage uint64
	for _, f := range files { // newest first
		if f.HasImage() && newestImage == 0 {
			newestImage = f.Metadata.Index
		}
	}
	if empty.restored != newestImage {
		t.Fatalf("restored image %d, want the newest image snapshot's %d", empty.restored, newestImage)
	}
	if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
		t.Fatalf("rebuilt applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
	}
}
