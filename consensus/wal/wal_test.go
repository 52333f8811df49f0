package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func ents(term, lo, hi uint64) []raftpb.Entry {
	var es []raftpb.Entry
	for i := lo; i <= hi; i++ {
		es = append(es, raftpb.Entry{Term: term, Index: i, Type: raftpb.EntryNormal, Data: []byte(fmt.Sprintf("entry-%d-%d", term, i))})
	}
	return es
}

func mustOpen(t *testing.T, dir string, from uint64, opts Options) (*WAL, *Recovered) {
	t.Helper()
	w, rec, err := Open(dir, from, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w, rec
}

func mustSave(t *testing.T, w *WAL, hs raftpb.HardState, es []raftpb.Entry) {
	t.Helper()
	if err := w.Save(hs, es); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func checkEntries(t *testing.T, got, want []raftpb.Entry) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries: got %d [%v..], want %d [%v..]", len(got), first(got), len(want), first(want))
	}
}

func first(es []raftpb.Entry) any {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}

func TestRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	w, rec := mustOpen(t, dir, 0, Options{})
	if len(rec.Entries) != 0 || rec.HardState.Term != 0 {
		t.Fatalf("new wal not empty: %+v", rec)
	}
	hs := raftpb.HardState{Term: 1, Vote: 1, Commit: 5}
	mustSave(t, w, hs, ents(1, 1, 10))
	if st := w.Stats(); st.Fsyncs != 1 {
		t.Fatalf("fsyncs = %d, want 1 (one batch, one fdatasync)", st.Fsyncs)
	}
	// Commit-only HardState change: deferred, neither written nor synced.
	hs.Commit = 10
	bytes := w.Stats().Bytes
	mustSave(t, w, hs, nil)
	if st := w.Stats(); st.Fsyncs != 1 || st.Bytes != bytes {
		t.Fatalf("after commit-only save: fsyncs = %d (want 1), bytes %d -> %d", st.Fsyncs, bytes, st.Bytes)
	}
	// A crash now loses only the commit index move.
	_, crashed := mustOpen(t, dir, 0, Options{})
	if crashed.HardState.Commit != 5 {
		t.Fatalf("commit after crash = %d, want 5", crashed.HardState.Commit)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(w.segs[0].path)
	if err != nil || fi.Size() != DefaultSegmentSize {
		t.Fatalf("segment not preallocated: %v %v", fi.Size(), err)
	}

	w, rec = mustOpen(t, dir, 0, Options{})
	checkEntries(t, rec.Entries, ents(1, 1, 10))
	if rec.HardState != hs {
		t.Fatalf("hardstate = %+v, want %+v", rec.HardState, hs)
	}
	// Appending after reopen continues the same log.
	mustSave(t, w, raftpb.HardState{Term: 2, Vote: 1, Commit: 12}, ents(2, 11, 12))
	w.Close()
	_, rec = mustOpen(t, dir, 3, Options{})
	checkEntries(t, rec.Entries, append(ents(1, 4, 10), ents(2, 11, 12)...))
	if rec.HardState.Commit != 12 || rec.HardState.Term != 2 {
		t.Fatalf("hardstate = %+v", rec.HardState)
	}
}

func TestRollover(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	w, _ := mustOpen(t, dir, 0, opts)
	for i := uint64(1); i <= 300; i += 3 {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i + 2}, ents(1, i, i+2))
	}
	nseg := w.Stats().Segments
	if nseg < 5 {
		t.Fatalf("segments = %d, want rollover", nseg)
	}
	w.Close()
	// Sealed segments are truncated to their data; the last stays preallocated.
	segs, _ := listSegments(dir)
	for i, s := range segs {
		fi, _ := os.Stat(s.path)
		if i < len(segs)-1 && fi.Size() > 4096 || i == len(segs)-1 && fi.Size() != 4096 {
			t.Fatalf("segment %d size %d", i, fi.Size())
		}
	}
	w, rec := mustOpen(t, dir, 0, opts)
	checkEntries(t, rec.Entries, ents(1, 1, 300))
	if rec.HardState.Commit != 300 {
		t.Fatalf("commit = %d", rec.HardState.Commit)
	}
	mustSave(t, w, raftpb.HardState{}, ents(1, 301, 301))
	w.Close()
	_, rec = mustOpen(t, dir, 250, opts)
	checkEntries(t, rec.Entries, ents(1, 251, 301))
}

