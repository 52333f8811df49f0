package engine_test

import (
	"bytes"
	"testing"

	"github.com/strata-kv/strata/engine"
)

// TestTracker: a tracker counts exactly the applied changes at or below
// its directory (failed commands and other keys do not count), and a
// Restore counts once.
func TestTracker(t *testing.T) {
	h := newHarness(t)
	tr := h.e.Track("/_sys\x00")
	steps := []struct {
		name string
		c    engine.Command
		want uint64
	}{
		{"other key", set("/a", "1"), 0},
		{"below", set("/_sys\x00/users/x", "1"), 1},
		{"sibling prefix", set("/_sys\x00x", "1"), 1},
		{"failed create", engine.Command{Op: engine.OpCreate, Path: "/_sys\x00/users/x", Value: "2"}, 1},
		{"update", engine.Command{Op: engine.OpUpdate, Path: "/_sys\x00/users/x", Value: "2"}, 2},
		{"delete", engine.Command{Op: engine.OpDelete, Path: "/_sys\x00/users/x"}, 3},
		{"other delete", engine.Command{Op: engine.OpDelete, Path: "/a"}, 3},
	}
	for _, s := range steps {
		h.do(s.c)
		if got := tr.Version(); got != s.want {
			t.Fatalf("after %s: version %d, want %d", s.name, got, s.want)
		}
	}
	var buf bytes.Buffer
	if _, err := h.e.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := tr.Version(); got != 4 {
		t.Fatalf("after restore: version %d, want 4", got)
	}
}

// TestHistoryHidesHiddenNodes: a recursive watch answered from history
// skips hidden nodes below the watched key, as a live watch does; a watch
// on the hidden key itself still sees it.
func TestHistoryHidesHiddenNodes(t *testing.T) {
	h := newHarness(t)
	h.must(set("/_h\x00/secret", "s")) // index 1
	h.must(set("/dir/_x", "s"))        // index 2
	h.must(set("/dir/y", "v"))         // index 3
	cases := []struct {
		key       string
		recursive bool
		want      string // key of the first event from index 1
	}{
		{"/", true, "/dir/y"},
		{"/dir", true, "/dir/y"},
		{"/dir/_x", false, "/dir/_x"},
		{"/_h\x00/secret", false, "/_h\x00/secret"},
	}
	for _, c := range cases {
		w, err := h.e.Watch(c.key, c.recursive, false, 1)
		if err != nil {
			t.Fatalf("watch %q: %v", c.key, err)
		}
		select {
		case ev := <-w.C:
			if ev.Node.Key != c.want {
				t.Errorf("watch %q recursive=%v from 1: got %q, want %q", c.key, c.recursive, ev.Node.Key, c.want)
			}
		default:
			t.Errorf("watch %q recursive=%v from 1: no event from history", c.key, c.recursive)
		}
		w.Remove()
	}
}
