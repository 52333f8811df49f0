package engine_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	_ "github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
)

// fixed clock: TTLs and expirations are exact.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type harness struct {
	t    *testing.T
	e    *engine.Engine
	raft uint64
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	be, err := backends.Open("memory", backends.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	e, err := engine.Open(be, engine.Options{Now: func() time.Time { return t0 }, HistorySize: 10})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, e: e}
}

func (h *harness) do(c engine.Command) (*engine.Event, error) {
	h.t.Helper()
	h.raft++
	res, err := h.e.ApplyBatch(h.raft, []engine.Command{c})
	if err != nil {
		h.t.Fatalf("apply %+v: %v", c, err)
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return res[0].Event, nil
}

func (h *harness) must(c engine.Command) *engine.Event {
	h.t.Helper()
	ev, err := h.do(c)
	if err != nil {
		h.t.Fatalf("%v %s: %v", c.Op, c.Path, err)
	}
	return ev
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func set(p, v string) engine.Command { return engine.Command{Op: engine.OpSet, Path: p, Value: v} }

func TestOperations(t *testing.T) {
	exp := t0.Add(30 * time.Second).UnixNano()
	cases := []struct {
		name  string
		setup []engine.Command
		cmd   engine.Command
		want  string // event JSON, or error JSON
	}{
		{"set new", nil, set("/foo", "bar"),
			`{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":1,"createdIndex":1}}`},
		{"set existing replaces and reports prevNode", []engine.Command{set("/foo", "a")}, set("/foo", "b"),
			`{"action":"set","node":{"key":"/foo","value":"b","modifiedIndex":2,"createdIndex":2},"prevNode":{"key":"/foo","value":"a","modifiedIndex":1,"createdIndex":1}}`},
		{"set with ttl", nil, engine.Command{Op: engine.OpSet, Path: "/t", Value: "v", Expiration: exp},
			`{"action":"set","node":{"key":"/t","value":"v","expiration":"2026-01-02T03:04:35Z","ttl":30,"modifiedIndex":1,"createdIndex":1}}`},
		{"set on directory is 102", []engine.Command{set("/d/x", "1")}, set("/d", "v"),
			`{"errorCode":102,"message":"Not a file","cause":"/d","index":1}`},
		{"set under a file is 104", []engine.Command{set("/f", "1")}, set("/f/x/y", "v"),
			`{"errorCode":104,"message":"Not a directory","cause":"/f","index":1}`},
		{"set root is 107", nil, set("/", "v"),
			`{"errorCode":107,"message":"Root is read only","cause":"/","index":0}`},
		{"create exists is 105", []engine.Command{set("/foo", "a")}, engine.Command{Op: engine.OpCreate, Path: "/foo", Value: "b"},
			`{"errorCode":105,"message":"Key already exists","cause":"/foo","index":1}`},
		{"post makes in-order key", []engine.Command{set("/other", "a")}, engine.Command{Op: engine.OpCreate, Path: "/q", Value: "job", Unique: true},
			`{"action":"create","node":{"key":"/q/00000000000000000002","value":"job","modifiedIndex":2,"createdIndex":2}}`},
		{"update keeps createdIndex", []engine.Command{set("/foo", "a")}, engine.Command{Op: engine.OpUpdate, Path: "/foo", Value: "b"},
			`{"action":"update","node":{"key":"/foo","value":"b","modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/foo","value":"a","modifiedIndex":1,"createdIndex":1}}`},
		{"update missing names first missing element", nil, engine.Command{Op: engine.OpUpdate, Path: "/a/b/c", Value: "b"},
			`{"errorCode":100,"message":"Key not found","cause":"/a","index":0}`},
		{"update dir ttl (the guide, not etcd 3.5's error 300)", []engine.Command{{Op: engine.OpSet, Path: "/d", Dir: true}},
			engine.Command{Op: engine.OpUpdate, Path: "/d", Dir: true, Expiration: exp},
			`{"action":"update","node":{"key":"/d","dir":true,"expiration":"2026-01-02T03:04:35Z","ttl":30,"modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/d","dir":true,"modifiedIndex":1,"createdIndex":1}}`},
		{"cas value mismatch", []engine.Command{set("/foo", "one")}, engine.Command{Op: engine.OpCAS, Path: "/foo", PrevValue: "two", Value: "x"},
			`{"errorCode":101,"message":"Compare failed","cause":"[two != one]","index":1}`},
		{"cas both mismatch", []engine.Command{set("/foo", "one")}, engine.Command{Op: engine.OpCAS, Path: "/foo", PrevValue: "zero", PrevIndex: 5, Value: "x"},
			`{"errorCode":101,"message":"Compare failed","cause":"[zero != one] [5 != 1]","index":1}`},
		{"cas index ok", []engine.Command{set("/foo", "one")}, engine.Command{Op: engine.OpCAS, Path: "/foo", PrevIndex: 1, Value: "two"},
			`{"action":"compareAndSwap","node":{"key":"/foo","value":"two","modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/foo","value":"one","modifiedIndex":1,"createdIndex":1}}`},
		{"cad ok", []engine.Command{set("/foo", "one")}, engine.Command{Op: engine.OpCAD, Path: "/foo", PrevValue: "one"},
			`{"action":"compareAndDelete","node":{"key":"/foo","modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/foo","value":"one","modifiedIndex":1,"createdIndex":1}}`},
		{"delete dir without dir flag is 102", []engine.Command{{Op: engine.OpSet, Path: "/d", Dir: true}}, engine.Command{Op: engine.OpDelete, Path: "/d"},
			`{"errorCode":102,"message":"Not a file","cause":"/d","index":1}`},
		{"delete non-empty dir is 108", []engine.Command{set("/d/_hidden", "x")}, engine.Command{Op: engine.OpDelete, Path: "/d", Dir: true},
			`{"errorCode":108,"message":"Directory not empty","cause":"/d","index":1}`},
		{"delete recursive", []engine.Command{set("/d/a", "1"), set("/d/s/b", "2")}, engine.Command{Op: engine.OpDelete, Path: "/d", Recursive: true},
			`{"action":"delete","node":{"key":"/d","dir":true,"modifiedIndex":3,"createdIndex":1},"prevNode":{"key":"/d","dir":true,"modifiedIndex":1,"createdIndex":1}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				h.must(c)
			}
			ev, err := h.do(tc.cmd)
			got := js(ev)
			if err != nil {
				got = js(err)
			}
			if got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestGetListingAndIndexes(t *testing.T) {
	h := newHarness(t)
	h.must(set("/dir/b", "2"))
	h.must(set("/dir/a", "1"))
	h.must(set("/dir/_h", "hidden"))
	h.must(set("/dir/sub/x", "y"))
	h.must(set("/dir2/z", "z")) // a sibling with a common prefix must not leak in
	ev, err := h.e.Get("/dir", true, true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"get","node":{"key":"/dir","dir":true,"nodes":[` +
		`{"key":"/dir/a","value":"1","modifiedIndex":2,"createdIndex":2},` +
		`{"key":"/dir/b","value":"2","modifiedIndex":1,"createdIndex":1},` +
		`{"key":"/dir/sub","dir":true,"nodes":[{"key":"/dir/sub/x","value":"y","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}` +
		`],"modifiedIndex":1,"createdIndex":1}}`
	if got := js(ev); got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if ev.EtcdIndex != 5 || h.e.Index() != 5 {
		t.Fatalf("index: event %d engine %d, want 5", ev.EtcdIndex, h.e.Index())
	}
	root, _ := h.e.Get("/", false, false)
	if got := js(root); got != `{"action":"get","node":{"dir":true,"nodes":[{"key":"/dir","dir":true,"modifiedIndex":1,"createdIndex":1},{"key":"/dir2","dir":true,"modifiedIndex":5,"createdIndex":5}]}}` {
		t.Fatalf("root listing: %s", got)
	}
	if _, err := h.e.Get("/dir/sub/x/deeper", false, false); js(err) != `{"errorCode":104,"message":"Not a directory","cause":"/dir/sub/x","index":5}` {
		t.Fatalf("get below a file: %v", js(err))
	}
	if _, err := h.e.Get("/nope/deeper", false, false); js(err) != `{"errorCode":100,"message":"Key not found","cause":"/nope","index":5}` {
		t.Fatalf("get missing: %v", js(err))
	}
	st := h.e.Stats()
	if st.SetSuccess != 5 || st.GetSuccess != 2 || st.GetFail != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestExpireRemovesDueNodesEachAtOwnIndex(t *testing.T) {
	h := newHarness(t)
	at := func(s int) int64 { return t0.Add(time.Duration(s) * time.Second).UnixNano() }
	h.must(engine.Command{Op: engine.OpSet, Path: "/a", Value: "1", Expiration: at(1)})
	h.must(engine.Command{Op: engine.OpSet, Path: "/d", Dir: true, Expiration: at(2)})
	h.must(engine.Command{Op: engine.OpSet, Path: "/d/c", Value: "c", Expiration: at(5)}) // goes with /d
	h.must(engine.Command{Op: engine.OpSet, Path: "/late", Value: "x", Expiration: at(10)})
	w, err := h.e.Watch("/d/c", false, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next, ok, _ := h.e.NextExpiry(); !ok || next != at(1) {
		t.Fatalf("next expiry %d %v, want %d", next, ok, at(1))
	}
	ev, err := h.do(engine.Command{Op: engine.OpExpire, Time: at(6)})
	if err != nil || ev != nil {
		t.Fatalf("expire: %v %v", ev, err)
	}
	if h.e.Index() != 6 {
		t.Fatalf("index %d, want 6 (two expirations)", h.e.Index())
	}
	select {
	case e := <-w.C:
		if got := js(e); got != `{"action":"expire","node":{"key":"/d","dir":true,"modifiedIndex":6,"createdIndex":2},"prevNode":{"key":"/d","dir":true,"expiration":"2026-01-02T03:04:07Z","ttl":2,"modifiedIndex":2,"createdIndex":2}}` {
			t.Fatalf("watcher under expired dir got %s", got)
		}
	default:
		t.Fatal("watcher on a child of the expired directory was not told")
	}
	if next, ok, _ := h.e.NextExpiry(); !ok || next != at(10) {
		t.Fatalf("next expiry after %d %v, want /late's", next, ok)
	}
	if _, err := h.e.Get("/d/c", false, false); js(err) != `{"errorCode":100,"message":"Key not found","cause":"/d","index":6}` {
		t.Fatalf("child of expired dir: %s", js(err))
	}
	if st := h.e.Stats(); st.ExpireCount != 2 {
		t.Fatalf("expireCount %d", st.ExpireCount)
	}
	// Updating the TTL moves the deadline; removing it makes the key permanent.
	h.must(engine.Command{Op: engine.OpUpdate, Path: "/late", Value: "x"})
	if _, ok, _ := h.e.NextExpiry(); ok {
		t.Fatal("TTL index still holds a deadline for a key made permanent")
	}
}

func TestExpireLimit(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.must(engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/k%d", i), Expiration: t0.Add(time.Second).UnixNano()})
	}
	h.do(engine.Command{Op: engine.OpExpire, Time: t0.Add(time.Hour).UnixNano(), Limit: 2})
	if h.e.Index() != 7 {
		t.Fatalf("index %d, want 7", h.e.Index())
	}
	h.do(engine.Command{Op: engine.OpExpire, Time: t0.Add(time.Hour).UnixNano()})
	if h.e.Index() != 10 {
		t.Fatalf("index %d, want 10", h.e.Index())
	}
}

func TestRefreshDoesNotNotify(t *testing.T) {
	h := newHarness(t)
	exp := t0.Add(time.Minute).UnixNano()
	h.must(engine.Command{Op: engine.OpSet, Path: "/foo", Value: "bar", Expiration: exp})
	w, _ := h.e.Watch("/foo", false, false, 0)
	ev := h.must(engine.Command{Op: engine.OpUpdate, Path: "/foo", Refresh: true, Expiration: exp})
	if *ev.Node.Value != "bar" || ev.Node.ModifiedIndex != 2 {
		t.Fatalf("refresh event %s", js(ev))
	}
	select {
	case e := <-w.C:
		t.Fatalf("refresh woke a watcher: %s", js(e))
	default:
	}
	h.must(set("/foo", "changed"))
	if e := <-w.C; e.Node.ModifiedIndex != 3 {
		t.Fatalf("watcher got %s", js(e))
	}
	// History watches skip refreshes too.
	w2, _ := h.e.Watch("/foo", false, false, 2)
	if e := <-w2.C; e.Node.ModifiedIndex != 3 {
		t.Fatalf("history watch got %s", js(e))
	}
}

func TestWatchRules(t *testing.T) {
	h := newHarness(t)
	h.must(set("/dir/a", "1"))
	nonrec, _ := h.e.Watch("/dir", false, false, 0)
	rec, _ := h.e.Watch("/dir", true, false, 0)
	root, _ := h.e.Watch("/", true, true, 0)
	child, _ := h.e.Watch("/dir/a", false, true, 0)
	h.must(set("/dir/_hidden", "x"))
	h.must(set("/dir/a", "2"))
	h.must(engine.Command{Op: engine.OpDelete, Path: "/dir", Recursive: true})

	// A non-recursive watch on the directory ignores its children but is
	// told when the directory itself goes.
	if e := <-nonrec.C; e.Action != "delete" || e.Index() != 4 {
		t.Fatalf("non-recursive directory watch got %s", js(e))
	}
	if e := <-rec.C; e.Node.Key != "/dir/a" || e.Node.ModifiedIndex != 3 {
		t.Fatalf("recursive watch got %s (hidden keys must not wake it)", js(e))
	}
	var rootIdx []uint64
	for len(root.C) > 0 {
		rootIdx = append(rootIdx, (<-root.C).Index())
	}
	if fmt.Sprint(rootIdx) != "[3 4]" {
		t.Fatalf("root stream saw %v, want [3 4]", rootIdx)
	}
	var childIdx []uint64
	for len(child.C) > 0 {
		childIdx = append(childIdx, (<-child.C).Index())
	}
	if fmt.Sprint(childIdx) != "[3 4]" { // the delete once, not twice as etcd streams do
		t.Fatalf("child stream saw %v, want [3 4]", childIdx)
	}
	if n := h.e.Stats().Watchers; n != 2 {
		t.Fatalf("watchers %d, want 2 stream watchers left", n)
	}
	root.Remove()
	child.Remove()
	nonrec.Remove()
	if n := h.e.Stats().Watchers; n != 0 {
		t.Fatalf("watchers %d after Remove", n)
	}
}

func TestHistoryWindow(t *testing.T) {
	h := newHarness(t) // history of 10 events
	for i := 0; i < 15; i++ {
		h.must(set("/k", fmt.Sprint(i)))
	}
	_, err := h.e.Watch("/k", false, false, 5)
	if got := js(err); got != `{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [6/5]","index":15}` {
		t.Fatalf("old waitIndex: %s", got)
	}
	w, err := h.e.Watch("/k", false, false, 6)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-w.C; e.Index() != 6 || w.StartIndex() != 15 {
		t.Fatalf("history event %d start %d", e.Index(), w.StartIndex())
	}
	// A stream watch from history replays every match, then goes live.
	s, _ := h.e.Watch("/k", false, true, 13)
	h.must(set("/k", "live"))
	var got []uint64
	for len(s.C) > 0 {
		got = append(got, (<-s.C).Index())
	}
	if fmt.Sprint(got) != "[13 14 15 16]" {
		t.Fatalf("stream from history saw %v", got)
	}
}

func TestSlowStreamWatcherIsClosed(t *testing.T) {
	be, _ := backends.Open("memory", backends.Options{})
	defer be.Close()
	e, _ := engine.Open(be, engine.Options{WatchBuffer: 2})
	w, _ := e.Watch("/k", false, true, 0)
	for i := uint64(1); i <= 4; i++ {
		if _, err := e.ApplyBatch(i, []engine.Command{set("/k", "v")}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w.C {
		n++
	}
	if n != 2 {
		t.Fatalf("received %d events before close, want the 2 buffered", n)
	}
	if e.Stats().Watchers != 0 {
		t.Fatal("closed watcher still counted")
	}
}

func TestBatchAndSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	res, err := h.e.ApplyBatch(7, []engine.Command{
		set("/a", "1"),
		{Op: engine.OpCreate, Path: "/a", Value: "x"}, // fails, takes no index
		{Op: engine.OpCAS, Path: "/a", PrevValue: "1", Value: "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Event.Index() != 1 || res[1].Err == nil || res[2].Event.Index() != 2 {
		t.Fatalf("batch results %s", js(res))
	}
	if h.e.AppliedIndex() != 7 {
		t.Fatalf("applied %d", h.e.AppliedIndex())
	}
	var buf bytesBuffer
	idx, err := h.e.Snapshot(&buf)
	if err != nil || idx != 7 {
		t.Fatalf("snapshot idx %d err %v", idx, err)
	}
	h2 := newHarness(t)
	w, _ := h2.e.Watch("/x", false, false, 0)
	if err := h2.e.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.C; ok {
		t.Fatal("watch survived a restore")
	}
	ev, err := h2.e.Get("/a", false, false)
	if err != nil || *ev.Node.Value != "2" || h2.e.Index() != 2 || h2.e.AppliedIndex() != 7 {
		t.Fatalf("restored: %s %v index %d applied %d", js(ev), err, h2.e.Index(), h2.e.AppliedIndex())
	}
	if _, err := h2.e.Watch("/a", false, false, 1); js(err) != `{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [3/1]","index":2}` {
		t.Fatalf("history after restore: %s", js(err))
	}
}

func TestCommandRoundTrip(t *testing.T) {
	c := engine.Command{Op: engine.OpCAS, Path: "/a/b", Value: "v\x00\xff", PrevValue: "p", PrevIndex: 1 << 40,
		Expiration: -5, Time: 1 << 62, Limit: 7, Dir: true, Unique: true, Recursive: true, Refresh: true}
	got, err := engine.UnmarshalCommand(c.Marshal())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func FuzzUnmarshalCommand(f *testing.F) {
	c := set("/a", "b")
	f.Add(c.Marshal())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := engine.UnmarshalCommand(b)
		if err != nil {
			return
		}
		if again, err := engine.UnmarshalCommand(c.Marshal()); err != nil || again != c {
			t.Fatalf("re-encoding changed the command: %+v vs %+v", c, again)
		}
	})
}

func TestLatencyHistogram(t *testing.T) {
	h := newHarness(t)
	// Deadlines 1 ms .. 100 ms in the past: p50 ~50 ms, p99 ~99 ms.
	now := time.Now()
	for i := 1; i <= 100; i++ {
		h.must(engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/k%d", i), Expiration: now.Add(-time.Duration(i) * time.Millisecond).UnixNano()})
	}
	h.must(engine.Command{Op: engine.OpSet, Path: "/trigger"})
	h.do(engine.Command{Op: engine.OpExpire, Time: now.UnixNano()})
	s := h.e.ExpiryLateness()
	if s.Count != 100 {
		t.Fatalf("count %d", s.Count)
	}
	within := func(got, want time.Duration) bool { return got >= want && got <= want+want/8+20*time.Millisecond }
	if !within(s.P50, 50*time.Millisecond) || !within(s.P99, 99*time.Millisecond) || s.Max < 100*time.Millisecond {
		t.Fatalf("summary %+v", s)
	}
}
