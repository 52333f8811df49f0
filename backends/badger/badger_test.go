package badger_test

import (
	"testing"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/backends/backendtest"
	_ "github.com/strata-kv/strata/backends/badger"
)

// open goes through the registry, as --backend=badger does.
func open(tb testing.TB, dir string) backends.Backend {
	b, err := backends.Open("badger", backends.Options{Dir: dir})
	if err != nil {
		tb.Fatalf("open badger: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, open, backendtest.Options{Persistent: true})
}

func BenchmarkBadger(b *testing.B) {
	backendtest.Bench(b, open)
}
