package memory_test

import (
	"testing"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/backends/backendtest"
	"github.com/strata-kv/strata/backends/memory"
)

// open goes through the registry, as --backend=memory does.
func open(tb testing.TB, dir string) backends.Backend {
	b, err := backends.Open("memory", backends.Options{Dir: dir})
	if err != nil {
		tb.Fatalf("open memory: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, open, backendtest.Options{Persistent: false})
}

func BenchmarkMemory(b *testing.B) {
	backendtest.Bench(b, open)
}

func TestNewIsEmpty(t *testing.T) {
	b := memory.New()
	defer b.Close()
	if got := b.AppliedIndex(); got != 0 {
		t.Fatalf("AppliedIndex = %d", got)
	}
}
