package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus/wal"
)

// counterSM counts commands by content. Apply returns the entry index for
// each command, 0 for raft-internal entries.
type counterSM struct {
	mu       sync.Mutex
	applied  uint64
	counts   map[string]int
	cmds     int
	nilData  int    // raft-internal entries seen
	restored uint64 // index of the last Restore
	block    chan struct{}
	blocking chan struct{} // closed when Apply starts blocking
}

func newCounterSM() *counterSM { return &counterSM{counts: map[string]int{}} }

func (s *counterSM) Apply(ents []Entry) []uint64 {
	res := make([]uint64, len(ents))
	for i, e := range ents {
		if string(e.Data) == "block" && s.block != nil {
			close(s.blocking)
			<-s.block
		}
		s.mu.Lock()
		if e.Index <= s.applied {
			s.mu.Unlock()
			continue
		}
		s.applied = e.Index
		if e.Data == nil {
			s.nilData++
		} else {
			s.counts[string(e.Data)]++
			s.cmds++
			res[i] = e.Index
		}
		s.mu.Unlock()
	}
	return res
}

func (s *counterSM) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

type image struct {
	Applied uint64
	Counts  map[string]int
	Cmds    int
}

func (s *counterSM) Snapshot(w io.Writer) (uint64, error) {
	s.mu.Lock()
	img := image{Applied: s.applied, Counts: map[string]int{}, Cmds: s.cmds}
	for k, v := range s.counts {
		img.Counts[k] = v
	}
	s.mu.Unlock()
	return img.Applied, json.NewEncoder(w).Encode(img)
}

func (s *counterSM) Restore(r io.Reader) error {
	var img image
	if err := json.NewDecoder(r).Decode(&img); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied, s.counts, s.cmds, s.restored = img.Applied, img.Counts, img.Cmds, img.Applied
	return nil
}

func (s *counterSM) Sync() error { return nil }

