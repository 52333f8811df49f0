package memory

import (
	"fmt"
	"testing"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/backends/backendtest"
)

// BenchmarkDegree runs the shared benchmarks at several B-tree degrees; it
// is the evidence behind the degree constant.
func BenchmarkDegree(b *testing.B) {
	for _, deg := range []int{8, 16, 32, 64} {
		b.Run(fmt.Sprintf("deg=%d", deg), func(b *testing.B) {
			backendtest.Bench(b, func(testing.TB, string) backends.Backend { return newDegree(deg) })
		})
	}
}
