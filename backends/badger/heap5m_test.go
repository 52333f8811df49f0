package badger_test

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/strata-kv/strata/backends"
)

// TestHeap5M loads 5 million keys of 100-byte values in Updates of 10k and
// logs the live heap (after a GC): the evidence behind the memory options.
// Opt-in (about 20 s): STRATA_HEAP5M=1 go test -run Heap5M -v. Measured:
// ~150 MiB at 1M keys, ~250 MiB at 5M, Sys peak ~700 MiB (GC headroom).
func TestHeap5M(t *testing.T) {
	if os.Getenv("STRATA_HEAP5M") == "" {
		t.Skip("set STRATA_HEAP5M=1 to run")
	}
	b := open(t, t.TempDir())
	defer b.Close()
	val := bytes.Repeat([]byte("v"), 100)
	var peak uint64
	var ms runtime.MemStats
	for i := 0; i < 5_000_000; i += 10_000 {
		b.Update(uint64(i+1), func(w backends.Writer) error {
			for j := i; j < i+10_000; j++ {
				w.Put(key(j), val)
			}
			return nil
		})
		if i%500_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			t.Logf("%d keys: heap in use %d MiB, sys %d MiB", i, ms.HeapInuse>>20, ms.Sys>>20)
		}
	}
	b.Sync()
	n := 0
	defer func() { runtime.GC(); runtime.ReadMemStats(&ms); t.Logf("after GC: heap %d MiB", ms.HeapInuse>>20) }()
	b.View(func(r backends.Reader) error { return r.Ascend(nil, nil, func(_, _ []byte) bool { n++; return true }) })
	runtime.ReadMemStats(&ms)
	t.Logf("%d keys scanned: heap in use %d MiB (peak sampled %d MiB), sys %d MiB", n, ms.HeapInuse>>20, peak>>20, ms.Sys>>20)
}