func TestConflictReplacesSuffix(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, 0, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 3}, ents(1, 1, 6))
	// New leader at term 2 overwrites from index 4.
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 3}, ents(2, 4, 5))
	w.Close()
	_, rec := mustOpen(t, dir, 0, Options{})
	checkEntries(t, rec.Entries, append(ents(1, 1, 3), ents(2, 4, 5)...))
}

// lastBatch writes ten single-entry batches and one more batch of three
// entries plus HardState, returning the [start, end) offsets of that last batch.
func writeWithLastBatch(t *testing.T, dir string) (string, int64, int64) {
	w, _ := mustOpen(t, dir, 0, Options{})
	for i := uint64(1); i <= 10; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i}, ents(1, i, i))
	}
	start := w.off
	mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: 13}, ents(1, 11, 13))
	end := w.off
	path := w.segs[len(w.segs)-1].path
	w.Close()
	return path, start, end
}

func TestTornTailIsCut(t *testing.T) {
	type damage func(t *testing.T, path string, start, end int64)
	truncate := func(n int64) damage {
		return func(t *testing.T, path string, start, end int64) {
			if err := os.Truncate(path, end-n); err != nil {
				t.Fatal(err)
			}
		}
	}
	overwrite := func(off func(start, end int64) int64, b []byte) damage {
		return func(t *testing.T, path string, start, end int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b, off(start, end)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := map[string]damage{
		"truncate-1":           truncate(1),
		"truncate-3":           truncate(3),
		"truncate-8":           truncate(8),
		"truncate-into-header": truncate(headerSize + 40),
		"truncate-whole-batch": func(t *testing.T, path string, start, end int64) { os.Truncate(path, start+5) },
		"corrupt-last-bytes":   overwrite(func(s, e int64) int64 { return e - 12 }, []byte{0xde, 0xad, 0xbe, 0xef}),
		"zero-last-record":     overwrite(func(s, e int64) int64 { return e - 40 }, make([]byte, 40)),
		"corrupt-first-record": overwrite(func(s, e int64) int64 { return s + 30 }, []byte{0xff, 0xff}),
		// A hole inside the torn batch: later records of the same batch
		// survive, which is still a torn write, not corruption.
		"hole-mid-batch": overwrite(func(s, e int64) int64 { return s + headerSize + 2 }, make([]byte, 48)),
		"garbage-after":  overwrite(func(s, e int64) int64 { return e + 100 }, []byte("garbage")),
	}
	for name, dmg := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path, start, end := writeWithLastBatch(t, dir)
			dmg(t, path, start, end)
			w, rec := mustOpen(t, dir, 0, Options{})
			want := ents(1, 1, 10)
			wantCommit := uint64(10)
			if name == "garbage-after" {
				want, wantCommit = ents(1, 1, 13), 13
			}
			checkEntries(t, rec.Entries, want)
			if !rec.Repaired {
				t.Fatalf("Repaired = false")
			}
			if rec.HardState.Commit != wantCommit {
				t.Fatalf("commit = %d, want %d", rec.HardState.Commit, wantCommit)
			}
			// The log accepts appends at the cut and replays them.
			next := uint64(len(want)) + 1
			mustSave(t, w, raftpb.HardState{Term: 2, Vote: 1, Commit: next}, ents(2, next, next))
			w.Close()
			w, rec = mustOpen(t, dir, 0, Options{})
			defer w.Close()
			checkEntries(t, rec.Entries, append(want, ents(2, next, next)...))
			if rec.Repaired {
				t.Fatalf("second open repaired again")
			}
			fi, _ := os.Stat(path)
			if fi.Size() != DefaultSegmentSize {
				t.Fatalf("size after repair = %d", fi.Size())
			}
		})
	}
}

