package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/strata-kv/strata/backends"
)

// snapshotPairs is varied content: tricky keys, many keys, an empty value
// and a value larger than any I/O buffer.
func snapshotPairs() []kv {
	pairs := trickyPairs()
	pairs[len(pairs)/2].v = "" // an empty value survives the round trip as present
	for i := 0; i < 1000; i++ {
		pairs = append(pairs, kv{fmt.Sprintf("k%05d", i), strings.Repeat("v", i%97)})
	}
	pairs = append(pairs, kv{"k\xffbig", strings.Repeat("0123456789abcdef", 1<<16)}) // 1 MiB
	return sorted(pairs)
}

func sorted(pairs []kv) []kv {
	out := slices.Clone(pairs)
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	return out
}

// encode builds a stream with backends.WriteSnapshot, as another backend would.
func encode(t testing.TB, index uint64, pairs []kv) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := backends.WriteSnapshot(&buf, index, func(fn func(k, v []byte) error) error {
		for _, p := range pairs {
			if err := fn([]byte(p.k), []byte(p.v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

func snapshot(t testing.TB, b backends.Backend) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Snapshot(&buf); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return buf.Bytes()
}

func wantIndex(t testing.TB, b backends.Backend, want uint64) {
	t.Helper()
	if got := b.AppliedIndex(); got != want {
		t.Fatalf("AppliedIndex = %d, want %d", got, want)
	}
}

func (s *suite) testSnapshotRoundTrip(t *testing.T) {
	pairs := snapshotPairs()
	src := s.fresh(t)
	put(t, src, 42, pairs...)
	data := snapshot(t, src)

	// The stream is the portable format, exactly.
	var decoded []kv
	idx, err := backends.ReadSnapshot(bytes.NewReader(data), func(k, v []byte) error {
		decoded = append(decoded, kv{string(k), string(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("ReadSnapshot of Snapshot output: %v", err)
	}
	if idx != 42 || !slices.Equal(decoded, pairs) {
		t.Fatalf("stream carries index %d and %d pairs, want 42 and %d equal pairs", idx, len(decoded), len(pairs))
	}
	if !bytes.Equal(data, encode(t, 42, pairs)) {
		t.Fatal("Snapshot output differs from WriteSnapshot of the same content")
	}

	dst := s.fresh(t)
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantContent(t, dst, pairs)
	wantIndex(t, dst, 42)
	view(t, dst, func(r backends.Reader) { wantGet(t, r, trickyKeys[len(trickyKeys)/2], "") })
	// The restored store takes writes from its index on.
	put(t, dst, 43, kv{"after", "restore"})
	wantIndex(t, dst, 43)

	// An empty store round-trips too.
	empty := s.fresh(t)
	if err := dst.Restore(bytes.NewReader(snapshot(t, empty))); err != nil {
		t.Fatalf("Restore of an empty snapshot: %v", err)
	}
	wantContent(t, dst, nil)
	wantIndex(t, dst, 0)
}

func (s *suite) testRestoreReplaces(t *testing.T) {
	b := s.fresh(t)
	put(t, b, 100, kv{"a", "old"}, kv{"k00001", "old"}, kv{"zzz", "gone"}, kv{"", "old empty key"})
	want := []kv{{"a", "new"}, {"k00001", "new"}, {"m", "only in snapshot"}}
	if err := b.Restore(bytes.NewReader(encode(t, 42, want))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantContent(t, b, want)
	wantIndex(t, b, 42) // Restore sets the index, even backwards
	view(t, b, func(r backends.Reader) {
		wantMissing(t, r, "zzz")
		wantMissing(t, r, "")
	})
}

// testRestoreCorrupt feeds truncated and bit-flipped streams and requires
// each to fail with backends.ErrCorruptSnapshot while the previous content
// and applied index stay exactly as they were.
func (s *suite) testRestoreCorrupt(t *testing.T) {
	b := s.fresh(t)
	before := []kv{{"keep", "1"}, {"me", "2"}}
	put(t, b, 9, before...)
	good := encode(t, 77, trickyPairs())

	check := func(what string, r io.Reader, wantCorrupt bool) {
		t.Helper()
		err := b.Restore(r)
		if err == nil {
			t.Fatalf("%s: Restore succeeded", what)
		}
		if wantCorrupt && !errors.Is(err, backends.ErrCorruptSnapshot) {
			t.Fatalf("%s: err = %v, want ErrCorruptSnapshot", what, err)
		}
		if got := dump(t, b); !slices.Equal(got, before) {
			t.Fatalf("%s: content changed by failed Restore:\n got %v\nwant %v", what, got, before)
		}
		wantIndex(t, b, 9)
	}
	for n := 0; n < len(good); n++ {
		check(fmt.Sprintf("truncated to %d/%d bytes", n, len(good)), bytes.NewReader(good[:n]), true)
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x10
		check(fmt.Sprintf("byte %d flipped", i), bytes.NewReader(bad), true)
	}
	errRead := errors.New("backendtest: read fails")
	r := io.MultiReader(bytes.NewReader(good[:len(good)/2]), &failingReader{errRead})
	check("reader error", r, false)

	// And a good stream still restores afterwards.
	if err := b.Restore(bytes.NewReader(good)); err != nil {
		t.Fatalf("Restore after failures: %v", err)
	}
	wantContent(t, b, trickyPairs())
	wantIndex(t, b, 77)
}

type failingReader struct{ err error }

func (r *failingReader) Read([]byte) (int, error) { return 0, r.err }

func (s *suite) testReopen(t *testing.T) {
	dir := t.TempDir()
	b := s.openAt(t, dir)
	put(t, b, 12, kv{"a", "1"}, kv{"b", "2"})
	if err := b.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = s.openAt(t, dir)
	if !s.opts.Persistent {
		wantContent(t, b, nil)
		wantIndex(t, b, 0)
		return
	}
	wantContent(t, b, []kv{{"a", "1"}, {"b", "2"}})
	wantIndex(t, b, 12)

	// Restored content persists as well, and replaces the old on disk.
	restored := []kv{{"r", "restored"}}
	if err := b.Restore(bytes.NewReader(encode(t, 30, restored))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = s.openAt(t, dir)
	wantContent(t, b, restored)
	wantIndex(t, b, 30)
}

func (s *suite) testClosed(t *testing.T) {
	b := s.fresh(t)
	put(t, b, 1, kv{"a", "1"})
	snap := snapshot(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ops := []struct {
		name string
		call func() error
	}{
		{"View", func() error { return b.View(func(backends.Reader) error { return nil }) }},
		{"Update", func() error { return b.Update(2, func(backends.Writer) error { return nil }) }},
		{"Snapshot", func() error { return b.Snapshot(io.Discard) }},
		{"Restore", func() error { return b.Restore(bytes.NewReader(snap)) }},
		{"Sync", func() error { return b.Sync() }},
	}
	for _, op := range ops {
		if err := op.call(); !errors.Is(err, backends.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", op.name, err)
		}
	}
	_ = b.AppliedIndex() // must not panic
	if err := b.Close(); err != nil && !errors.Is(err, backends.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
