//go:build failpoints

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-kv/strata/internal/failpoint"
)

// TestFailStopOnIOError arms an EIO at the WAL's fdatasync, then at the
// backend commit, under concurrent writers: the member exits by itself
// with one line naming the file and the error (no goroutine dump), never
// acknowledges the failed batch, and a restart without the fault has every
// acknowledged write with its index.
func TestFailStopOnIOError(t *testing.T) {
	cases := []struct {
		backend, point, want string
	}{
		{"memory", "wal-fsync=EIO@80", "wal fdatasync "},
		{"bbolt", "wal-fsync=EIO@80", "wal fdatasync "},
		{"bbolt", "backend-commit=EIO@40", "apply entries up to "},
		{"badger", "backend-commit=EIO@40", "apply entries up to "},
	}
	for _, tc := range cases {
		t.Run(tc.backend+"/"+tc.point, func(t *testing.T) {
			data := t.TempDir()
			logFile := filepath.Join(t.TempDir(), "strata.log")
			os.Setenv(failpoint.EnvVar, tc.point)
			p := startFailpointProc(t, data, logFile, "--backend", tc.backend)
			os.Unsetenv(failpoint.EnvVar)

			c := &http.Client{Timeout: 10 * time.Second}
			var mu sync.Mutex
			acked := map[string]uint64{}
			var wg sync.WaitGroup
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < 2000; i++ {
						key := fmt.Sprintf("/io/w%d-%04d", w, i)
						status, idx, _, err := putRaw(c, p.url, key, "v"+key)
						if err != nil {
							return // the member is gone
						}
						if status == http.StatusCreated {
							mu.Lock()
							acked[key] = idx
							mu.Unlock()
						}
					}
				}(w)
			}
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			var exitErr error
			select {
			case exitErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the member did not stop within 30s of the injected EIO")
			}
			wg.Wait()
			if exitErr == nil {
				t.Fatal("the member exited with status 0 after an I/O error")
			}
			log, _ := os.ReadFile(logFile)
			if bytes.Contains(log, []byte("goroutine ")) || bytes.Contains(log, []byte("panic")) {
				t.Fatalf("the log shows a panic:\n%s", lastBytes(log, 4000))
			}
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "strata: ") || !strings.Contains(last, tc.want) || !strings.Contains(last, "input/output error") {
				t.Fatalf("last line %q does not name the failure (%q, EIO)\n%s", last, tc.want, lastBytes(log, 4000))
			}
			if tc.point[:3] == "wal" && !strings.Contains(last, ".wal") {
				t.Fatalf("last line %q does not name the WAL file", last)
			}
			t.Logf("%d writes acknowledged before the fault; exit: %v; last line: %s", len(acked), exitErr, last)

			p = startLogProc(t, data, filepath.Join(t.TempDir(), "restart.log"), "--backend", tc.backend)
			for key, idx := range acked {
				n, status, err := get(c, p.url, key)
				if err != nil || status != http.StatusOK || n.ModifiedIndex != idx || n.Value != "v"+key {
					t.Fatalf("after restart %s: status %d, index %d (want %d), value %q, %v", key, status, n.ModifiedIndex, idx, n.Value, err)
				}
			}
			p.stop(t)
		})
	}
}

// startFailpointProc runs a strata built with -tags failpoints; the fault
// points are armed from the environment (failpoint.EnvVar).
func startFailpointProc(t *testing.T, dataDir, logFile string, extra ...string) *logProc {
	t.Helper()
	fp := failpointBinary(t)
	saved := strataBinary(t) // built first, so it cannot build over the swap
	plainBuild.path = fp
	defer func() { plainBuild.path = saved }()
	return startLogProc(t, dataDir, logFile, extra...)
}
