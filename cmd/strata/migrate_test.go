package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/server"
)

// member is a strata run in-process (real flags, listeners, raft, data
// dir) that the test stops when it wants.
type member struct {
	url  string
	stop func() error
}

func startMember(t *testing.T, dataDir, backend string, extra ...string) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := append([]string{"--data-dir", dataDir, "--backend", backend, "--listen-client-urls", "http://127.0.0.1:0", "--log-level", "error"}, extra...)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("strata on %s did not start: %v (run: %v)", dataDir, err, <-done)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`on (http://[0-9.:]+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no URL in ready line %q", line)
	}
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return &member{url: m[1], stop: stop}
}

type response struct {
	status    int
	body      string
	etcdIndex string
}

func request(t *testing.T, method, u string, form url.Values) response {
	t.Helper()
	return do(t, "", call{method: method, path: u, form: form})
}

type written struct {
	value            string
	created, modfied uint64
}

// fill writes a mix of what a v2 store holds: plain keys (some updated,
// some deleted, one empty, one non-ASCII), nested directories, a directory
// and a key with TTLs, in-order keys and a hidden key. It returns the
// last write of each live key as acknowledged.
func fill(t *testing.T, base string, n int) map[string]written {
	t.Helper()
	acked := map[string]written{}
	set := func(method, key string, form url.Values) {
		r := request(t, method, base+"/v2/keys"+key, form)
		if r.status != 200 && r.status != 201 {
			t.Fatalf("%s %s: %d %s", method, key, r.status, r.body)
		}
		var ev struct {
			Action string
			Node   struct {
				Key                         string
				Value                       string
				Dir                         bool
				CreatedIndex, ModifiedIndex uint64
			}
		}
		if err := json.Unmarshal([]byte(r.body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Action == "delete" {
			delete(acked, ev.Node.Key)
		} else if !ev.Node.Dir {
			acked[ev.Node.Key] = written{ev.Node.Value, ev.Node.CreatedIndex, ev.Node.ModifiedIndex}
		}
	}
	for i := range n {
		set("PUT", fmt.Sprintf("/app/d%d/k%03d", i%5, i), url.Values{"value": {fmt.Sprintf("value %d", i)}})
	}
	for i := 0; i < n; i += 7 {
		set("PUT", fmt.Sprintf("/app/d%d/k%03d", i%5, i), url.Values{"value": {fmt.Sprintf("updated %d", i)}})
	}
	for i := 3; i < n; i += 11 {
		set("DELETE", fmt.Sprintf("/app/d%d/k%03d", i%5, i), nil)
	}
	set("PUT", "/empty", url.Values{"value": {""}})
	set("PUT", "/unicode", url.Values{"value": {"héllo wörld ✓ 日本"}})
	set("PUT", "/_hidden", url.Values{"value": {"hidden"}})
	set("PUT", "/ttl/key", url.Values{"value": {"expires in an hour"}, "ttl": {"3600"}})
	set("PUT", "/ttldir", url.Values{"dir": {"true"}, "ttl": {"7200"}})
	for i := range 3 {
		set("POST", "/queue", url.Values{"value": {fmt.Sprintf("job%d", i)}})
	}
	set("PUT", "/app/d0/k000?prevValue=updated%200", url.Values{"value": {"swapped"}})
	return acked
}

var ttlField = regexp.MustCompile(`,"ttl":\d+`)

// dump is the whole tree (TTL countdowns removed, as they tick) and the
// X-Etcd-Index it was read at.
func dump(t *testing.T, base string) (string, string) {
	t.Helper()
	r := request(t, "GET", base+"/v2/keys/?recursive=true&sorted=true", nil)
	if r.status != 200 {
		t.Fatalf("GET /: %d %s", r.status, r.body)
	}
	return ttlField.ReplaceAllString(r.body, ""), r.etcdIndex
}

// storeKeys is how many backend keys the tree in body takes: a node record
// for every key and directory (the root included), one TTL index entry per
// node with an expiration, and the store index.
func storeKeys(t *testing.T, body string) int {
	t.Helper()
	// nodes, the root, TTL index entries, the store index, and the
	// single member's record (replicated cluster metadata)
	return strings.Count(body, `"key":`) + 1 + strings.Count(body, `"expiration":`) + 1 + 1
}

func runMigrateCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb strings.Builder
	err := migrate(context.Background(), args, &out, &errb)
	if errb.Len() > 0 {
		t.Logf("migrate stderr: %s", errb.String())
	}
	return out.String(), err
}

var doneLine = regexp.MustCompile(`(?m)^strata migrate: done: (\d+) keys \(.*\) copied from .* and verified; sha256 [0-9a-f]{16}; applied index (\d+); raft log and snapshots: \d+ files, [0-9.]+ MiB; ([0-9.]+)s, (\d+) keys/s$`)

// TestMigrate copies a stopped member to each other backend and starts the
// copy: the same tree, the same indexes, and it goes on from there.
func TestMigrate(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"memory", "bbolt"},
		{"bbolt", "badger"},
		{"badger", "memory"},
	} {
		t.Run(tc.from+"-to-"+tc.to, func(t *testing.T) {
			a, b := t.TempDir(), filepath.Join(t.TempDir(), "new")
			// A small snapshot count: snapshots, a released log and
			// entries after the newest snapshot all take part.
			m := startMember(t, a, tc.from, "--snapshot-count", "40")
			acked := fill(t, m.url, 200)
			want, wantIndex := dump(t, m.url)
			if err := m.stop(); err != nil {
				t.Fatal(err)
			}
			snaps, _ := filepath.Glob(filepath.Join(a, "member", "snap", "*.snap"))
			if len(snaps) == 0 {
				t.Fatal("the source has no snapshot")
			}

			out, err := runMigrateCmd(t, "--from-dir", a, "--to-dir", b, "--backend", tc.to)
			if err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			d := doneLine.FindStringSubmatch(out)
			if d == nil {
				t.Fatalf("no summary line in\n%s", out)
			}
			if keys, _ := strconv.Atoi(d[1]); keys != storeKeys(t, want) {
				t.Errorf("summary says %d keys, the tree holds %d", keys, storeKeys(t, want))
			}
			if got, _ := os.ReadFile(filepath.Join(b, "backend")); string(got) != tc.to+"\n" {
				t.Errorf("%s/backend = %q", b, got)
			}
			if _, err := os.Stat(filepath.Join(b, "MIGRATING")); !os.IsNotExist(err) {
				t.Errorf("MIGRATING marker left: %v", err)
			}

			m2 := startMember(t, b, tc.to)
			got, gotIndex := dump(t, m2.url)
			if got != want || gotIndex != wantIndex {
				t.Fatalf("migrated member: X-Etcd-Index %s, tree\n%s\nwant X-Etcd-Index %s, tree\n%s", gotIndex, got, wantIndex, want)
			}
			c := &http.Client{Timeout: 5 * time.Second}
			for key, w := range acked {
				var ev struct{ Node nodeJSON }
				r := request(t, "GET", m2.url+"/v2/keys"+key, nil)
				json.Unmarshal([]byte(r.body), &ev)
				if r.status != 200 || ev.Node.Value != w.value || ev.Node.ModifiedIndex != w.modfied || !strings.Contains(r.body, fmt.Sprintf(`"createdIndex":%d`, w.created)) {
					t.Fatalf("%s on the copy: %d %s, acknowledged %+v", key, r.status, r.body, w)
				}
			}
			idx, err := put(c, m2.url, "/after/migrate", "ok")
			if wi, _ := strconv.ParseUint(wantIndex, 10, 64); err != nil || idx != wi+1 {
				t.Fatalf("first write on the copy: index %d err %v, want index %d", idx, err, wi+1)
			}
			if err := m2.stop(); err != nil {
				t.Fatal(err)
			}
			// The source is intact and still starts on its own backend.
			m3 := startMember(t, a, tc.from)
			if got, gotIndex := dump(t, m3.url); got != want || gotIndex != wantIndex {
				t.Fatalf("source after migrate: X-Etcd-Index %s, tree\n%s", gotIndex, got)
			}
		})
	}
}

// TestMigrateProgress: while a phase runs, the keys done so far are
// printed every migrateProgressEvery; nothing between phases.
func TestMigrateProgress(t *testing.T) {
	saved := migrateProgressEvery
	migrateProgressEvery = 5 * time.Millisecond
	defer func() { migrateProgressEvery = saved }()
	var mu sync.Mutex
	var out strings.Builder
	p := startProgress(lockedWriter{&mu, &out})
	p.phase("copied")
	for range 1000 {
		p.add([]byte("key"), []byte("value"))
	}
	time.Sleep(50 * time.Millisecond)
	p.phase("")
	time.Sleep(20 * time.Millisecond)
	p.stop()
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("progress printed %q", out.String())
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^strata migrate: copied \d+ keys \(0\.0 MiB\), \d+ keys/s$`).MatchString(l) {
			t.Fatalf("progress line %q", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "strata migrate: copied 1000 keys ") {
		t.Fatalf("last progress line %q, want 1000 keys", last)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestMigrateRefusals: a running source, a non-empty target, bad flags;
// each is one line and leaves nothing behind.
func TestMigrateRefusals(t *testing.T) {
	a := t.TempDir()
	m := startMember(t, a, "bbolt")
	fill(t, m.url, 5)
	b := filepath.Join(t.TempDir(), "new")
	check := func(want string, args ...string) {
		t.Helper()
		_, err := runMigrateCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("migrate %v: %v, want one line mentioning %q", args, err, want)
		}
	}
	check("in use by another process", "--from-dir", a, "--to-dir", b, "--backend", "badger")
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("a refused migrate created %s: %v", b, err)
	}
	m.stop()

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600)
	check("is not empty", "--from-dir", a, "--to-dir", full, "--backend", "badger")
	if got, err := os.ReadFile(filepath.Join(full, "keep")); err != nil || string(got) != "x" {
		t.Errorf("non-empty target touched: %q %v", got, err)
	}
	check("not a strata data dir", "--from-dir", t.TempDir(), "--to-dir", b, "--backend", "badger")
	check("no such file or directory", "--from-dir", filepath.Join(a, "nope"), "--to-dir", b, "--backend", "badger")
	check(`unknown backend "rocks"`, "--from-dir", a, "--to-dir", b, "--backend", "rocks")
	check("are all required", "--from-dir", a, "--to-dir", b)
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("a refused migrate created %s: %v", b, err)
	}

	// Starting the source on the wrong backend names the way out.
	err := run(context.Background(), []string{"--data-dir", a, "--backend", "badger", "--listen-client-urls", "http://127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "strata migrate --from-dir "+a) {
		t.Errorf("start on the wrong backend: %v", err)
	}
}

