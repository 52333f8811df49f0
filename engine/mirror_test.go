package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/engine"
)

// The primitives a mirror of a live etcd uses: Advance over indexes no
// watch shows, Patch for a refresh it learns of late, and the expiry of one
// named node.
func TestMirrorPrimitives(t *testing.T) {
	h := newHarness(t)
	at := func(s int) int64 { return t0.Add(time.Duration(s) * time.Second).UnixNano() }
	h.must(engine.Command{Op: engine.OpSet, Path: "/a", Value: "1", Expiration: at(1)})
	h.must(engine.Command{Op: engine.OpSet, Path: "/b", Value: "2", Expiration: at(2)})

	h.raft++
	if err := h.e.Advance(h.raft, 5); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Advance(h.raft, 4); err == nil {
		t.Fatal("advance backwards was accepted")
	}
	if ev := h.must(set("/c", "3")); ev.Index() != 6 {
		t.Fatalf("write after advance to 5 at index %d", ev.Index())
	}
	// The watch history answers across the gap with the next event.
	w, err := h.e.Watch("/", true, false, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := js(<-w.C); got != `{"action":"set","node":{"key":"/c","value":"3","modifiedIndex":6,"createdIndex":6}}` {
		t.Fatalf("watch from 3 got %s", got)
	}

	// /b was refreshed elsewhere at index 4 to a later deadline: patched
	// in place, no event, index unchanged.
	h.raft++
	if err := h.e.Patch(h.raft, []engine.SeedNode{{Path: "/b", Created: 2, Modified: 4, Value: "2", Expiry: at(20)}}); err != nil {
		t.Fatal(err)
	}
	if h.e.Index() != 6 {
		t.Fatalf("index %d after a patch, want 6", h.e.Index())
	}
	if got, _ := h.e.Get("/b", false, false); js(got.Node) != `{"key":"/b","value":"2","expiration":"2026-01-02T03:04:25Z","ttl":20,"modifiedIndex":4,"createdIndex":2}` {
		t.Fatalf("patched /b: %s", js(got.Node))
	}
	if err := h.e.Patch(h.raft+1, []engine.SeedNode{{Path: "/x", Modified: 7}}); err == nil {
		t.Fatal("a patch past the store index was accepted")
	}

	// Expiring /b alone at its new deadline leaves /a (due earlier) alone;
	// at an earlier time nothing happens.
	if ev, err := h.do(engine.Command{Op: engine.OpExpire, Path: "/b", Time: at(19)}); ev != nil || err != nil || h.e.Index() != 6 {
		t.Fatalf("expire /b before its deadline: %v %v index %d", ev, err, h.e.Index())
	}
	ew, err := h.e.Watch("/", true, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.do(engine.Command{Op: engine.OpExpire, Path: "/b", Time: at(20)}); err != nil {
		t.Fatal(err)
	}
	if got := js(<-ew.C); got != `{"action":"expire","node":{"key":"/b","modifiedIndex":7,"createdIndex":2},"prevNode":{"key":"/b","value":"2","expiration":"2026-01-02T03:04:25Z","ttl":20,"modifiedIndex":4,"createdIndex":2}}` {
		t.Fatalf("expire /b: %s", got)
	}
	if _, err := h.e.Get("/a", false, false); err != nil {
		t.Fatalf("/a went with /b: %v", err)
	}
	if next, ok, _ := h.e.NextExpiry(); !ok || next != at(1) {
		t.Fatalf("next expiry %d %v, want /a's", next, ok)
	}
}

// A history saved after an Advance past its last event is loaded again by
// a restore at that index.
func TestSavedHistoryAfterAdvance(t *testing.T) {
	h := newHarness(t)
	h.must(set("/a", "1"))
	h.must(set("/b", "2"))
	h.raft++
	if err := h.e.Advance(h.raft, 9); err != nil {
		t.Fatal(err)
	}
	h.raft++
	if err := h.e.SaveHistory(h.raft); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := h.e.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	be, err := backends.Open("memory", backends.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	e2, err := engine.Open(be, engine.Options{Now: func() time.Time { return t0 }, HistorySize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if e2.Index() != 9 {
		t.Fatalf("restored index %d, want 9", e2.Index())
	}
	w, err := e2.Watch("/", true, false, 2)
	if err != nil {
		t.Fatalf("watch from 2 after restore: %v", err)
	}
	if got := js(<-w.C); got != `{"action":"set","node":{"key":"/b","value":"2","modifiedIndex":2,"createdIndex":2}}` {
		t.Fatalf("watch from 2 got %s", got)
	}
}
