package bbolt_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/backends/backendtest"
	"github.com/strata-kv/strata/backends/bbolt"
)

// open goes through the registry, as --backend=bbolt does.
func open(tb testing.TB, dir string) backends.Backend {
	b, err := backends.Open("bbolt", backends.Options{Dir: dir})
	if err != nil {
		tb.Fatalf("open bbolt: %v", err)
	}
	return b
}

// openNoSync opens the backend as --unsafe-no-fsync does: commits are not
// fdatasync'd and the unsynced marker guards the file.
func openNoSync(tb testing.TB, dir string) backends.Backend {
	b, err := backends.Open("bbolt", backends.Options{Dir: dir, UnsafeNoFsync: true})
	if err != nil {
		tb.Fatalf("open bbolt: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, open, backendtest.Options{Persistent: true})
}

func TestConformanceNoSync(t *testing.T) {
	backendtest.Run(t, openNoSync, backendtest.Options{Persistent: true})
}

// TestDurableCommitsNeedNoMarker: by default every commit is fdatasync'd,
// so no unsynced marker is ever written, and the backend says it is the
// durable copy of its store (so raft snapshots carry no image).
func TestDurableCommitsNeedNoMarker(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	defer b.Close()
	if !backends.IsDurable(b) {
		t.Fatal("bbolt backend does not report Durable")
	}
	put(t, b, 1, "a", "1")
	if err := b.Restore(bytes.NewReader(snapshotOf(t, b))); err != nil {
		t.Fatal(err)
	}
	put(t, b, 2, "b", "2")
	if _, err := os.Stat(filepath.Join(dir, "strata.db.unsynced")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unsynced marker with durable commits: %v", err)
	}
	if !bbolt.CommitsSynced(b.(*bbolt.Backend)) {
		t.Fatal("commits after Restore are not fdatasync'd")
	}
}

func BenchmarkBbolt(b *testing.B) {
	backendtest.Bench(b, open)
}

func put(t *testing.T, b backends.Backend, index uint64, k, v string) {
	t.Helper()
	if err := b.Update(index, func(w backends.Writer) error { return w.Put([]byte(k), []byte(v)) }); err != nil {
		t.Fatalf("Update(%d): %v", index, err)
	}
}

func wantGet(t *testing.T, b backends.Backend, k, want string) {
	t.Helper()
	err := b.View(func(r backends.Reader) error {
		v, err := r.Get([]byte(k))
		if err != nil {
			return err
		}
		if string(v) != want {
			t.Errorf("Get(%q) = %q, want %q", k, v, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// crashCopy stands in for a process killed without Close or Sync: it
// copies the file and the unsynced marker, as the page cache holds them
// now, into a new directory, which is what the next process on the same
// boot finds after a SIGKILL. (The original stays open and locked.)
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	crashed := t.TempDir()
	for _, name := range []string{"strata.db", "strata.db.unsynced"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("crash copy: %v", err)
		}
		if err := os.WriteFile(filepath.Join(crashed, name), data, 0o600); err != nil {
			t.Fatalf("crash copy: %v", err)
		}
	}
	return crashed
}

// TestCrashWithoutSync: with UnsafeNoFsync, commits that were never synced,
// in a file that was never closed, are all there when the next process (same boot) opens it,
// and opening makes them durable and drops the marker.
func TestCrashWithoutSync(t *testing.T) {
	dir := t.TempDir()
	b := openNoSync(t, dir)
	defer b.Close()
	put(t, b, 1, "a", "1")
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	put(t, b, 2, "b", "2")
	put(t, b, 3, "", "empty key")
	crashed := crashCopy(t, dir)
	c := open(t, crashed)
	defer c.Close()
	if got := c.AppliedIndex(); got != 3 {
		t.Fatalf("AppliedIndex after crash = %d, want 3", got)
	}
	wantGet(t, c, "a", "1")
	wantGet(t, c, "b", "2")
	wantGet(t, c, "", "empty key")
	if _, err := os.Stat(filepath.Join(crashed, "strata.db.unsynced")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker still there after open synced the file: %v", err)
	}
}

// TestUnsafeShutdownRefused: a marker left by another boot means the page
// cache may have been lost with unsynced commits; Open must refuse.
func TestUnsafeShutdownRefused(t *testing.T) {
	dir := t.TempDir()
	b := openNoSync(t, dir)
	put(t, b, 1, "a", "1")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "strata.db.unsynced")
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("clean Close left the marker: %v", err)
	}
	if err := os.WriteFile(marker, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bbolt.Open(dir)
	if !errors.Is(err, bbolt.ErrUnsafeShutdown) {
		t.Fatalf("Open with a marker from another boot: err = %v, want ErrUnsafeShutdown", err)
	}
	if !strings.Contains(err.Error(), "rebuild") {
		t.Errorf("error does not say how to recover: %v", err)
	}
	// Removing the marker (the operator's override) opens the file again.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer b.Close()
	wantGet(t, b, "a", "1")
}

// TestMarkerLifecycle: with UnsafeNoFsync, the marker exists exactly while
// commits are unsynced.
func TestMarkerLifecycle(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "strata.db.unsynced")
	exists := func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
	b := openNoSync(t, dir)
	defer b.Close()
	if exists() {
		t.Fatal("marker after open")
	}
	put(t, b, 1, "a", "1")
	if !exists() {
		t.Fatal("no marker after an unsynced commit")
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Fatal("marker after Sync")
	}
	put(t, b, 2, "a", "2")
	if err := b.Restore(bytes.NewReader(snapshotOf(t, b))); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Fatal("marker after Restore, which leaves a synced file")
	}
}

func snapshotOf(t *testing.T, b backends.Backend) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRestoreLeavesNoTempFiles: neither a successful nor a failed Restore
// leaves a temporary file, and a stale one from a crashed Restore is
// removed at open.
func TestRestoreLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	put(t, b, 5, "k", "v")
	good := snapshotOf(t, b)
	if err := b.Restore(bytes.NewReader(good[:len(good)-1])); !errors.Is(err, backends.ErrCorruptSnapshot) {
		t.Fatalf("truncated Restore: %v", err)
	}
	if err := b.Restore(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); len(got) != 1 || got[0] != "strata.db" {
		t.Fatalf("directory after Restores holds %q, want only strata.db", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "strata.db.restore-123")
	if err := os.WriteFile(stale, []byte("half a restore"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer b.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale restore file survived open: %v", err)
	}
	wantGet(t, b, "k", "v")
}

// TestRestoreLarge restores more keys than one chunk, with the empty key,
// and checks every key and the index across a reopen.
func TestRestoreLarge(t *testing.T) {
	const n = 100_000
	var stream bytes.Buffer
	err := backends.WriteSnapshot(&stream, 1234, func(fn func(k, v []byte) error) error {
		if err := fn(nil, []byte("empty")); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			k := []byte{'k', byte(i >> 16), byte(i >> 8), byte(i)}
			if err := fn(k, bytes.Repeat(k[1:], i%40)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := open(t, dir)
	put(t, b, 1, "old", "gone")
	if err := b.Restore(&stream); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer b.Close()
	if got := b.AppliedIndex(); got != 1234 {
		t.Fatalf("AppliedIndex = %d", got)
	}
	i := -1
	err = b.View(func(r backends.Reader) error {
		return r.Ascend(nil, nil, func(k, v []byte) bool {
			if i == -1 {
				if len(k) != 0 || string(v) != "empty" {
					t.Fatalf("first pair %q=%q, want the empty key", k, v)
				}
			} else {
				want := []byte{'k', byte(i >> 16), byte(i >> 8), byte(i)}
				if !bytes.Equal(k, want) || !bytes.Equal(v, bytes.Repeat(want[1:], i%40)) {
					t.Fatalf("pair %d: %q=%q", i, k, v)
				}
			}
			i++
			return true
		})
	})
	if err != nil || i != n {
		t.Fatalf("ascended %d keys, err %v", i, err)
	}
}

// TestSecondOpenFails: bbolt's flock keeps a second opener out, with an
// error rather than a hang.
func TestSecondOpenFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the flock timeout")
	}
	dir := t.TempDir()
	b := open(t, dir)
	defer b.Close()
	if c, err := bbolt.Open(dir); err == nil {
		c.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
}

// TestKeyTooLarge: bbolt's key limit surfaces as an error, not a panic, and
// the batch rolls back.
func TestKeyTooLarge(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	err := b.Update(1, func(w backends.Writer) error {
		if err := w.Put([]byte("ok"), []byte("1")); err != nil {
			return err
		}
		return w.Put(bytes.Repeat([]byte("k"), 40<<10), []byte("v"))
	})
	if err == nil {
		t.Fatal("Put of a 40 KiB key succeeded")
	}
	if b.AppliedIndex() != 0 {
		t.Fatalf("AppliedIndex = %d after a failed Update", b.AppliedIndex())
	}
}
