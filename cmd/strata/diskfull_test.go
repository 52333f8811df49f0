package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test where mounting is not permitted.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// logProc is a strata child process whose stderr (its log) goes to a file.
type logProc struct {
	cmd *exec.Cmd
	url string
	log string
}

func startLogProc(t *testing.T, dataDir, logFile string, extra ...string) *logProc {
	t.Helper()
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd, url := launch(t, dataDir, lf, logFile, extra...)
	return &logProc{cmd: cmd, url: url, log: logFile}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *logProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("strata exited with %v\n%s", err, lastBytes(b, 2000))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("strata did not exit within 20s of SIGTERM")
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type etcdError struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Cause     string `json:"cause"`
}

// putRaw PUTs a value and returns the status, the modifiedIndex of a
// success and the error JSON of a failure.
func putRaw(c *http.Client, base, key, value string) (int, uint64, etcdError, error) {
	req, _ := http.NewRequest("PUT", base+"/v2/keys"+key, strings.NewReader("value="+value))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, etcdError{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, 0, etcdError{}, err
	}
	if resp.StatusCode < 300 {
		var ev struct{ Node nodeJSON }
		err := json.Unmarshal(body, &ev)
		return resp.StatusCode, ev.Node.ModifiedIndex, etcdError{}, err
	}
	var e etcdError
	if err := json.Unmarshal(body, &e); err != nil {
		return resp.StatusCode, 0, e, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, body, err)
	}
	return resp.StatusCode, 0, e, nil
}

// TestDiskFullDegradesAndResumes fills a small tmpfs under concurrent
// writers on each backend: writes end with etcd's error 300 naming the
// disk (never a panic or a reset connection), reads and /health keep
// answering, freeing space resumes writes without a restart, and every
// acknowledged write survives a restart with its index.
//
// With the free-space reserve off (--space-reserve-bytes -1) the disk
// really fills: the WAL or the backend gets ENOSPC, and the same holds
// (not for badger, which maps its files: there a full disk is a SIGBUS,
// which only the reserve prevents).
func TestDiskFullDegradesAndResumes(t *testing.T) {
	for _, be := range backendNames() {
		t.Run(be, func(t *testing.T) { testDiskFull(t, be) })
		if be != "badger" {
			t.Run(be+"/no-reserve", func(t *testing.T) { testDiskFull(t, be, "--space-reserve-bytes", "-1") })
		}
	}
}