func (s *counterSM) state() (uint64, int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for k, v := range s.counts {
		c[k] = v
	}
	return s.applied, s.cmds, c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openReplica(t testing.TB, dir string, sm StateMachine[uint64], mod ...func(*Config)) *Replica[uint64] {
	t.Helper()
	cfg := Config{ID: 1, DataDir: dir, Logger: testLogger(t)}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := Open(cfg, sm)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return n
}

func propose(t testing.TB, n *Replica[uint64], cmd string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := n.Propose(ctx, []byte(cmd))
	if err != nil {
		t.Fatalf("Propose(%q): %v", cmd, err)
	}
	if idx == 0 {
		t.Fatalf("Propose(%q) result 0, want the entry's index", cmd)
	}
	return idx
}

func TestProposeReturnsResult(t *testing.T) {
	sm := newCounterSM()
	n := openReplica(t, t.TempDir(), sm)
	defer n.Stop()

	// Bootstrap's conf change entries are committed by fiat in the Ready
	// that persists them; after that nothing may commit before it is durable.
	cbd := n.stats.commitBeforeDurable.Load()
	st := n.Status()
	// Bootstrap conf change (1) + the leader's empty entry (2), term 2.
	if !n.IsLeader() || st.Lead != 1 || st.Term != 2 || st.Applied != 2 || st.RaftState != "StateLeader" {
		t.Fatalf("after Open: %+v", st)
	}
	if _, _, _ = sm.state(); sm.nilData != 2 {
		t.Fatalf("raft-internal entries applied = %d, want 2", sm.nilData)
	}
	for i := uint64(3); i < 13; i++ {
		before := n.Status().Fsyncs
		if got := propose(t, n, "a"); got != i {
			t.Fatalf("result = %d, want index %d", got, i)
		}
		// One proposal costs exactly one fdatasync (entry) on a single voter.
		if d := n.Status().Fsyncs - before; d != 1 {
			t.Fatalf("fsyncs for one proposal = %d, want 1", d)
		}
	}
	applied, cmds, counts := sm.state()
	if applied != 12 || cmds != 10 || counts["a"] != 10 || len(counts) != 1 {
		t.Fatalf("sm applied=%d cmds=%d counts=%v", applied, cmds, counts)
	}
	st = n.Status()
	if st.ProposalsCommitted != 10 || st.ProposalsApplied != 10 || st.ProposalsFailed != 0 || st.ProposalsPending != 0 || st.Commit != 12 {
		t.Fatalf("status %+v", st)
	}
	// raft v3.6, single voter: entries commit only after they are persisted.
	if c := n.stats.commitBeforeDurable.Load() - cbd; c != 0 {
		t.Fatalf("committed before durable: %d", c)
	}
}

func TestConcurrentProposalsAreBatched(t *testing.T) {
	sm := newCounterSM()
	n := openReplica(t, t.TempDir(), sm)
	defer n.Stop()
	const workers, each = 16, 50
	before := n.Status().Fsyncs
	cbd := n.stats.commitBeforeDurable.Load()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				idx := propose(t, n, fmt.Sprintf("w%d", w))
				mu.Lock()
				seen[idx] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fsyncs := n.Status().Fsyncs - before
	if len(seen) != workers*each {
		t.Fatalf("distinct result indexes = %d, want %d", len(seen), workers*each)
	}
	if fsyncs >= workers*each {
		t.Fatalf("fsyncs = %d for %d proposals: not group-committed", fsyncs, workers*each)
	}
	t.Logf("%d proposals, %d fsyncs (%.1f proposals/fsync)", workers*each, fsyncs, float64(workers*each)/float64(fsyncs))
	_, cmds, counts := sm.state()
	if cmds != workers*each || counts["w7"] != each {
		t.Fatalf("cmds = %d, counts = %v", cmds, counts)
	}
	if c := n.stats.commitBeforeDurable.Load() - cbd; c != 0 {
		t.Fatalf("committed before durable: %d", c)
	}
}

func TestRestartReplays(t *testing.T) {
	dir := t.TempDir()
	sm := newCounterSM()
	n := openReplica(t, dir, sm)
	for i := 0; i < 20; i++ {
		propose(t, n, fmt.Sprintf("k%d", i%3))
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	applied, cmds, counts := sm.state() // applied = 22

	sm2 := newCounterSM()
	n = openReplica(t, dir, sm2)
	defer n.Stop()
	applied2, cmds2, counts2 := sm2.state()
	// Replayed to the same state, plus the new term's empty entry.
	if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
		t.Fatalf("after restart applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
	}
	if st := n.Status(); !n.IsLeader() || st.Term != 3 {
		t.Fatalf("status after restart %+v", st)
	}
	if got := propose(t, n, "k0"); got != applied+2 {
		t.Fatalf("index after restart = %d, want %d", got, applied+2)
	}
	// A restart with a state machine that kept its state replays nothing
	// twice.
	n.Stop()
	n = openReplica(t, dir, sm2)
	defer n.Stop()
	if _, c, m := sm2.state(); c != cmds+1 || m["k0"] != counts["k0"]+1 {
		t.Fatalf("durable sm after restart: cmds=%d counts=%v", c, m)
	}
}

func TestSnapshotCompactionRestart(t *testing.T) {
	dir := t.TempDir()
	sm := newCounterSM()
	small := func(c *Config) {
		c.SnapshotCount = 50
		c.SnapshotCatchUpEntries = 10
		c.SnapshotSpacing = -1
		c.walSegmentSize = 8 << 10
	}
	n := openReplica(t, dir, sm, small)
	const total = 400
	for i := 0; i < total; i++ {
		propose(t, n, fmt.Sprintf("k%d", i%5))
	}
	// Snapshots finish asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for n.Status().SnapshotIndex < 350 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := n.Status()
	if st.Snapshots < 6 || st.SnapshotIndex < 350 || st.SnapshotFailures != 0 {
		t.Fatalf("snapshots: %+v", st)
	}
	first, err := n.ms.FirstIndex()
	if err != nil || first != st.SnapshotIndex-10+1 {
		t.Fatalf("raft storage first index = %d (%v), want %d", first, err, st.SnapshotIndex-10+1)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	st = n.Status() // a snapshot in flight at Stop is finished by Stop
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
	if len(snaps) != keepSnapshots {
		t.Fatalf("snapshot files = %d, want %d", len(snaps), keepSnapshots)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	sort.Strings(segs)
	if len(segs) == 0 || filepath.Base(segs[0])[:16] == "0000000000000000" {
		t.Fatalf("old wal segments not released: %v", segs)
	}
	applied, cmds, counts := sm.state()

	sm2 := newCounterSM()
	n = openReplica(t, dir, sm2, small)
	defer n.Stop()
	applied2, cmds2, counts2 := sm2.state()
	if sm2.restored < 350 || sm2.restored != st.SnapshotIndex {
		t.Fatalf("restored from snapshot %d, want %d", sm2.restored, st.SnapshotIndex)
	}
	if applied2 != applied+1 || cmds2 != cmds || fmt.Sprint(counts2) != fmt.Sprint(counts) {
		t.Fatalf("after restart applied=%d cmds=%d %v, want %d %d %v", applied2, cmds2, counts2, applied+1, cmds, counts)
	}
	if got := propose(t, n, "x"); got != applied+2 {
		t.Fatalf("index = %d, want %d", got, applied+2)
	}
}

// appendUnacked writes an entry that was persisted but never acknowledged,
// as if the process died right after the write.
func appendUnacked(t *testing.T, dir string, index, term uint64, cmd string) {
	t.Helper()
	w, _, err := wal.Open(filepath.Join(dir, "wal"), 0, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := raftpb.Entry{Term: term, Index: index, Data: encodeEnvelope(1, 99, []byte(cmd))}
	if err := w.Save(raftpb.HardState{}, []raftpb.Entry{e}); err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func lastSegment(t *testing.T, dir string) string {
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	sort.Strings(segs)
	return segs[len(segs)-1]
}

func TestTornLastRecord(t *testing.T) {
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			dir := t.TempDir()
			sm := newCounterSM()
			n := openReplica(t, dir, sm)
			for i := 0; i < 10; i++ {
				propose(t, n, "a")
			}
			n.Stop() // applied 12, term 2
			appendUnacked(t, dir, 13, 2, "unacked")
			if torn {
				path := lastSegment(t, dir)
				b, _ := os.ReadFile(path)
				end := len(b)
				for end > 0 && b[end-1] == 0 {
					end--
				}
				if err := os.Truncate(path, int64(end-3)); err != nil {
					t.Fatal(err)
				}
			}
			sm2 := newCounterSM()
			n = openReplica(t, dir, sm2)
			defer n.Stop()
			_, cmds, counts := sm2.state()
			// Intact, the entry is in the leader's log and commits in the
			// new term; torn, exactly that entry is gone.
			want := 1
			if torn {
				want = 0
			}
			if cmds != 10+want || counts["a"] != 10 || counts["unacked"] != want {
				t.Fatalf("cmds=%d counts=%v", cmds, counts)
			}
			// Entry 13 is the unacked one or, torn, the new term's empty entry.
			if got := propose(t, n, "b"); got != 14+uint64(want) {
				t.Fatalf("next index = %d, want %d", got, 14+want)
			}
		})
	}
}

func TestReadIndex(t *testing.T) {
	sm := newCounterSM()
	n := openReplica(t, t.TempDir(), sm)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					propose(t, n, "w")
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		commit := n.Status().Commit
		if err := n.ReadIndex(ctx); err != nil {
			t.Fatalf("ReadIndex: %v", err)
		}
		if applied := sm.AppliedIndex(); applied < commit {
			t.Fatalf("ReadIndex returned with applied %d < commit %d at call", applied, commit)
		}
	}
	close(stop)
	wg.Wait()
	// Concurrent reads share one raft read and all return.
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		go func() { errs <- n.ReadIndex(ctx) }()
	}
	for i := 0; i < 32; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopFailsPending(t *testing.T) {
	sm := newCounterSM()
	sm.block, sm.blocking = make(chan struct{}), make(chan struct{})
	n := openReplica(t, t.TempDir(), sm)

	type res struct {
		v   any
		err error
	}
	blocked := make(chan res, 1)
	go func() {
		v, err := n.Propose(context.Background(), []byte("block"))
		blocked <- res{v, err}
	}()
	<-sm.blocking // the run loop is inside Apply
	queued := make(chan res, 5)
	for i := 0; i < 5; i++ {
		go func() {
			v, err := n.Propose(context.Background(), []byte("queued"))
			queued <- res{v, err}
		}()
	}
	for n.Status().ProposalsPending != 6 {
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop() }()
	time.Sleep(10 * time.Millisecond) // let Stop signal the blocked loop
	close(sm.block)

	if r := <-blocked; r.err != nil || r.v != uint64(3) {
		t.Fatalf("blocked proposal: %v %v, want 3 <nil>", r.v, r.err)
	}
	// Queued proposals either failed before reaching the log, or were
	// persisted and committed while Apply was blocked: those are applied
	// and answered at Stop, each with its own distinct result.
	seen := map[any]bool{}
	for i := 0; i < 5; i++ {
		r := <-queued
		switch {
		case errors.Is(r.err, ErrStopped) && r.v == nil:
		case r.err == nil && !seen[r.v] && r.v.(uint64) >= 4 && r.v.(uint64) <= 8:
			seen[r.v] = true
		default:
			t.Fatalf("queued proposal: %v %v, want ErrStopped or a distinct result in 4..8", r.v, r.err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := n.Propose(context.Background(), []byte("late")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after Stop: %v", err)
	}
	if err := n.ReadIndex(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("ReadIndex after Stop: %v", err)
	}
	failed := uint64(5-len(seen)) + 1 // the queued ones that failed, and "late"
	if st := n.Status(); st.ProposalsPending != 0 || st.ProposalsFailed != failed {
		t.Fatalf("status after stop: %+v, want %d failed", st, failed)
	}
	if _, cmds, _ := sm.state(); cmds != 1+len(seen) {
		t.Fatalf("applied commands = %d, want %d", cmds, 1+len(seen))
	}
}

func TestProposeContextCanceled(t *testing.T) {
	n := openReplica(t, t.TempDir(), newCounterSM())
	defer n.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Propose(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Propose = %v, want context.Canceled", err)
	}
	if st := n.Status(); st.ProposalsPending != 0 {
		t.Fatalf("pending = %d", st.ProposalsPending)
	}
}

func TestProposeWithoutLeaderIsDropped(t *testing.T) {
	// Three voters, no transport: this member never learns of a leader.
	n := openReplica(t, t.TempDir(), newCounterSM(), func(c *Config) {
		c.Peers = []Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	})
	defer n.Stop()
	if n.IsLeader() || n.Status().Lead != 0 {
		t.Fatalf("unexpected leader: %+v", n.Status())
	}
	if _, err := n.Propose(context.Background(), []byte("x")); !errors.Is(err, raft.ErrProposalDropped) {
		t.Fatalf("Propose = %v, want ErrProposalDropped", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.ReadIndex(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadIndex = %v, want DeadlineExceeded", err)
	}
	if st := n.Status(); st.ProposalsFailed != 1 || st.ProposalsPending != 0 {
		t.Fatalf("status %+v", st)
	}
}

// TestSnapshotSpacing: after a snapshot, the next waits SnapshotSpacing
// times its duration, however many entries arrive meanwhile.
func TestSnapshotSpacing(t *testing.T) {
	sm := newCounterSM()
	n := openReplica(t, t.TempDir(), sm, func(c *Config) {
		c.SnapshotCount = 10
		c.SnapshotSpacing = 1_000_000 // effectively: one snapshot only
	})
	defer n.Stop()
	for i := 0; i < 200; i++ {
		propose(t, n, "k")
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Status().Snapshots < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 200; i++ {
		propose(t, n, "k")
	}
	if st := n.Status(); st.Snapshots != 1 {
		t.Fatalf("snapshots = %d with 400 entries and count 10, want 1 (spacing)", st.Snapshots)
	}
}
