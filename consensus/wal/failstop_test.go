//go:build failpoints

package wal

import (
	"errors"
	"os"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/internal/failpoint"
)

// TestFailedFsyncIsNeverRetried: after an fdatasync fails the WAL refuses
// every later write and Close does not fsync again (fsyncgate: a retry
// could succeed on pages the kernel already dropped); a reopen replays
// what was durable before.
func TestFailedFsyncIsNeverRetried(t *testing.T) {
	os.Setenv(failpoint.EnvVar, "wal-fsync=EIO@3") // read at the first Inject
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, 0, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 1}, ents(1, 1, 1)) // fsync 1
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 2}, ents(1, 2, 2)) // fsync 2
	err := w.Save(raftpb.HardState{Term: 1, Commit: 3}, ents(1, 3, 3))  // fsync 3 fails
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Save with a failing fsync: %v, want ErrFailed", err)
	}
	fsyncs := w.Stats().Fsyncs
	for name, f := range map[string]func() error{
		"Save":         func() error { return w.Save(raftpb.HardState{Term: 1, Commit: 3}, ents(1, 3, 3)) },
		"SaveSnapshot": func() error { return w.SaveSnapshot(Snapshot{Index: 2, Term: 1}) },
		"Sync":         w.Sync,
	} {
		if err := f(); !errors.Is(err, ErrFailed) {
			t.Errorf("%s after a failed fsync: %v, want ErrFailed", name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after a failed fsync: %v", err)
	}
	if got := w.Stats().Fsyncs; got != fsyncs {
		t.Fatalf("%d fsyncs after the failed one, want none", got-fsyncs)
	}
	os.Unsetenv(failpoint.EnvVar)
	_, rec := mustOpen(t, dir, 0, Options{})
	if n := len(rec.Entries); n < 2 || rec.Entries[1].Index != 2 {
		t.Fatalf("reopened with %d entries, want the 2 synced ones first", n)
	}
}
