package badger_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/backends/badger"
)

func key(i int) []byte { return fmt.Appendf(nil, "/dir/%07d", i) }

// fill writes n keys at index with a 100-byte value derived from tag.
func fill(t *testing.T, b backends.Backend, index uint64, n int, tag byte) {
	t.Helper()
	val := bytes.Repeat([]byte{tag}, 100)
	err := b.Update(index, func(w backends.Writer) error {
		for i := 0; i < n; i++ {
			if err := w.Put(key(i), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fill %d keys at %d: %v", n, index, err)
	}
}

// content returns the number of keys and the set of distinct values.
func content(t *testing.T, b backends.Backend) (n int, vals map[string]int) {
	t.Helper()
	vals = map[string]int{}
	err := b.View(func(r backends.Reader) error {
		return r.Ascend(nil, nil, func(_, v []byte) bool {
			n++
			vals[string(v[:1])]++
			return true
		})
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return n, vals
}

func wantState(t *testing.T, b backends.Backend, n int, tag byte, index uint64) {
	t.Helper()
	got, vals := content(t, b)
	if got != n || vals[string(tag)] != n {
		t.Fatalf("content: %d keys, values %v; want %d keys all %q", got, vals, n, tag)
	}
	if ai := b.AppliedIndex(); ai != index {
		t.Fatalf("AppliedIndex = %d, want %d", ai, index)
	}
}

// TestBigUpdate: an Update far beyond badger's transaction limit (~52k
// entries at 32 MiB memtables) succeeds, is invisible to a View running
// in the middle of it, and then appears whole: puts and deletes.
func TestBigUpdate(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	fill(t, b, 1, bigKeys, 'a')
	wantState(t, b, bigKeys, 'a', 1)

	val := bytes.Repeat([]byte("b"), 100)
	spills := badger.Spills()
	err := b.Update(2, func(w backends.Writer) error {
		// Delete every key, put them back with new values, then delete
		// the upper half again: each key is written 2-3 times, across spills.
		for i := 0; i < bigKeys; i++ {
			if err := w.Delete(key(i)); err != nil {
				return err
			}
		}
		if _, err := w.Get(key(bigKeys / 3)); !errors.Is(err, backends.ErrNotFound) {
			return fmt.Errorf("own delete not visible after spills: %v", err)
		}
		for i := 0; i < bigKeys; i++ {
			if err := w.Put(key(i), val); err != nil {
				return err
			}
		}
		for i := bigKeys / 2; i < bigKeys; i++ {
			if err := w.Delete(key(i)); err != nil {
				return err
			}
		}
		// Reads in the Update see all of it; a View sees none of it.
		n := 0
		if err := w.Ascend(nil, nil, func(_, v []byte) bool { n++; return v[0] == 'b' }); err != nil {
			return err
		}
		if n != bigKeys/2 {
			return fmt.Errorf("Ascend in Update saw %d keys, want %d", n, bigKeys/2)
		}
		wantState(t, b, bigKeys, 'a', 1)
		return nil
	})
	if err != nil {
		t.Fatalf("big Update: %v", err)
	}
	wantState(t, b, bigKeys/2, 'b', 2)
	if n := badger.Spills() - spills; n < 2 {
		t.Fatalf("the big Update spilled %d times; the test needs at least 2", n)
	}
}

// TestBigUpdateAborted: fn failing or panicking after several spills
// leaves content and index as they were, and later Updates do not expose
// the abandoned writes.
func TestBigUpdateAborted(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	fill(t, b, 1, 1000, 'a')
	errAbort := errors.New("abort")
	val := bytes.Repeat([]byte("x"), 100)
	write := func(w backends.Writer) {
		for i := 0; i < bigKeys; i++ {
			if err := w.Put(key(i), val); err != nil {
				t.Fatal(err)
			}
		}
		w.Delete(key(0))
	}
	err := b.Update(2, func(w backends.Writer) error { write(w); return errAbort })
	if !errors.Is(err, errAbort) {
		t.Fatalf("aborted Update: %v", err)
	}
	wantState(t, b, 1000, 'a', 1)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		b.Update(2, func(w backends.Writer) error { write(w); panic("boom") })
	}()
	wantState(t, b, 1000, 'a', 1)
	fill(t, b, 2, 10, 'a') // a small Update at a newer version
	wantState(t, b, 1000, 'a', 2)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer b.Close()
	wantState(t, b, 1000, 'a', 2)
}

// TestReopenWithoutSync: a clean Close keeps everything, applied index
// included, without a Sync.
func TestReopenWithoutSync(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	fill(t, b, 5, 100, 'a')
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	wantState(t, b, 100, 'a', 5)
	if err := b.Update(6, func(w backends.Writer) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer b.Close()
	wantState(t, b, 100, 'a', 6)
}

// crashCopy copies the live directory of an open store: the files as a
// SIGKILL would leave them (the mmapped WAL is in the page cache).
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// TestUncleanShutdownRollsBackToSync: after a crash, the store reopens
// exactly as it was at the last Sync, data and index together, also when
// the crash cut a spilled Update in half.
func TestUncleanShutdownRollsBackToSync(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	defer b.Close()
	fill(t, b, 1, 1000, 'a')
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	fill(t, b, 2, 2000, 'b') // after the Sync: overwrites and new keys
	err := b.Update(3, func(w backends.Writer) error { return w.Delete(key(1)) })
	if err != nil {
		t.Fatal(err)
	}

	after := crashCopy(t, dir)
	c := open(t, after)
	wantState(t, c, 1000, 'a', 1)
	fill(t, c, 2, 10, 'c') // usable; replay of the raft log would start here
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	var mid string
	val := bytes.Repeat([]byte("d"), 100)
	err = b.Update(4, func(w backends.Writer) error {
		for i := 0; i < bigKeys; i++ {
			if err := w.Put(key(i), val); err != nil {
				return err
			}
		}
		mid = crashCopy(t, dir) // several chunks are committed by now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c = open(t, mid)
	wantState(t, c, 1000, 'a', 1)
	c.Close()

	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	c = open(t, crashCopy(t, dir))
	defer c.Close()
	wantState(t, c, bigKeys, 'd', 4)
}

// TestCloseStopsGoroutines: Close stops badger's compactors, flushers and
// the like, also for generations replaced by Restore.
func TestCloseStopsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	b, err := badger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, b, 1, 100, 'a')
	var snap bytes.Buffer
	if err := b.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[CURRENT data-2]" {
		t.Fatalf("directory holds %v, want CURRENT and data-2 only", names)
	}
}