func testDiskFull(t *testing.T, be string, extra ...string) {
	// badger needs more room: its reserve (server/space.go) must cover a
	// memtable flush and a compaction on top of two 64 MiB WAL segments.
	// Its ballast must also outweigh what it writes after the alarm.
	size, ballastSize := int64(200<<20), 32<<20
	if be == "badger" {
		size, ballastSize = 400<<20, 96<<20
	}
	mnt := mountTmpfs(t, size)
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{1}, ballastSize), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(mnt, "data")
	logFile := filepath.Join(t.TempDir(), "strata.log")
	args := append([]string{"--backend", be}, extra...)
	p := startLogProc(t, data, logFile, args...)
	c := &http.Client{Timeout: 20 * time.Second}
	value := strings.Repeat("v", 60<<10)

	// Fill: 8 writers, until each has seen 3 NOSPACE refusals in a row.
	var mu sync.Mutex
	acked := map[string]uint64{}
	var refusals, others []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			streak := 0
			for i := 0; streak < 3 && i < 10000; i++ {
				key := fmt.Sprintf("/fill/w%d-%05d", w, i)
				status, idx, e, err := putRaw(c, p.url, key, value)
				mu.Lock()
				switch {
				case err != nil:
					others = append(others, fmt.Sprintf("%s: %v", key, err))
					streak = 3
				case status == http.StatusCreated:
					acked[key] = idx
					streak = 0
				case status == http.StatusInternalServerError && e.ErrorCode == 300:
					refusals = append(refusals, e.Cause)
					streak++
				default:
					others = append(others, fmt.Sprintf("%s: status %d %+v", key, status, e))
					streak = 3
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("%d writes failed other than with NOSPACE, e.g. %s\nlog:\n%s", len(others), others[0], readLog(t, logFile))
	}
	if len(acked) == 0 || len(refusals) == 0 {
		t.Fatalf("acked %d, refused %d: the disk never filled", len(acked), len(refusals))
	}
	for _, cause := range refusals {
		if cause == "etcdserver: request timed out" {
			// In flight when the member stalled: its entry may still be
			// applied once space returns, so it gets etcd's "unknown".
			continue
		}
		if !strings.Contains(cause, "etcdserver: no space") || !strings.Contains(cause, data) {
			t.Fatalf("refusal cause %q does not name the disk (%s)", cause, data)
		}
	}
	t.Logf("%s: %d writes of 60 KiB acknowledged before the disk was full, %d refused, first cause: %s", be, len(acked), len(refusals), refusals[0])

	// Full: reads, /health, the metric; deletes get through or the same error.
	for key, idx := range acked {
		n, status, err := get(c, p.url, key)
		if err != nil || status != http.StatusOK || n.ModifiedIndex != idx || len(n.Value) != len(value) {
			t.Fatalf("read %s while full: status %d, index %d (want %d), %d bytes, %v", key, status, n.ModifiedIndex, idx, len(n.Value), err)
		}
		break
	}
	if body := httpGet(t, c, p.url+"/health"); !strings.Contains(body, `"health":"false"`) || !strings.Contains(body, "NOSPACE") {
		t.Fatalf("/health while full: %s", body)
	}
	if body := httpGet(t, c, p.url+"/metrics"); !strings.Contains(body, "strata_server_nospace_alarm 1") {
		t.Fatalf("/metrics while full lacks strata_server_nospace_alarm 1")
	}

	// Space returns: writes resume without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var resumed time.Duration
	for i := 0; ; i++ {
		status, idx, e, err := putRaw(c, p.url, fmt.Sprintf("/after/%05d", i), value)
		if err != nil {
			t.Fatalf("write after freeing space: %v", err)
		}
		if status == http.StatusCreated {
			resumed = time.Since(freed)
			acked[fmt.Sprintf("/after/%05d", i)] = idx
			break
		}
		if e.ErrorCode != 300 || time.Since(freed) > 30*time.Second {
			t.Fatalf("writes did not resume within 30s of freeing space: status %d %+v", status, e)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s: writes resumed %v after the ballast was removed", be, resumed.Round(time.Millisecond))
	// A few more: freeing 32 MiB leaves little once the WAL's next 64 MiB
	// segment is preallocated.
	for i := 0; i < 3; i++ {
		key := fmt.Sprintf("/after/more%02d", i)
		status, idx, e, err := putRaw(c, p.url, key, value)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("write %s after resuming: status %d %+v %v", key, status, e, err)
		}
		acked[key] = idx
	}
	if body := httpGet(t, c, p.url+"/health"); !strings.Contains(body, `"health":"true"`) {
		t.Fatalf("/health after resuming: %s", body)
	}
	p.stop(t)
	log := readLog(t, logFile)
	// Once with the reserve. Without it the alarm may clear and come back
	// while the disk is full: a backend commit retried after bbolt rolled
	// back its own growth can succeed before the next one fails.
	if n := strings.Count(log, "NOSPACE alarm raised"); n != 1 && (len(extra) == 0 || n == 0) {
		t.Errorf("NOSPACE alarm raised %d times in the log, want 1:\n%s", n, log)
	}

	// Restart: every acknowledged write is there, with its index.
	logFile = filepath.Join(t.TempDir(), "restart.log")
	p = startLogProc(t, data, logFile, args...)
	for key, idx := range acked {
		n, status, err := get(c, p.url, key)
		if err != nil || status != http.StatusOK || n.ModifiedIndex != idx || len(n.Value) != len(value) {
			t.Fatalf("after restart %s: status %d, index %d (want %d), %d bytes, %v", key, status, n.ModifiedIndex, idx, len(n.Value), err)
		}
	}
	p.stop(t)
	log += readLog(t, logFile)
	if strings.Contains(log, "panic") || strings.Contains(log, "goroutine ") {
		t.Fatalf("the log shows a panic:\n%s", log)
	}
}

func httpGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func readLog(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(lastBytes(b, 8000))
}

// TestQuotaBackendBytes: past --quota-backend-bytes writes get etcd's
// "database space exceeded" as error 300 and /health is false, while reads
// and deletes still work.
func TestQuotaBackendBytes(t *testing.T) {
	for _, be := range []string{"bbolt", "badger"} {
		t.Run(be, func(t *testing.T) {
			p := startLogProc(t, t.TempDir(), filepath.Join(t.TempDir(), "log"), "--backend", be, "--quota-backend-bytes", "4194304")
			c := &http.Client{Timeout: 10 * time.Second}
			value := strings.Repeat("q", 60<<10)
			var last etcdError
			acked := 0
			for i := 0; i < 2000; i++ {
				status, _, e, err := putRaw(c, p.url, fmt.Sprintf("/q/%04d", i), value)
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusCreated {
					if status != http.StatusInternalServerError {
						t.Fatalf("status %d %+v", status, e)
					}
					last = e
					break
				}
				acked++
			}
			if last.ErrorCode != 300 || last.Cause != "etcdserver: mvcc: database space exceeded" {
				t.Fatalf("after %d writes: %+v, want error 300 with etcd's quota cause", acked, last)
			}
			t.Logf("%s: %d writes of 60 KiB under a 4 MiB quota", be, acked)
			if n, status, err := get(c, p.url, "/q/0000"); err != nil || status != http.StatusOK || len(n.Value) != len(value) {
				t.Fatalf("read past the quota: %d %v", status, err)
			}
			if body := httpGet(t, c, p.url+"/health"); !strings.Contains(body, "database space exceeded") {
				t.Fatalf("/health past the quota: %s", body)
			}
			req, _ := http.NewRequest("DELETE", p.url+"/v2/keys/q/0000", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("delete past the quota: status %d", resp.StatusCode)
			}
			p.stop(t)
		})
	}
}
