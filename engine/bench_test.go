package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/engine"
)

func benchEngine(b *testing.B, backend string) *engine.Engine {
	be, err := backends.Open(backend, backends.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	e, err := engine.Open(be, engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkExpire measures removing 10,000 due keys in entries of 2,000,
// as the scheduler proposes them. ns/op is per expired key.
func BenchmarkExpire(b *testing.B) {
	for _, name := range backends.Names() {
		b.Run(name, func(b *testing.B) {
			e := benchEngine(b, name)
			var raft uint64
			at := time.Now().Add(-time.Second).UnixNano()
			b.ReportAllocs()
			for done := 0; done < b.N; {
				n := min(10000, b.N-done)
				b.StopTimer()
				cmds := make([]engine.Command, 0, 100)
				for i := 0; i < n; i++ {
					cmds = append(cmds, engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/exp/%d/k%d", i%100, done+i), Value: "v", Expiration: at})
					if len(cmds) == cap(cmds) || i == n-1 {
						raft++
						if _, err := e.ApplyBatch(raft, cmds); err != nil {
							b.Fatal(err)
						}
						cmds = cmds[:0]
					}
				}
				b.StartTimer()
				for left := n; left > 0; left -= 2000 {
					raft++
					if _, err := e.ApplyBatch(raft, []engine.Command{{Op: engine.OpExpire, Time: time.Now().UnixNano(), Limit: 2000}}); err != nil {
						b.Fatal(err)
					}
				}
				done += n
			}
		})
	}
}

// BenchmarkSet measures one set per batch: the engine's share of a write.
func BenchmarkSet(b *testing.B) {
	for _, name := range backends.Names() {
		b.Run(name, func(b *testing.B) {
			e := benchEngine(b, name)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c := engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/bench/k%d", i%10000), Value: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
				if _, err := e.ApplyBatch(uint64(i+1), []engine.Command{c}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGet measures a read of one key among 10,000.
func BenchmarkGet(b *testing.B) {
	for _, name := range backends.Names() {
		b.Run(name, func(b *testing.B) {
			e := benchEngine(b, name)
			cmds := make([]engine.Command, 10000)
			for i := range cmds {
				cmds[i] = engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/bench/k%d", i), Value: "v"}
			}
			if _, err := e.ApplyBatch(1, cmds); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Get(fmt.Sprintf("/bench/k%d", i%10000), false, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
