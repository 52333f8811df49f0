package bench_test

// Engine-level comparisons of the storage backends: the same v2 commands
// applied through engine.ApplyBatch and read through engine.Get on each
// registered backend, with no raft and no HTTP in the way, so the numbers
// isolate what the backend choice costs the state machine.
//
//	go test -run '^$' -bench 'Backends' -benchmem ./bench/
//	STRATA_BENCH_LARGE=1 go test -run '^$' -bench 'BackendsSnapshot|BackendsRestore' -benchtime 3x -timeout 30m ./bench/
//
// Every benchmark uses b.Loop, so its setup (filling a store) runs once per
// benchmark rather than once per b.N ramp-up step, and checks the engine's
// answers exactly: a fast wrong answer is not a result.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	_ "github.com/strata-kv/strata/backends/badger"
	_ "github.com/strata-kv/strata/backends/bbolt"
	_ "github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
)

// value100 is the value written by the write benchmarks: 100 bytes, the
// same size the HTTP trade-off run uses.
var value100 = strings.Repeat("v", 100)

// benchStore is an engine over a fresh backend in b.TempDir, with the raft
// index the next batch must carry.
type benchStore struct {
	b    *testing.B
	be   backends.Backend
	e    *engine.Engine
	raft uint64
}

func openStore(b *testing.B, backend, dir string) *benchStore {
	b.Helper()
	be, err := backends.Open(backend, backends.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	e, err := engine.Open(be, engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return &benchStore{b: b, be: be, e: e}
}

// apply applies cmds as one batch (one raft entry's worth) and fails the
// benchmark on a backend error or on any per-command error.
func (s *benchStore) apply(cmds ...engine.Command) []engine.Result {
	s.raft++
	res, err := s.e.ApplyBatch(s.raft, cmds)
	if err != nil {
		s.b.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			s.b.Fatalf("command %d (%v %s): %v", i, cmds[i].Op, cmds[i].Path, r.Err)
		}
	}
	return res
}

// fill sets n keys named by path(i) with value100, in batches of 1,000
// commands so no backend sees one giant transaction.
func (s *benchStore) fill(n int, path func(i int) string) {
	cmds := make([]engine.Command, 0, 1000)
	for i := 0; i < n; i++ {
		cmds = append(cmds, engine.Command{Op: engine.OpSet, Path: path(i), Value: value100})
		if len(cmds) == cap(cmds) || i == n-1 {
			s.apply(cmds...)
			cmds = cmds[:0]
		}
	}
}

// forEachBackend runs fn as a sub-benchmark per registered backend.
func forEachBackend(b *testing.B, fn func(b *testing.B, backend string)) {
	for _, name := range backends.Names() {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			fn(b, name)
		})
	}
}

func keyPaths(prefix string, n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("%s/k%05d", prefix, i)
	}
	return p
}

// BenchmarkBackendsSet: one unconditional set per batch, i.e. one raft
// entry per write as a lone client produces. Keys cycle over 10,000, so
// the store size is stable however long it runs.
func BenchmarkBackendsSet(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		paths := keyPaths("/set", 10000)
		i := 0
		for b.Loop() {
			s.apply(engine.Command{Op: engine.OpSet, Path: paths[i%len(paths)], Value: value100})
			i++
		}
	})
}

// BenchmarkBackendsSet16: 16 sets per batch, as group commit hands the
// engine 16 concurrent clients' writes in one backend transaction. One op
// is one batch; ns/set is per command.
func BenchmarkBackendsSet16(b *testing.B) {
	const batch = 16
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		paths := keyPaths("/set", 10000)
		cmds := make([]engine.Command, batch)
		i := 0
		for b.Loop() {
			for j := range cmds {
				cmds[j] = engine.Command{Op: engine.OpSet, Path: paths[i%len(paths)], Value: value100}
				i++
			}
			s.apply(cmds...)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/set")
	})
}

// BenchmarkBackendsGet: a read of one key among 10,000.
func BenchmarkBackendsGet(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		paths := keyPaths("/get", 10000)
		s.fill(len(paths), func(i int) string { return paths[i] })
		i := 0
		for b.Loop() {
			p := paths[i%len(paths)]
			ev, err := s.e.Get(p, false, false)
			if err != nil {
				b.Fatal(err)
			}
			if ev.Node.Key != p || ev.Node.Value == nil || *ev.Node.Value != value100 {
				b.Fatalf("get %s: got %+v", p, ev.Node)
			}
			i++
		}
	})
}