// TestMigrateAfterKill9: the binary's migrate subcommand on a memory member
// killed with SIGKILL (its whole state is the snapshot and the log, whose
// recorded commit index may lag) keeps every acknowledged write.
func TestMigrateAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server")
	}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "new")
	p := startProc(t, a, "--backend", "memory", "--snapshot-count", "100")
	c := &http.Client{Timeout: 5 * time.Second}
	acked := map[string]uint64{}
	for i := range 250 {
		key := fmt.Sprintf("/k/%d", i%120)
		idx, err := put(c, p.url, key, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		acked[key] = idx
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	out, err := exec.Command(strataBinary(t), "migrate", "--from-dir", a, "--to-dir", b, "--backend", "bbolt").CombinedOutput()
	if err != nil || !doneLine.Match(out) {
		t.Fatalf("strata migrate: %v\n%s", err, out)
	}
	p2 := startProc(t, b, "--backend", "bbolt")
	for key, idx := range acked {
		n, status, err := get(c, p2.url, key)
		if err != nil || status != 200 || n.ModifiedIndex != idx {
			t.Fatalf("%s on the copy: %+v status %d err %v, acknowledged at %d", key, n, status, err, idx)
		}
	}
}

// TestUnsafeNoFsyncEndToEnd: --unsafe-no-fsync, set on the real binary,
// keeps every write off fsync/fdatasync (counted with strace attached to
// the running server), while the default pays one per sequential write;
// and the start-up warning names the risk.
func TestUnsafeNoFsyncEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server and traces it")
	}
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, noFsync := range []bool{true, false} {
		var extra []string
		if noFsync {
			extra = []string{"--unsafe-no-fsync"}
		}
		p := startProc(t, t.TempDir(), extra...)
		trace := filepath.Join(t.TempDir(), "trace")
		st := exec.Command(straceBin, "-f", "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,sync", "-o", trace, "-p", strconv.Itoa(p.cmd.Process.Pid))
		stderr, _ := st.StderrPipe()
		if err := st.Start(); err != nil {
			t.Skipf("strace: %v", err)
		}
		attached := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			ok := false
			for sc.Scan() {
				if !ok && strings.Contains(sc.Text(), "attached") {
					ok = true
					attached <- true
				}
			}
			if !ok {
				attached <- false
			}
		}()
		select {
		case ok := <-attached:
			if !ok {
				st.Wait()
				t.Skip("strace could not attach (ptrace not permitted?)")
			}
		case <-time.After(10 * time.Second):
			st.Process.Kill()
			st.Wait()
			t.Skip("strace did not attach within 10s")
		}
		const writes = 20
		for i := range writes {
			if _, err := put(c, p.url, fmt.Sprintf("/k%d", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		st.Process.Signal(syscall.SIGINT) // detach; the server runs on
		st.Wait()
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		syncs := regexp.MustCompile(`(?m)\b(fsync|fdatasync|sync_file_range|syncfs|sync)\(`).FindAll(b, -1)
		if noFsync && len(syncs) != 0 {
			t.Errorf("--unsafe-no-fsync: %d sync calls during %d writes:\n%s", len(syncs), writes, b)
		}
		if !noFsync && len(syncs) < writes {
			t.Errorf("default: %d sync calls during %d sequential writes, want at least one each", len(syncs), writes)
		}
		t.Logf("unsafe-no-fsync=%v: %d sync calls for %d writes", noFsync, len(syncs), writes)
	}

	// The warning at start-up.
	var mu sync.Mutex
	var logs strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0", "--unsafe-no-fsync"}, pw, lockedWriter{&mu, &logs})
		pw.Close()
	}()
	bufio.NewReader(pr).ReadString('\n')
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "--unsafe-no-fsync is set: a power loss or kernel crash can lose acknowledged writes") {
		t.Errorf("no start-up warning in\n%s", logs.String())
	}
}

