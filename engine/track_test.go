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

// TestHistoryHiddenNodes: a watch answered from history sees the hidden
// ('_') nodes below its key, as etcd 3.4 answers (recorded with
// `etcd --enable-v2=true`: PUT /dir/_h, PUT /dir/x, then
// GET /v2/keys/dir?wait=true&recursive=true&waitIndex=<index of _h>
// returns the set of /dir/_h; the same for /_r and /_hd/c under a watch on
// /, and for the delete of /dir/_h), while a live watch does not
// (TestWatchRules). Strata's NUL-named internal nodes stay hidden.
func TestHistoryHiddenNodes(t *testing.T) {
	h := newHarness(t)
	h.must(set("/_h\x00/secret", "s"))                           // index 1: internal (auth-like)
	h.must(set("/dir/_x", "s"))                                  // 2
	h.must(set("/dir/y", "v"))                                   // 3
	h.must(set("/_r", "r"))                                      // 4
	h.must(set("/_hd/c", "c"))                                   // 5
	h.must(engine.Command{Op: engine.OpDelete, Path: "/dir/_x"}) // 6
	h.must(set("/dir/y", "w"))                                   // 7
	h.must(set("/_h\x00/other", "s"))                            // 8: internal
	h.must(set("/z", "z"))                                       // 9
	cases := []struct {
		key       string
		recursive bool
		from      uint64
		want      string // action and key of the first event
	}{
		{"/", true, 1, "set /dir/_x"},
		{"/dir", true, 1, "set /dir/_x"},
		{"/dir", true, 3, "set /dir/y"},
		{"/dir", true, 6, "delete /dir/_x"},
		{"/", true, 4, "set /_r"},
		{"/", true, 5, "set /_hd/c"},
		{"/_hd", true, 5, "set /_hd/c"},
		{"/", true, 8, "set /z"},
		{"/dir/_x", false, 1, "set /dir/_x"},
		{"/dir", false, 1, ""}, // a non-recursive watch on a directory sees none of its children
		{"/_h\x00/secret", false, 1, "set /_h\x00/secret"},
		{"/_h\x00", true, 1, "set /_h\x00/secret"},
	}
	for _, c := range cases {
		w, err := h.e.Watch(c.key, c.recursive, false, c.from)
		if err != nil {
			t.Fatalf("watch %q: %v", c.key, err)
		}
		got := ""
		select {
		case ev := <-w.C:
			got = ev.Action + " " + ev.Node.Key
		default:
		}
		if got != c.want {
			t.Errorf("watch %q recursive=%v from %d: got %q, want %q", c.key, c.recursive, c.from, got, c.want)
		}
		w.Remove()
	}
}
