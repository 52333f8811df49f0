// Package backendtest is the conformance suite and benchmark set that every
// backends.Backend implementation must pass. It uses only the Backend
// interface, so memory, bbolt, badger and future backends share it:
//
//	func TestConformance(t *testing.T) { backendtest.Run(t, open, backendtest.Options{Persistent: true}) }
//	func BenchmarkBackend(b *testing.B) { backendtest.Bench(b, open) }
package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/strata-kv/strata/backends"
)

// Opener opens (or creates) the backend under test in dir, failing tb on
// error. Opening the same dir again after Close must find the data again if
// the backend is persistent.
type Opener func(tb testing.TB, dir string) backends.Backend

// Options describe the backend under test.
type Options struct {
	// Persistent backends keep keys and the applied index across Close and
	// reopen on the same dir, and report backends.IsDurable; others must
	// come back empty at index 0 and must not report it.
	Persistent bool
}

// Run runs the whole conformance suite as subtests of t.
func Run(t *testing.T, open Opener, opts Options) {
	s := &suite{open: open, opts: opts}
	for _, c := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"GetMissing", s.testGetMissing},
		{"PutGetDelete", s.testPutGetDelete},
		{"AscendOrder", s.testAscendOrder},
		{"AscendBounds", s.testAscendBounds},
		{"AscendEarlyStop", s.testAscendEarlyStop},
		{"ReadOwnWrites", s.testReadOwnWrites},
		{"BatchAtomicity", s.testBatchAtomicity},
		{"PanicRollsBack", s.testPanicRollsBack},
		{"AppliedIndex", s.testAppliedIndex},
		{"CallerMayReuseBuffers", s.testCallerMayReuseBuffers},
		{"RandomizedModel", s.testRandomizedModel},
		{"SnapshotRestoreRoundTrip", s.testSnapshotRoundTrip},
		{"RestoreReplacesContent", s.testRestoreReplaces},
		{"RestoreCorruptKeepsContent", s.testRestoreCorrupt},
		{"Reopen", s.testReopen},
		{"Durable", s.testDurable},
		{"Closed", s.testClosed},
		{"ConcurrentReaders", s.testConcurrentReaders},
	} {
		t.Run(c.name, c.fn)
	}
}

// testDurable: a backend whose files hold the store says so, since raft
// snapshots then carry no image of it; a memory backend must not.
func (s *suite) testDurable(t *testing.T) {
	if got := backends.IsDurable(s.fresh(t)); got != s.opts.Persistent {
		t.Fatalf("IsDurable = %v, want %v (Persistent)", got, s.opts.Persistent)
	}
}

type suite struct {
	open Opener
	opts Options
}

// fresh opens a new backend in a new directory, closed at test end.
func (s *suite) fresh(t testing.TB) backends.Backend {
	return s.openAt(t, t.TempDir())
}

