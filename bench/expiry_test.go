package bench_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
	_ "github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/server"
)

// BenchmarkExpiry100k measures expiry lateness: 100,000 keys written
// through raft with TTLs, then the time from each deadline to the applied
// removal (when reads stop seeing the key), as the scheduler on the leader
// proposes expirations through the log. Run with -benchtime=1x.
//
//	spread: deadlines evenly over 10 s (10k expirations/s)
//	burst:  every deadline at the same instant
func BenchmarkExpiry100k(b *testing.B) {
	for _, be := range backends.Names() {
		for _, sc := range []struct {
			name   string
			spread time.Duration
		}{{"spread10s", 10 * time.Second}, {"burst", 0}} {
			b.Run(be+"/"+sc.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					s := runExpiry(b, be, 100_000, sc.spread)
					b.ReportMetric(float64(s.P50)/1e6, "p50-ms")
					b.ReportMetric(float64(s.P99)/1e6, "p99-ms")
					b.ReportMetric(float64(s.Max)/1e6, "max-ms")
				}
			})
		}
	}
}

func runExpiry(b *testing.B, backend string, n int, spread time.Duration) engine.LatencySummary {
	b.Helper()
	peer := []string{"http://127.0.0.1:2380"}
	srv, err := server.Start(server.Config{
		Name: "bench", DataDir: b.TempDir(), Backend: backend,
		PeerURLs: peer, InitialPeers: map[string][]string{"bench": peer},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	// Writing 100k keys takes a few seconds; deadlines start after it.
	base := time.Now().Add(20 * time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				at := base
				if spread > 0 {
					at = base.Add(spread * time.Duration(i) / time.Duration(n))
				}
				c := engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/exp/%d/k%d", i%100, i), Value: "v", Expiration: at.UnixNano()}
				if _, err := srv.Propose(context.Background(), c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(base) {
		b.Fatalf("loading %d keys took past the first deadline", n)
	}
	deadline := base.Add(spread + 60*time.Second)
	for srv.Engine().Stats().ExpireCount < uint64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d keys expired", srv.Engine().Stats().ExpireCount, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv.Engine().ExpiryLateness()
}
