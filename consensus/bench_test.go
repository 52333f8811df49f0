package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPropose measures a proposal's round trip (propose, WAL write +
// fdatasync, commit, apply, answer) with 1 and 16 concurrent proposers.
// ns/op is per proposal; fsyncs/op < 1 shows group commit.
func BenchmarkPropose(b *testing.B) {
	for _, proposers := range []int{1, 16} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			n := openReplica(b, b.TempDir(), newCounterSM(), func(c *Config) { c.SnapshotCount = 1 << 40 })
			defer n.Stop()
			cmd := make([]byte, 128)
			ctx := context.Background()
			before := n.Status()
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for p := 0; p < proposers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						if _, err := n.Propose(ctx, cmd); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			after := n.Status()
			fsyncs := after.Fsyncs - before.Fsyncs
			b.ReportMetric(float64(fsyncs)/float64(b.N), "fsyncs/op")
			if fsyncs > 0 {
				b.ReportMetric(float64(after.FsyncTotal-before.FsyncTotal)/float64(fsyncs)/1e3, "µs/fsync")
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
		})
	}
}