// BenchmarkBackendsCreateInOrder: POST to a queue (OpCreate Unique), one
// per batch; the directory grows by one child per op.
func BenchmarkBackendsCreateInOrder(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		for b.Loop() {
			res := s.apply(engine.Command{Op: engine.OpCreate, Path: "/queue", Unique: true, Value: value100})
			ev := res[0].Event
			// The new node is named by the index the create got.
			if want := "/queue/" + fmt.Sprintf("%020d", ev.Node.CreatedIndex); ev.Action != "create" || ev.Node.Key != want {
				b.Fatalf("create: action %q key %q, want create %q", ev.Action, ev.Node.Key, want)
			}
		}
	})
}

// BenchmarkBackendsCAS: compare-and-swap on one key, one per batch, each
// swap expecting the value the previous one wrote, so every CAS succeeds.
func BenchmarkBackendsCAS(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		vals := [2]string{"a" + value100[1:], "b" + value100[1:]}
		s.apply(engine.Command{Op: engine.OpSet, Path: "/cas", Value: vals[0]})
		i := 0
		for b.Loop() {
			res := s.apply(engine.Command{Op: engine.OpCAS, Path: "/cas", PrevValue: vals[i%2], Value: vals[(i+1)%2]})
			if ev := res[0].Event; ev.Action != "compareAndSwap" || *ev.Node.Value != vals[(i+1)%2] {
				b.Fatalf("cas %d: %+v", i, ev)
			}
			i++
		}
	})
}

// BenchmarkBackendsList1000: GET of a directory with 1,000 children, not
// recursive (one range scan over the children's depth).
func BenchmarkBackendsList1000(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		paths := keyPaths("/list", 1000)
		s.fill(len(paths), func(i int) string { return paths[i] })
		// A sibling directory's children must not leak into the listing.
		s.fill(100, func(i int) string { return fmt.Sprintf("/list2/k%d", i) })
		for b.Loop() {
			ev, err := s.e.Get("/list", false, false)
			if err != nil {
				b.Fatal(err)
			}
			if len(ev.Node.Nodes) != len(paths) {
				b.Fatalf("listed %d nodes, want %d", len(ev.Node.Nodes), len(paths))
			}
			if first, last := ev.Node.Nodes[0], ev.Node.Nodes[len(paths)-1]; first.Key != paths[0] || last.Key != paths[len(paths)-1] || *last.Value != value100 {
				b.Fatalf("listing spans %s..%s", first.Key, last.Key)
			}
		}
	})
}

// BenchmarkBackendsGetRecursive10k: recursive GET of a tree of 100
// directories × 100 keys (10,100 nodes returned).
func BenchmarkBackendsGetRecursive10k(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		s.fill(10000, func(i int) string { return fmt.Sprintf("/tree/d%02d/k%02d", i/100, i%100) })
		for b.Loop() {
			ev, err := s.e.Get("/tree", true, false)
			if err != nil {
				b.Fatal(err)
			}
			if len(ev.Node.Nodes) != 100 {
				b.Fatalf("%d directories, want 100", len(ev.Node.Nodes))
			}
			leaves := 0
			for _, d := range ev.Node.Nodes {
				if !d.Dir || len(d.Nodes) != 100 {
					b.Fatalf("%s: dir %v with %d children, want a dir of 100", d.Key, d.Dir, len(d.Nodes))
				}
				leaves += len(d.Nodes)
			}
			if leaves != 10000 {
				b.Fatalf("%d leaves, want 10000", leaves)
			}
		}
	})
}