// TestMigrateLarge measures migrate on a 100,000-key data dir (memory to
// bbolt, then bbolt to badger). Opt-in: STRATA_LARGE=1 (or =N keys).
func TestMigrateLarge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STRATA_LARGE"))
	switch {
	case os.Getenv("STRATA_LARGE") == "":
		t.Skip("set STRATA_LARGE=1 (or a key count) to run")
	case n <= 1:
		n = 100000
	}
	a := t.TempDir()
	peer := []string{"http://127.0.0.1:2380"}
	s, err := server.Start(server.Config{Name: "m", DataDir: a, Backend: "memory", PeerURLs: peer,
		InitialPeers: map[string][]string{"m": peer}, UnsafeNoFsync: true, SnapshotCount: 10000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				c := engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/large/d%02d/key-%08d", i%64, i), Value: strings.Repeat("v", 100)}
				if _, err := s.Propose(context.Background(), c); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	b, c := filepath.Join(t.TempDir(), "b"), filepath.Join(t.TempDir(), "c")
	for _, step := range [][3]string{{a, b, "bbolt"}, {b, c, "badger"}} {
		out, err := runMigrateCmd(t, "--from-dir", step[0], "--to-dir", step[1], "--backend", step[2])
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Log(strings.TrimSpace(out))
	}
}
