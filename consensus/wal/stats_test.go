package wal

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// Every fdatasync lands in exactly one bucket: the buckets add up to
// Fsyncs, and each batch that needed one counts one.
func TestFsyncBuckets(t *testing.T) {
	w, _ := mustOpen(t, t.TempDir(), 0, Options{})
	defer w.Close()
	for i := uint64(1); i <= 7; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i}, ents(1, i, i))
	}
	st := w.Stats()
	var sum uint64
	for _, n := range st.FsyncBuckets {
		sum += n
	}
	if st.Fsyncs != 7 || sum != 7 {
		t.Fatalf("fsyncs = %d, bucket total = %d, want 7 and 7", st.Fsyncs, sum)
	}
	for i := 1; i < len(FsyncBucketBounds); i++ {
		if FsyncBucketBounds[i] <= FsyncBucketBounds[i-1] {
			t.Fatalf("bounds not increasing at %d", i)
		}
	}
}

// A segment cut is logged at debug level with the sealed segment, its
// size and the first index of the next one.
func TestSegmentCutLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, _ := mustOpen(t, t.TempDir(), 0, Options{SegmentSize: 4096, Logger: log})
	defer w.Close()
	for i := uint64(1); i <= 300; i += 3 {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i + 2}, ents(1, i, i+2))
	}
	cuts := 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "wal: segment cut" {
			continue
		}
		cuts++
		if rec["level"] != "DEBUG" || rec["sealed"] == nil || rec["next"] == nil || rec["first_index"] == nil || rec["sealed_bytes"] == nil {
			t.Fatalf("cut record %v lacks a key", rec)
		}
	}
	if want := w.Stats().Segments - 1; cuts != want {
		t.Fatalf("%d cut lines, want %d (one per cut)", cuts, want)
	}
}
