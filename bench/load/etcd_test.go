package load

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/strata-kv/strata/bench/internal/procs"
)

const etcdBin = "/usr/bin/etcd"

// startEtcd starts a throwaway etcd for the test or skips the test.
func startEtcd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping etcd test in -short mode")
	}
	if _, err := os.Stat(etcdBin); err != nil {
		t.Skipf("etcd not installed: %v", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := procs.StartEtcd(ctx, etcdBin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(5 * time.Second) })
	return e.URL
}

func etcdIndex(t *testing.T, base string) int64 {
	t.Helper()
	resp, err := http.Get(base + "/v2/keys/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := strconv.ParseInt(resp.Header.Get("X-Etcd-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Etcd-Index %q: %v", resp.Header.Get("X-Etcd-Index"), err)
	}
	return n
}

// TestAgainstEtcd checks the generator against the real etcd v2 API: every
// PUT must be one write (the v2 store index advances by exactly one per PUT),
// and GETs of preloaded keys must all succeed.
func TestAgainstEtcd(t *testing.T) {
	base := startEtcd(t)
	tests := []struct {
		name     string
		putPct   int
		clients  int
		requests int64
		keys     int
	}{
		{"put 1 client", 100, 1, 200, 100},
		{"put 8 clients", 100, 8, 400, 100},
		{"get 8 clients", 0, 8, 400, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdIndex(t, base)
			res, err := Run(context.Background(), Config{
				Target: base, Clients: tc.clients, PutPercent: tc.putPct, Keys: tc.keys,
				Requests: tc.requests, Duration: 20 * time.Second, Prefix: "loadtest",
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tc.requests || res.Non2xx != 0 || res.Errors != 0 {
				t.Fatalf("ok/non2xx/errors = %d/%d/%d (status %v, first error %q)",
					res.OK, res.Non2xx, res.Errors, res.Status, res.FirstError)
			}
			writes := int64(0)
			if tc.putPct == 100 {
				writes = tc.requests
			} else {
				writes = int64(tc.keys) // preload
			}
			if got := etcdIndex(t, base) - before; got != writes {
				t.Fatalf("etcd index advanced by %d, want %d writes", got, writes)
			}
		})
	}
}
