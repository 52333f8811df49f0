package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-kv/strata/engine"
)

// BenchmarkPropose measures a v2 set through the whole proposal path of a
// single member on the memory backend: Server.Propose, raft, the WAL, the
// fsm's engine batch and the typed result back. allocs/op is the figure
// to watch: the result must cross consensus without boxing.
func BenchmarkPropose(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			cfg := testConfig(b.TempDir(), "memory")
			cfg.UnsafeNoFsync = !fsync
			s, err := Start(cfg)
			if err != nil {
				b.Fatalf("start: %v", err)
			}
			defer s.Stop()
			ctx := context.Background()
			c := engine.Command{Op: engine.OpSet, Path: "/bench/key", Value: "value"}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Propose(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
