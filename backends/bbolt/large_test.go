package bbolt_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends"
)

// TestLarge checks the sizing target of Strata's disk backends: 5 million
// keys of 100-byte values with the process's anonymous memory under 1 GiB.
// It restores them from a streamed snapshot, reopens (bbolt rebuilds its
// freelist by scanning the file), reads and overwrites at random, and
// snapshots, sampling RssAnon throughout. It takes a minute or two and a
// few GB of disk, so it only runs with STRATA_LARGE=1 (or =N keys).
func TestLarge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_LARGE"))
	switch {
	case os.Getenv("STRATA_LARGE") == "":
		t.Skip("set STRATA_LARGE=1 (5M keys) or STRATA_LARGE=<keys> to run")
	case n <= 1:
		n = 5_000_000
	}
	const limit = 1 << 30
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample the anonymous RSS, which is what the 1 GiB budget is about
		defer wg.Done()
		for {
			if v := rssAnon(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	phase := func(name string, start time.Time) {
		t.Logf("%-28s %8.2fs  RssAnon now %4d MiB, peak %4d MiB, heap in use %4d MiB",
			name, time.Since(start).Seconds(), rssAnon()>>20, peak.Load()>>20, heapInuse()>>20)
	}
	key := func(buf []byte, i int) []byte { return fmt.Appendf(buf[:0], "/v2/keys/%08d", i) }
	val := bytes.Repeat([]byte("v"), 100)

	dir := t.TempDir()
	b := open(t, dir)
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		err := backends.WriteSnapshot(bw, 1, func(fn func(k, v []byte) error) error {
			var k []byte
			for i := 0; i < n; i++ {
				k = key(k, i)
				if err := fn(k, val); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	start := time.Now()
	if err := b.Restore(pr); err != nil {
		t.Fatal(err)
	}
	phase(fmt.Sprintf("restore %d keys", n), start)
	if fi, err := os.Stat(filepath.Join(dir, "strata.db")); err == nil {
		t.Logf("file size after restore: %d MiB", fi.Size()>>20)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	b = open(t, dir)
	defer b.Close()
	phase("reopen (freelist scan)", start)

	rng := rand.New(rand.NewPCG(1, 2))
	start = time.Now()
	var k []byte
	for i := 0; i < 200_000; i++ {
		k = key(k, rng.IntN(n))
		err := b.View(func(r backends.Reader) error {
			_, err := r.Get(k)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	phase("200k random Gets", start)

	start = time.Now()
	for i := 0; i < 2_000; i++ {
		err := b.Update(uint64(2+i), func(w backends.Writer) error {
			for j := 0; j < 100; j++ {
				k = key(k, rng.IntN(n))
				if err := w.Put(k, val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	phase("2000 Updates of 100 random", start)
	start = time.Now()
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	phase("Sync", start)

	start = time.Now()
	var cw countingWriter
	if err := b.Snapshot(&cw); err != nil {
		t.Fatal(err)
	}
	phase(fmt.Sprintf("snapshot (%d MiB)", cw>>20), start)
	if fi, err := os.Stat(filepath.Join(dir, "strata.db")); err == nil {
		t.Logf("file size at end: %d MiB", fi.Size()>>20)
	}
	close(stop)
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("peak RssAnon %d MiB exceeds %d MiB", p>>20, limit>>20)
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// rssAnon returns the process's resident anonymous memory (Linux), which
// excludes the file-backed mmap of the bbolt file.
func rssAnon() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
