package engine_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
)

// nodeCount waits for the engine's count (the first call starts a scan).
func nodeCount(t *testing.T, e *engine.Engine) (files, dirs uint64) {
	t.Helper()
	for i := 0; ; i++ {
		f, d, ok, err := e.NodeCount()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return f, d
		}
		if i > 10000 {
			t.Fatal("node count never became known")
		}
		time.Sleep(time.Millisecond)
	}
}

// walk counts the files and directories below / from a recursive listing.
func walk(t *testing.T, e *engine.Engine) (files, dirs uint64) {
	t.Helper()
	ev, err := e.Get("/", true, false)
	if err != nil {
		t.Fatal(err)
	}
	var rec func(n *engine.Node)
	rec = func(n *engine.Node) {
		for _, c := range n.Nodes {
			if c.Dir {
				dirs++
				rec(c)
			} else {
				files++
			}
		}
	}
	rec(ev.Node)
	return files, dirs
}

func TestNodeCount(t *testing.T) {
	h := newHarness(t)
	h.must(set("/a", "1"))
	h.must(set("/d1/d2/x", "2")) // two directories made on the way
	h.must(engine.Command{Op: engine.OpSet, Path: "/e", Dir: true})
	if _, _, ok, _ := h.e.NodeCount(); ok {
		t.Fatal("count known before any scan")
	}
	if f, d := nodeCount(t, h.e); f != 2 || d != 3 {
		t.Fatalf("count = %d files %d dirs, want 2 and 3", f, d)
	}
	h.must(set("/a", "replaced"))                                                           // no new node
	h.must(set("/d1/y", "3"))                                                               // +1 file
	h.must(engine.Command{Op: engine.OpDelete, Path: "/d1/d2", Dir: true, Recursive: true}) // -1 dir -1 file
	h.do(engine.Command{Op: engine.OpCreate, Path: "/a", Value: "exists"})                  // fails: no change
	h.must(engine.Command{Op: engine.OpSet, Path: "/t", Value: "ttl", Expiration: t0.Add(-time.Second).UnixNano()})
	h.do(engine.Command{Op: engine.OpExpire, Time: t0.UnixNano()}) // /t expires
	if f, d := nodeCount(t, h.e); f != 2 || d != 2 {
		t.Fatalf("count = %d files %d dirs, want 2 and 2", f, d)
	}
	if f, d := walk(t, h.e); f != 2 || d != 2 {
		t.Fatalf("walk = %d %d", f, d)
	}
	// Restore replaces the store: counted again from the image.
	var img bytes.Buffer
	if _, err := h.e.Snapshot(&img); err != nil {
		t.Fatal(err)
	}
	h.must(set("/b", "after the snapshot"))
	if err := h.e.Restore(&img); err != nil {
		t.Fatal(err)
	}
	if f, d := nodeCount(t, h.e); f != 2 || d != 2 {
		t.Fatalf("after restore: %d files %d dirs, want 2 and 2", f, d)
	}
}

// Batches applied while the scan runs are neither lost nor counted twice.
func TestNodeCountDuringWrites(t *testing.T) {
	h := newHarness(t)
	var cmds []engine.Command
	for i := range 20000 {
		cmds = append(cmds, set(fmt.Sprintf("/pre/%d/k%d", i%100, i), "v"))
	}
	h.raft++
	if _, err := h.e.ApplyBatch(h.raft, cmds); err != nil {
		t.Fatal(err)
	}
	h.e.NodeCount() // starts the scan
	for i := 0; ; i++ {
		switch i % 3 {
		case 0:
			h.must(set(fmt.Sprintf("/new/%d/k", i), "v"))
		case 1:
			h.must(engine.Command{Op: engine.OpDelete, Path: fmt.Sprintf("/pre/%d/k%d", (i/3)%100, i/3*100+(i/3)%100)})
		case 2:
			h.must(engine.Command{Op: engine.OpDelete, Path: fmt.Sprintf("/new/%d", i-2), Dir: true, Recursive: true})
		}
		if _, _, ok, _ := h.e.NodeCount(); ok && i > 30 {
			break
		}
	}
	wf, wd := walk(t, h.e)
	if f, d := nodeCount(t, h.e); f != wf || d != wd {
		t.Fatalf("count = %d files %d dirs, walk says %d and %d", f, d, wf, wd)
	}
}

func TestExpiryLatenessHistogram(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	for i := 1; i <= 100; i++ { // 1 ms .. 100 ms late at least
		h.must(engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/k%d", i), Expiration: now.Add(-time.Duration(i) * time.Millisecond).UnixNano()})
	}
	h.do(engine.Command{Op: engine.OpExpire, Time: now.UnixNano()})
	hist := h.e.ExpiryLatenessHistogram()
	if hist.Count != 100 || hist.Sum < 5050*time.Millisecond || len(hist.Cumulative) != len(engine.ExpiryLatenessBounds) {
		t.Fatalf("count %d sum %v buckets %d", hist.Count, hist.Sum, len(hist.Cumulative))
	}
	for i, b := range hist.Bounds {
		if i > 0 && hist.Cumulative[i] < hist.Cumulative[i-1] || hist.Cumulative[i] > hist.Count {
			t.Fatalf("cumulative counts %v not monotonic within count", hist.Cumulative)
		}
		if b <= time.Millisecond && hist.Cumulative[i] != 0 {
			t.Fatalf("%d samples below %v, but none was less than 1 ms late", hist.Cumulative[i], b)
		}
	}
}
