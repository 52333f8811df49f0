package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// goBuild compiles the server once per test binary, with the given tags.
type goBuild struct {
	tags string
	once sync.Once
	path string
	err  error
}

var (
	plainBuild     = &goBuild{}
	failpointBuild = &goBuild{tags: "failpoints"}
)

func (b *goBuild) binary(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "strata")
		out, err := exec.Command("go", "build", "-tags", b.tags, "-o", b.path, ".").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build -tags %q: %v\n%s", b.tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func strataBinary(t *testing.T) string { return plainBuild.binary(t) }

// failpointBinary is strata built with -tags failpoints: the storage
// fault points (failpoint.EnvVar) and peer traffic faults
// (server.FaultFileEnv) are compiled only into it.
func failpointBinary(t *testing.T) string { return failpointBuild.binary(t) }

type proc struct {
	cmd *exec.Cmd
	url string
}

// startProc runs strata as a child process on a loopback port.
func startProc(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	cmd, url := launch(t, dataDir, os.Stderr, "", extra...)
	return &proc{cmd: cmd, url: url}
}

// launch starts strata on dataDir with its stderr going to stderr, waits
// for its ready line and returns the process and its client URL; the
// process is killed at the test's end. logFile, if not "", is shown when
// strata does not start.
func launch(t *testing.T, dataDir string, stderr io.Writer, logFile string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--listen-client-urls", "http://127.0.0.1:0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(strataBinary(t), args...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-lines:
		m := regexp.MustCompile(`on (http://[0-9.:]+)`).FindStringSubmatch(line)
		if m == nil {
			var b []byte
			if logFile != "" {
				b, _ = os.ReadFile(logFile)
			}
			t.Fatalf("strata did not start: %q\n%s", line, b)
		}
		return cmd, m[1]
	case <-time.After(30 * time.Second):
		t.Fatal("strata did not print its ready line within 30s")
	}
	return nil, ""
}

type nodeJSON struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ModifiedIndex uint64 `json:"modifiedIndex"`
}

func put(c *http.Client, base, key, value string) (uint64, error) {
	req, _ := http.NewRequest("PUT", base+"/v2/keys"+key, strings.NewReader(url.Values{"value": {value}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var ev struct{ Node nodeJSON }
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return ev.Node.ModifiedIndex, nil
}

func get(c *http.Client, base, key string) (nodeJSON, int, error) {
	resp, err := c.Get(base + "/v2/keys" + key)
	if err != nil {
		return nodeJSON{}, 0, err
	}
	defer resp.Body.Close()
	var ev struct{ Node nodeJSON }
	err = json.NewDecoder(resp.Body).Decode(&ev)
	return ev.Node, resp.StatusCode, err
}

// TestKill9KeepsAcknowledgedWrites: SIGKILL a strata under 16 concurrent
// writers; after restart every acknowledged write is there with the index
// it was acknowledged with.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server")
	}
	for _, be := range backendNames() {
		t.Run(be, func(t *testing.T) {
			dir := t.TempDir()
			// A small snapshot count puts a snapshot and log compaction under the crash too.
			p := startProc(t, dir, "--backend", be, "--snapshot-count", "500")
			type ack struct {
				value string
				index uint64
			}
			var mu sync.Mutex
			acked := map[string]ack{}
			writes := 0
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					c := &http.Client{Timeout: 5 * time.Second}
					for n := 0; ctx.Err() == nil && n < 100000; n++ {
						key := fmt.Sprintf("/crash/w%d/k%d", w, n%50) // overwrites too
						val := fmt.Sprintf("v%d", n)
						idx, err := put(c, p.url, key, val)
						if err != nil {
							return // the kill landed
						}
						mu.Lock()
						acked[key] = ack{val, idx}
						writes++
						mu.Unlock()
					}
				}(w)
			}
			time.Sleep(1500 * time.Millisecond)
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.cmd.Wait()
			cancel()
			wg.Wait()
			if len(acked) < 100 {
				t.Fatalf("only %d keys acknowledged before the kill: load did not run", len(acked))
			}
			p2 := startProc(t, dir, "--backend", be)
			c := &http.Client{Timeout: 5 * time.Second}
			for key, a := range acked {
				n, status, err := get(c, p2.url, key)
				if err != nil || status != 200 {
					t.Fatalf("acknowledged %s lost after kill -9: status %d err %v", key, status, err)
				}
				// A later write may have landed but not been acknowledged;
				// what was acknowledged is never older than what is there.
				if n.ModifiedIndex < a.index || (n.ModifiedIndex == a.index && n.Value != a.value) {
					t.Fatalf("%s: have %q@%d, acknowledged %q@%d", key, n.Value, n.ModifiedIndex, a.value, a.index)
				}
			}
			if _, err := put(c, p2.url, "/after/restart", "ok"); err != nil {
				t.Fatalf("write after restart: %v", err)
			}
			t.Logf("%s: %d acknowledged writes; the last of each of %d keys verified after SIGKILL", be, writes, len(acked))
		})
	}
}

// TestTornWALTailIsCut simulates a torn write: the last record of the
// raft log loses its final bytes (as when power fails mid-write, before
// the fsync that would have acknowledged it). Restart must detect it by
// checksum, cut it, never apply it, keep everything before it, and serve.
func TestTornWALTailIsCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server")
	}
	dir := t.TempDir()
	p := startProc(t, dir)
	c := &http.Client{Timeout: 5 * time.Second}
	const n = 50
	for i := 1; i <= n; i++ {
		if _, err := put(c, p.url, fmt.Sprintf("/torn/k%d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	segs, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no WAL segment found")
	}
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end-- // the preallocated, never-written tail
	}
	if end < 16 {
		t.Fatalf("segment %s holds no records", last)
	}
	// Tear the final record: its last bytes never reached the disk.
	f, err := os.OpenFile(last, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4), int64(end-4)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	p2 := startProc(t, dir)
	for i := 1; i < n; i++ {
		node, status, err := get(c, p2.url, fmt.Sprintf("/torn/k%d", i))
		if err != nil || status != 200 || node.Value != fmt.Sprint(i) {
			t.Fatalf("k%d after torn tail: %+v status %d err %v", i, node, status, err)
		}
	}
	if _, status, _ := get(c, p2.url, fmt.Sprintf("/torn/k%d", n)); status != 404 {
		t.Fatalf("the torn entry was applied: GET k%d answered %d", n, status)
	}
	if _, err := put(c, p2.url, "/torn/after", "ok"); err != nil {
		t.Fatalf("write after cutting the torn tail: %v", err)
	}
	if node, status, _ := get(c, p2.url, "/torn/after"); status != 200 || node.ModifiedIndex != n {
		t.Fatalf("next write took index %d (status %d), want %d: the torn entry's index is reused", node.ModifiedIndex, status, n)
	}
}