// BenchmarkBackendsExpire10k: removing 10,000 due keys (in 100
// directories) through OpExpire entries of at most 2,000 nodes, as the
// scheduler proposes them. One op is 10,000 expirations; ns/key is per
// expired key. Writing the keys each round is not timed.
func BenchmarkBackendsExpire10k(b *testing.B) {
	const n, limit = 10000, 2000
	forEachBackend(b, func(b *testing.B, backend string) {
		s := openStore(b, backend, b.TempDir())
		round := 0
		for b.Loop() {
			b.StopTimer()
			at := time.Now().Add(-time.Second).UnixNano()
			cmds := make([]engine.Command, 0, 1000)
			for i := 0; i < n; i++ {
				cmds = append(cmds, engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/exp/%02d/r%d-k%d", i%100, round, i), Value: "v", Expiration: at})
				if len(cmds) == cap(cmds) {
					s.apply(cmds...)
					cmds = cmds[:0]
				}
			}
			before := s.e.Stats().ExpireCount
			b.StartTimer()
			for left := n; left > 0; left -= limit {
				s.apply(engine.Command{Op: engine.OpExpire, Time: time.Now().UnixNano(), Limit: limit})
			}
			b.StopTimer()
			if got := s.e.Stats().ExpireCount - before; got != n {
				b.Fatalf("round %d: expired %d keys, want %d", round, got, n)
			}
			if _, ok, err := s.e.NextExpiry(); err != nil || ok {
				b.Fatalf("round %d: TTL index not empty after expiry (ok=%v err=%v)", round, ok, err)
			}
			round++
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
}

// largeKeys is the store size of the snapshot benchmarks: 1,000,000 with
// STRATA_BENCH_LARGE=1, or N with STRATA_BENCH_LARGE=N (N > 1, for a quick
// check of the code path). Unset, they are skipped: filling a million keys
// takes tens of seconds per backend.
func largeKeys(b *testing.B) int {
	v := os.Getenv("STRATA_BENCH_LARGE")
	if v == "" || v == "0" {
		b.Skip("set STRATA_BENCH_LARGE=1 for the 1M-key snapshot benchmarks")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("STRATA_BENCH_LARGE=%q: want 1 (1M keys) or a key count", v)
	}
	if n == 1 {
		n = 1_000_000
	}
	return n
}

// largeStore fills a store with n keys of 100 bytes in 1,000 directories.
func largeStore(b *testing.B, backend string, n int) *benchStore {
	s := openStore(b, backend, b.TempDir())
	start := time.Now()
	s.fill(n, func(i int) string { return fmt.Sprintf("/big/d%03d/k%07d", i%1000, i) })
	b.Logf("%s: filled %d keys in %v", backend, n, time.Since(start).Round(time.Millisecond))
	return s
}

// snapshotTo writes s's engine snapshot to path and returns its size.
func snapshotTo(b *testing.B, s *benchStore, path string) int64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	idx, err := s.e.Snapshot(w)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if idx != s.raft {
		b.Fatalf("snapshot at raft index %d, want %d", idx, s.raft)
	}
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

func reportPerMillion(b *testing.B, n int) {
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perOp*1e6/float64(n), "s/1Mkeys")
}

// BenchmarkBackendsSnapshot1M: engine.Snapshot of 1M keys to a file
// (written to the page cache, not fsynced: the snapshot writer's cost,
// not the disk's). MB/s is of the portable snapshot stream.
func BenchmarkBackendsSnapshot1M(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		n := largeKeys(b)
		s := largeStore(b, backend, n)
		path := filepath.Join(b.TempDir(), "snap")
		var size int64
		for b.Loop() {
			size = snapshotTo(b, s, path)
		}
		b.SetBytes(size)
		reportPerMillion(b, n)
	})
}

// BenchmarkBackendsRestore1M: a new, empty backend's Restore from a
// snapshot file of 1M keys (opening and closing the backend not timed),
// then checked through a fresh engine.
func BenchmarkBackendsRestore1M(b *testing.B) {
	forEachBackend(b, func(b *testing.B, backend string) {
		n := largeKeys(b)
		src := largeStore(b, backend, n)
		path := filepath.Join(b.TempDir(), "snap")
		size := snapshotTo(b, src, path)
		// Free the source before measuring, so the memory backend's
		// restore does not run with two copies of the store live.
		wantIdx := src.raft
		src.be.Close()
		round := 0
		for b.Loop() {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), strconv.Itoa(round))
			be, err := backends.Open(backend, backends.Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err = be.Restore(bufio.NewReaderSize(f, 1<<20))
			b.StopTimer()
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			if got := be.AppliedIndex(); got != wantIdx {
				b.Fatalf("restored applied index %d, want %d", got, wantIdx)
			}
			e, err := engine.Open(be, engine.Options{})
			if err != nil {
				b.Fatal(err)
			}
			last := fmt.Sprintf("/big/d%03d/k%07d", (n-1)%1000, n-1)
			ev, err := e.Get(last, false, false)
			if err != nil || *ev.Node.Value != value100 {
				b.Fatalf("restored store: get %s: %v", last, err)
			}
			ev, err = e.Get("/big", false, false)
			if err != nil {
				b.Fatalf("restored store: get /big: %v", err)
			}
			if len(ev.Node.Nodes) != min(n, 1000) {
				b.Fatalf("restored store: /big lists %d dirs, want %d", len(ev.Node.Nodes), min(n, 1000))
			}
			if err := be.Close(); err != nil {
				b.Fatal(err)
			}
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			round++
			b.StartTimer()
		}
		b.SetBytes(size)
		reportPerMillion(b, n)
	})
}