func TestMidLogCorruption(t *testing.T) {
	t.Run("last-segment", func(t *testing.T) {
		dir := t.TempDir()
		path, start, _ := writeWithLastBatch(t, dir)
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		// Damage a batch that is followed by later valid batches.
		f.WriteAt([]byte{1, 2, 3, 4}, start/2)
		f.Close()
		_, _, err := Open(dir, 0, Options{})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("zeroed-middle", func(t *testing.T) {
		dir := t.TempDir()
		path, start, _ := writeWithLastBatch(t, dir)
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		f.WriteAt(make([]byte, 64), start/2&^7)
		f.Close()
		if _, _, err := Open(dir, 0, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("sealed-segment", func(t *testing.T) {
		dir, opts := t.TempDir(), Options{SegmentSize: 2048}
		segs := writeSegments(t, dir, opts)
		if len(segs) < 3 {
			t.Fatalf("segments = %d", len(segs))
		}
		// The tail of a sealed segment is never torn.
		fi, _ := os.Stat(segs[0].path)
		os.Truncate(segs[0].path, fi.Size()-3)
		if _, _, err := Open(dir, 0, opts); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("missing-segment", func(t *testing.T) {
		dir, opts := t.TempDir(), Options{SegmentSize: 2048}
		segs := writeSegments(t, dir, opts)
		os.Remove(segs[1].path)
		if _, _, err := Open(dir, 0, opts); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
}

func TestReleaseTo(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 2048}
	w, _ := mustOpen(t, dir, 0, opts)
	for i := uint64(1); i <= 100; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i}, ents(1, i, i))
	}
	before := w.Stats().Segments
	if err := w.SaveSnapshot(Snapshot{Index: 80, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.ReleaseTo(80); err != nil {
		t.Fatal(err)
	}
	after := w.Stats().Segments
	if after >= before || after < 1 {
		t.Fatalf("segments %d -> %d", before, after)
	}
	segs, _ := listSegments(dir)
	if len(segs) != after || segs[0].first > 81 {
		t.Fatalf("on disk: %d segments, first %+v", len(segs), segs[0])
	}
	for i := uint64(101); i <= 110; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i}, ents(1, i, i))
	}
	w.Close()
	w, rec := mustOpen(t, dir, 80, opts)
	checkEntries(t, rec.Entries, ents(1, 81, 110))
	if rec.Snapshot != (Snapshot{Index: 80, Term: 1}) || rec.HardState.Commit != 110 {
		t.Fatalf("recovered %+v %+v", rec.Snapshot, rec.HardState)
	}
	w.Close()
	// Without the snapshot the released entries are missing.
	if _, _, err := Open(dir, 0, opts); !errors.Is(err, ErrGap) {
		t.Fatalf("Open(0) = %v, want ErrGap", err)
	}
}

func TestResetMarker(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, 0, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(1, 1, 10))
	// A snapshot from the leader replaces the log at 20.
	if err := w.SaveSnapshot(Snapshot{Index: 20, Term: 3, Reset: true}); err != nil {
		t.Fatal(err)
	}
	mustSave(t, w, raftpb.HardState{Term: 3, Commit: 22}, ents(3, 21, 22))
	w.Close()
	_, rec := mustOpen(t, dir, 20, Options{})
	checkEntries(t, rec.Entries, ents(3, 21, 22))
	if _, _, err := Open(dir, 5, Options{}); !errors.Is(err, ErrGap) {
		t.Fatalf("Open(5) = %v, want ErrGap", err)
	}
}

func TestLeftoverTempSegmentRemoved(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, 0, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(1, 1, 2))
	w.Close()
	tmp := filepath.Join(dir, segmentName(1, 3)+".tmp")
	os.WriteFile(tmp, []byte("partial"), 0o600)
	_, rec := mustOpen(t, dir, 0, Options{})
	checkEntries(t, rec.Entries, ents(1, 1, 2))
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temp segment not removed: %v", err)
	}
}

// writeSegments writes 60 batches in small segments, closes the log and
// returns its segments.
func writeSegments(t *testing.T, dir string, opts Options) []segment {
	t.Helper()
	w, _ := mustOpen(t, dir, 0, opts)
	for i := uint64(1); i <= 60; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(1, i, i))
	}
	w.Close()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}