func (s *suite) openAt(t testing.TB, dir string) backends.Backend {
	t.Helper()
	b := s.open(t, dir)
	if b == nil {
		t.Fatalf("open(%q) returned nil", dir)
	}
	t.Cleanup(func() {
		// Tests may have closed it already; a second Close must not panic.
		if err := b.Close(); err != nil && !errors.Is(err, backends.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// kv is a copied key/value pair.
type kv struct{ k, v string }

func (p kv) String() string { return fmt.Sprintf("%q=%q", p.k, p.v) }

// put writes pairs in one Update at index.
func put(t testing.TB, b backends.Backend, index uint64, pairs ...kv) {
	t.Helper()
	err := b.Update(index, func(w backends.Writer) error {
		for _, p := range pairs {
			if err := w.Put([]byte(p.k), []byte(p.v)); err != nil {
				return fmt.Errorf("put %q: %w", p.k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%d): %v", index, err)
	}
}

// dump returns the whole content of b in ascending order, copied.
func dump(t testing.TB, b backends.Backend) []kv {
	t.Helper()
	var out []kv
	err := b.View(func(r backends.Reader) error {
		out = collect(t, r, nil, nil)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return out
}

// collect returns r's pairs in [start, end), copied.
func collect(t testing.TB, r backends.Reader, start, end []byte) []kv {
	t.Helper()
	out := []kv{}
	err := r.Ascend(start, end, func(k, v []byte) bool {
		out = append(out, kv{string(k), string(v)})
		return true
	})
	if err != nil {
		t.Fatalf("Ascend(%q, %q): %v", start, end, err)
	}
	return out
}

func wantContent(t testing.TB, b backends.Backend, want []kv) {
	t.Helper()
	if got := dump(t, b); !slices.Equal(got, want) {
		t.Fatalf("content:\n got %v\nwant %v", got, want)
	}
}

// getIn returns the value at key in r, or ok=false on ErrNotFound.
func getIn(t testing.TB, r backends.Reader, key string) (val string, ok bool) {
	t.Helper()
	v, err := r.Get([]byte(key))
	if errors.Is(err, backends.ErrNotFound) {
		if v != nil {
			t.Errorf("Get(%q) returned ErrNotFound with value %q", key, v)
		}
		return "", false
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), true
}

func wantGet(t testing.TB, r backends.Reader, key, want string) {
	t.Helper()
	if got, ok := getIn(t, r, key); !ok || got != want {
		t.Fatalf("Get(%q) = %q, found %v; want %q", key, got, ok, want)
	}
}

func wantMissing(t testing.TB, r backends.Reader, key string) {
	t.Helper()
	if got, ok := getIn(t, r, key); ok {
		t.Fatalf("Get(%q) = %q, want ErrNotFound", key, got)
	}
}

// view runs fn in a View, failing t on error.
func view(t testing.TB, b backends.Backend, fn func(r backends.Reader)) {
	t.Helper()
	if err := b.View(func(r backends.Reader) error { fn(r); return nil }); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func (s *suite) testGetMissing(t *testing.T) {
	b := s.fresh(t)
	view(t, b, func(r backends.Reader) {
		for _, k := range []string{"", "a", "\x00", "\xff"} {
			wantMissing(t, r, k)
		}
	})
	put(t, b, 1, kv{"a", "1"}, kv{"ab", "2"})
	view(t, b, func(r backends.Reader) {
		for _, k := range []string{"", "\x00", "a\x00", "aa", "b", "A"} {
			wantMissing(t, r, k)
		}
	})
}

func (s *suite) testPutGetDelete(t *testing.T) {
	b := s.fresh(t)
	put(t, b, 1, kv{"k", "v1"}, kv{"empty", ""}, kv{"", "empty key"})
	view(t, b, func(r backends.Reader) {
		wantGet(t, r, "k", "v1")
		wantGet(t, r, "empty", "") // an empty value exists; it is not ErrNotFound
		wantGet(t, r, "", "empty key")
	})
	put(t, b, 2, kv{"k", "v2"}) // overwrite
	err := b.Update(3, func(w backends.Writer) error {
		if err := w.Delete([]byte("empty")); err != nil {
			return err
		}
		return w.Delete([]byte("never-existed")) // not an error
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantContent(t, b, []kv{{"", "empty key"}, {"k", "v2"}})
}

// trickyKeys in ascending byte order: prefixes, 0x00 and 0xff bytes, the
// empty key, and non-ASCII.
var trickyKeys = []string{
	"",
	"\x00",
	"\x00\x00",
	"\x00\xff",
	"\x01",
	"A",
	"a",
	"a\x00",
	"a\x00\x00",
	"a\x01",
	"aa",
	"ab",
	"a\xff",
	"b",
	"\x7f",
	"\x80",
	"\xc3\xa9", // é
	"\xff",
	"\xff\x00",
	"\xff\xff",
	"\xff\xff\xff",
}

func trickyPairs() []kv {
	out := make([]kv, len(trickyKeys))
	for i, k := range trickyKeys {
		out[i] = kv{k, fmt.Sprintf("v%d", i)}
	}
	return out
}

// putShuffled writes pairs in an order unrelated to their sort order.
func putShuffled(t testing.TB, b backends.Backend, index uint64, pairs []kv) {
	t.Helper()
	shuffled := make([]kv, 0, len(pairs))
	for i := range pairs { // deterministic: stride 7 is coprime with len unless len%7==0
		shuffled = append(shuffled, pairs[(i*7)%len(pairs)])
	}
	if len(pairs)%7 == 0 {
		shuffled = append(shuffled[:0], pairs...)
		for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
	}
	put(t, b, index, shuffled...)
}

func (s *suite) testAscendOrder(t *testing.T) {
	for i := 1; i < len(trickyKeys); i++ { // guard the table itself
		if bytes.Compare([]byte(trickyKeys[i-1]), []byte(trickyKeys[i])) >= 0 {
			t.Fatalf("trickyKeys not sorted at %d", i)
		}
	}
	b := s.fresh(t)
	putShuffled(t, b, 1, trickyPairs())
	wantContent(t, b, trickyPairs())
}

func (s *suite) testAscendBounds(t *testing.T) {
	b := s.fresh(t)
	putShuffled(t, b, 1, trickyPairs())
	keysFrom := func(got []kv) []string {
		ks := make([]string, len(got))
		for i, p := range got {
			ks[i] = p.k
		}
		return ks
	}
	all := trickyKeys
	idx := func(k string) int {
		for i, x := range all {
			if x == k {
				return i
			}
		}
		panic("not a tricky key: " + k)
	}
	cases := []struct {
		name       string
		start, end []byte
		want       []string
	}{
		{"nil nil", nil, nil, all},
		{"empty start equals nil", []byte{}, nil, all},
		{"from existing key", []byte("a"), nil, all[idx("a"):]},
		{"from missing key", []byte("a\x00\x01"), nil, all[idx("a\x01"):]},
		{"end excluded", []byte("a"), []byte("ab"), all[idx("a"):idx("ab")]},
		{"end missing", []byte("a"), []byte("a\x02"), all[idx("a"):idx("aa")]},
		{"prefix range", []byte("a"), []byte("b"), all[idx("a"):idx("b")]},
		{"zero-byte range", []byte("\x00"), []byte("\x01"), all[idx("\x00"):idx("\x01")]},
		{"up to 0xff", nil, []byte("\xff"), all[:idx("\xff")]},
		{"from 0xff", []byte("\xff"), nil, all[idx("\xff"):]},
		{"start == end", []byte("a"), []byte("a"), []string{}},
		{"start > end", []byte("b"), []byte("a"), []string{}},
		{"empty non-nil end", nil, []byte{}, []string{}},
		{"past last key", []byte("\xff\xff\xff\x00"), nil, []string{}},
		{"single key", []byte("a\x00"), []byte("a\x00\x00"), []string{"a\x00"}},
	}
	view(t, b, func(r backends.Reader) {
		for _, c := range cases {
			got := keysFrom(collect(t, r, c.start, c.end))
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
				t.Errorf("%s: Ascend(%q, %q) =\n %q\nwant %q", c.name, c.start, c.end, got, c.want)
			}
		}
	})
}

func (s *suite) testAscendEarlyStop(t *testing.T) {
	b := s.fresh(t)
	putShuffled(t, b, 1, trickyPairs())
	for _, stopAfter := range []int{1, 3, len(trickyKeys)} {
		view(t, b, func(r backends.Reader) {
			var got []string
			err := r.Ascend(nil, nil, func(k, _ []byte) bool {
				got = append(got, string(k))
				return len(got) < stopAfter
			})
			if err != nil {
				t.Fatalf("Ascend: %v", err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", trickyKeys[:stopAfter]) {
				t.Errorf("stop after %d: got %q", stopAfter, got)
			}
		})
	}
}

func (s *suite) testReadOwnWrites(t *testing.T) {
	b := s.fresh(t)
	put(t, b, 1, kv{"a", "1"}, kv{"b", "2"}, kv{"c", "3"})
	err := b.Update(2, func(w backends.Writer) error {
		if err := w.Put([]byte("b"), []byte("2'")); err != nil {
			return err
		}
		if err := w.Put([]byte("bb"), []byte("new")); err != nil {
			return err
		}
		if err := w.Delete([]byte("c")); err != nil {
			return err
		}
		wantGet(t, w, "b", "2'")
		wantGet(t, w, "bb", "new")
		wantMissing(t, w, "c")
		if got, want := collect(t, w, nil, nil), []kv{{"a", "1"}, {"b", "2'"}, {"bb", "new"}}; !slices.Equal(got, want) {
			t.Errorf("Ascend in Update:\n got %v\nwant %v", got, want)
		}
		// Deleting then re-adding in one batch ends with the later write.
		if err := w.Delete([]byte("a")); err != nil {
			return err
		}
		wantMissing(t, w, "a")
		if err := w.Put([]byte("a"), []byte("1'")); err != nil {
			return err
		}
		wantGet(t, w, "a", "1'")
		// Other readers do not see the batch before it commits.
		view(t, b, func(r backends.Reader) {
			wantGet(t, r, "b", "2")
			wantMissing(t, r, "bb")
			wantGet(t, r, "c", "3")
		})
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantContent(t, b, []kv{{"a", "1'"}, {"b", "2'"}, {"bb", "new"}})
}

var errAbort = errors.New("backendtest: abort batch")

func (s *suite) testBatchAtomicity(t *testing.T) {
	b := s.fresh(t)
	before := []kv{{"keep", "1"}, {"victim", "2"}}
	put(t, b, 5, before...)
	err := b.Update(9, func(w backends.Writer) error {
		for i := 0; i < 100; i++ {
			if err := w.Put(fmt.Appendf(nil, "new%03d", i), []byte("x")); err != nil {
				return err
			}
		}
		if err := w.Put([]byte("keep"), []byte("changed")); err != nil {
			return err
		}
		if err := w.Delete([]byte("victim")); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update returned %v, want the error of fn (errors.Is)", err)
	}
	wantContent(t, b, before)
	if got := b.AppliedIndex(); got != 5 {
		t.Fatalf("AppliedIndex after failed batch = %d, want 5", got)
	}
	// The backend is still usable, at the failed batch's index too.
	put(t, b, 9, kv{"after", "ok"})
	wantContent(t, b, []kv{{"after", "ok"}, {"keep", "1"}, {"victim", "2"}})
}

func (s *suite) testPanicRollsBack(t *testing.T) {
	b := s.fresh(t)
	put(t, b, 1, kv{"a", "1"})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic in fn was swallowed")
			}
		}()
		b.Update(2, func(w backends.Writer) error {
			w.Put([]byte("a"), []byte("panicked"))
			w.Put([]byte("b"), []byte("panicked"))
			panic("backendtest: fn panics")
		})
	}()
	wantContent(t, b, []kv{{"a", "1"}})
	if got := b.AppliedIndex(); got != 1 {
		t.Fatalf("AppliedIndex after panic = %d, want 1", got)
	}
	put(t, b, 2, kv{"b", "2"}) // not deadlocked
	wantContent(t, b, []kv{{"a", "1"}, {"b", "2"}})
}

func (s *suite) testAppliedIndex(t *testing.T) {
	b := s.fresh(t)
	if got := b.AppliedIndex(); got != 0 {
		t.Fatalf("new store: AppliedIndex = %d, want 0", got)
	}
	put(t, b, 7, kv{"a", "1"})
	if got := b.AppliedIndex(); got != 7 {
		t.Fatalf("AppliedIndex = %d, want 7", got)
	}
	// An Update with no writes still records its index.
	if err := b.Update(10, func(backends.Writer) error { return nil }); err != nil {
		t.Fatalf("empty Update: %v", err)
	}
	if got := b.AppliedIndex(); got != 10 {
		t.Fatalf("AppliedIndex after empty Update = %d, want 10", got)
	}
	put(t, b, 10, kv{"b", "2"}) // equal index: allowed
	ran := false
	err := b.Update(9, func(w backends.Writer) error {
		ran = true
		return w.Put([]byte("c"), []byte("3"))
	})
	if !errors.Is(err, backends.ErrIndexBackwards) {
		t.Fatalf("Update(9) at index 10: err = %v, want ErrIndexBackwards", err)
	}
	if ran {
		t.Error("fn ran although the index went backwards")
	}
	if got := b.AppliedIndex(); got != 10 {
		t.Fatalf("AppliedIndex = %d, want 10", got)
	}
	wantContent(t, b, []kv{{"a", "1"}, {"b", "2"}})
	put(t, b, ^uint64(0), kv{"max", "index"})
	if got := b.AppliedIndex(); got != ^uint64(0) {
		t.Fatalf("AppliedIndex = %d, want max uint64", got)
	}
}

func (s *suite) testCallerMayReuseBuffers(t *testing.T) {
	b := s.fresh(t)
	key, val := []byte("key1"), []byte("val1")
	err := b.Update(1, func(w backends.Writer) error {
		if err := w.Put(key, val); err != nil {
			return err
		}
		copy(key, "XXXX")
		copy(val, "YYYY")
		wantGet(t, w, "key1", "val1") // inside the batch
		wantMissing(t, w, "XXXX")
		// Reuse the same buffers for a second Put.
		copy(key, "key2")
		copy(val, "val2")
		if err := w.Put(key, val); err != nil {
			return err
		}
		copy(key, "ZZZZ")
		copy(val, "ZZZZ")
		// A key with an empty value must be copied too.
		copy(key, "key3")
		if err := w.Put(key, nil); err != nil {
			return err
		}
		copy(key, "ZZZZ")
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantContent(t, b, []kv{{"key1", "val1"}, {"key2", "val2"}, {"key3", ""}})
	// Mutating the key passed to Get or Ascend after they return has no effect either.
	probe := []byte("key1")
	view(t, b, func(r backends.Reader) {
		if _, err := r.Get(probe); err != nil {
			t.Fatalf("Get: %v", err)
		}
	})
	copy(probe, "QQQQ")
	wantContent(t, b, []kv{{"key1", "val1"}, {"key2", "val2"}, {"key3", ""}})
}
