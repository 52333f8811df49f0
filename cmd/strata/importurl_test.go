package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond every 20 ms for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// record sends every call to base and keeps the answers; a watch etcd has
// nothing for within 2 s is dropped from calls.
func record(t *testing.T, base string, calls []call) ([]call, []response) {
	t.Helper()
	var want []response
	kept := calls[:0:0]
	for _, c := range calls {
		if strings.Contains(c.path, "wait=true") {
			r, ok := tryDo(base, c, 2*time.Second)
			if !ok {
				t.Logf("dropped %s: etcd has no event for it", c.path)
				continue
			}
			want, kept = append(want, r), append(kept, c)
			continue
		}
		want, kept = append(want, do(t, base, c)), append(kept, c)
	}
	return kept, want
}

// compareWith replays calls against base and reports every answer that is
// not etcd's (bar the TTL countdown).
func compareWith(t *testing.T, name, base string, calls []call, want []response) {
	t.Helper()
	for i, c := range calls {
		got := do(t, base, c)
		if got.status != want[i].status || remainingTTL.ReplaceAllString(got.body, "") != remainingTTL.ReplaceAllString(want[i].body, "") || got.etcdIndex != want[i].etcdIndex {
			t.Errorf("%s: %s %s as %q:\n got %d X-Etcd-Index %s %s\nwant %d X-Etcd-Index %s %s",
				name, c.method, c.path, c.user, got.status, got.etcdIndex, got.body, want[i].status, want[i].etcdIndex, want[i].body)
		}
	}
}

// A live import follows a running etcd 3.4 while it takes writes of every
// kind, cuts over when told, and serves what etcd serves at the same
// indexes, on every backend.
func TestImportEtcdFromURL(t *testing.T) {
	dir := t.TempDir()
	e := startEtcd(t, etcd34(t), filepath.Join(dir, "etcd"))
	w := writer(t, e.url)
	// Before the import's GET.
	for i := 0; i < 20; i++ {
		w("PUT", fmt.Sprintf("/v2/keys/k/%d", i), "value", fmt.Sprint("v", i))
	}
	w("PUT", "/v2/keys/d/sub/x", "value", "x")
	w("PUT", "/v2/keys/_before", "value", "not carried") // hidden: no listing shows it
	w("PUT", "/v2/keys/long", "value", "l", "ttl", "600")
	w("PUT", "/v2/keys/refreshed", "value", "r", "ttl", "600")
	w("PUT", "/v2/keys/ttldir", "dir", "true", "ttl", "600")
	w("POST", "/v2/keys/queue", "value", "job0")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type run struct {
		backend, target string
		out, errb       *syncBuffer
		done            chan error
	}
	var runs []*run
	for _, backend := range []string{"memory", "bbolt", "badger"} {
		r := &run{backend: backend, target: filepath.Join(dir, backend), out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan error, 1)}
		go func() {
			r.done <- importEtcd(ctx, []string{"--from-url", e.url, "--data-dir", r.target, "--backend", r.backend}, r.out, r.errb)
		}()
		runs = append(runs, r)
	}
	for _, r := range runs {
		waitFor(t, r.backend+" import to begin following", func() bool { return strings.Contains(r.errb.String(), "following etcd's events") })
	}
	start := w("GET", "/v2/keys/_probe").etcdIndex

	// While the imports follow: every action, hidden nodes (found in etcd's
	// history), TTL refreshes (no watch is told), an expiry.
	for i := 0; i < 300; i++ {
		w("PUT", fmt.Sprintf("/v2/keys/bulk/%d", i%50), "value", fmt.Sprint("b", i))
	}
	w("PUT", "/v2/keys/k/1", "value", "swapped", "prevValue", "v1")
	w("PUT", "/v2/keys/k/2", "value", "nope", "prevValue", "wrong")
	w("DELETE", "/v2/keys/k/4", "prevValue", "v4")
	w("DELETE", "/v2/keys/k/6")
	w("PUT", "/v2/keys/gone/a", "value", "a")
	w("DELETE", "/v2/keys/gone?recursive=true")
	w("PUT", "/v2/keys/k/7?prevExist=true", "value", "updated")
	w("PUT", "/v2/keys/new?prevExist=false", "value", "created")
	w("POST", "/v2/keys/queue", "value", "job1")
	w("PUT", "/v2/keys/_hidden", "value", "h")
	w("PUT", "/v2/keys/_hdir/in", "value", "i")
	w("PUT", "/v2/keys/d/_h2", "value", "h2")
	w("PUT", "/v2/keys/_hidden", "value", "h-again", "prevValue", "h")
	w("PUT", "/v2/keys/short", "value", "s", "ttl", "1")
	w("PUT", "/v2/keys/long", "ttl", "900", "refresh", "true", "prevExist", "true")
	w("PUT", "/v2/keys/refreshed", "ttl", "800", "refresh", "true", "prevExist", "true")
	w("PUT", "/v2/keys/refreshed", "value", "r2", "prevValue", "r", "ttl", "700") // its prevNode shows the refresh
	w("PUT", "/v2/keys/ttldir", "dir", "true", "ttl", "500", "prevExist", "true")
	time.Sleep(2500 * time.Millisecond) // etcd expires /short
	// Expires after the cut-over: on Strata, at its first expiry pass.
	if r := w("PUT", "/v2/keys/later", "value", "l", "ttl", "20"); r.status != 201 {
		t.Fatalf("PUT later: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(20 * time.Second)

	var calls []call
	get := func(p string) { calls = append(calls, call{method: "GET", path: "/v2/keys" + p}) }
	for _, p := range []string{"/?sorted=true", "/?recursive=true&sorted=true", "/k?recursive=true&sorted=true", "/d?recursive=true&sorted=true",
		"/_hidden", "/d/_h2", "/_hdir", "/_hdir/in", "/queue?sorted=true", "/short", "/long", "/refreshed", "/ttldir", "/later",
		"/gone", "/k/4", "/k/6", "/new", "/k/1", "/k/2", "/k/7", "/bulk?recursive=true&sorted=true"} {
		get(p)
	}
	var si uint64
	fmt.Sscan(start, &si)
	// Watches from inside the followed window, answered from history.
	for _, from := range []uint64{si + 1, si + 150, si + 300, si + 301} {
		get(fmt.Sprintf("/?wait=true&recursive=true&waitIndex=%d", from))
	}
	for _, p := range []string{"/k/1", "/_hidden", "/short", "/refreshed", "/gone/a", "/queue"} {
		get(fmt.Sprintf("%s?wait=true&recursive=true&waitIndex=%d", p, si+1))
	}
	calls, want := record(t, e.url, calls)
	etcdIndex := want[0].etcdIndex

	cancel() // the operator's Ctrl-C: cut over
	for _, r := range runs {
		if err := <-r.done; err != nil {
			t.Fatalf("%s import: %v\n%s", r.backend, err, r.errb.String())
		}
		t.Logf("%s: %s", r.backend, r.out.String())
	}
	e.stop()
	if time.Now().After(deadline.Add(-5 * time.Second)) {
		t.Fatal("the imports took longer than /later's TTL; the comparison would race its expiry")
	}
	urls := map[string]string{}
	for _, r := range runs {
		urls[r.backend] = startMember(t, r.target, r.backend).url
	}
	for backend, u := range urls {
		compareWith(t, backend, u, calls, want)
		// What the API could not show: a hidden key older than the GET,
		// and history before it.
		if got := do(t, u, call{method: "GET", path: "/v2/keys/_before"}); got.status != 404 {
			t.Errorf("%s: /_before (hidden, before the GET): %d %s, want 404", backend, got.status, got.body)
		}
		got := do(t, u, call{method: "GET", path: fmt.Sprintf("/v2/keys/?wait=true&waitIndex=%d", si)})
		var ee struct{ ErrorCode int }
		if json.Unmarshal([]byte(got.body), &ee); got.status != 400 || ee.ErrorCode != 401 {
			t.Errorf("%s: watch from the GET's index %d: %d %s, want 400 with errorCode 401", backend, si, got.status, got.body)
		}
	}
	time.Sleep(time.Until(deadline) + 1500*time.Millisecond)
	var n uint64
	fmt.Sscan(etcdIndex, &n)
	for backend, u := range urls {
		got := do(t, u, call{method: "GET", path: "/v2/keys/later"})
		wantBody := fmt.Sprintf(`{"errorCode":100,"message":"Key not found","cause":"/later","index":%d}`, n+1)
		if got.status != 404 || strings.TrimSpace(got.body) != wantBody {
			t.Errorf("%s: /later after its deadline: %d %s, want 404 %s", backend, got.status, got.body, wantBody)
		}
	}
}

// The live import as an operator runs it: a process, stopped for a while
// (SIGSTOP) as etcd takes more writes than the stream's socket buffers and
// etcd's 1000-event history hold, so etcd drops its watcher and it must
// begin again from a new GET; then SIGTERM cuts over.
func TestImportEtcdFromURLFallsBehind(t *testing.T) {
	dir := t.TempDir()
	e := startEtcd(t, etcd34(t), filepath.Join(dir, "etcd"))
	for i := 0; i < 10; i++ {
		do(t, e.url, call{method: "PUT", path: fmt.Sprintf("/v2/keys/a/%d", i), form: url.Values{"value": {"x"}}})
	}
	target := filepath.Join(dir, "strata")
	var stdout, stderr syncBuffer
	cmd := exec.Command(strataBinary(t), "import-etcd", "--from-url", e.url, "--data-dir", target, "--backend", "bbolt", "--log-level", "info")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the import to follow", func() bool { return strings.Contains(stderr.String(), "following etcd's events") })
	cmd.Process.Signal(syscall.SIGSTOP)
	big := strings.Repeat("x", 8<<10)
	for i := 0; i < 3000; i++ {
		do(t, e.url, call{method: "PUT", path: fmt.Sprintf("/v2/keys/b/%d", i%100), form: url.Values{"value": {fmt.Sprint(i, big)}}})
	}
	cmd.Process.Signal(syscall.SIGCONT)
	defer func() {
		if t.Failed() {
			t.Logf("import's stderr:\n%s", stderr.String())
		}
	}()
	waitFor(t, "the import to begin again", func() bool { return strings.Contains(stderr.String(), "beginning again") })
	do(t, e.url, call{method: "PUT", path: "/v2/keys/c", form: url.Values{"value": {"after"}}})
	calls, want := record(t, e.url, []call{
		{method: "GET", path: "/v2/keys/?recursive=true&sorted=true"},
		{method: "GET", path: "/v2/keys/c"},
	})
	waitFor(t, "the import to catch up", func() bool {
		return strings.Contains(stderr.String(), fmt.Sprintf("index %s (etcd %s)", want[0].etcdIndex, want[0].etcdIndex))
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), " 0 restarts") {
		t.Errorf("summary does not count the restart: %s", stdout.String())
	}
	e.stop()
	compareWith(t, "bbolt", startMember(t, target, "bbolt").url, calls, want)
}

func TestImportEtcdFromURLRefusals(t *testing.T) {
	dir := t.TempDir()
	e := startEtcd(t, etcd34(t), filepath.Join(dir, "etcd"))
	imp := func(args ...string) error {
		return importEtcd(t.Context(), append(args, "--backend", "bbolt"), os.Stderr, os.Stderr)
	}
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), []byte("keep"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both sources", []string{"--from-url", e.url, "--etcd-data-dir", dir, "--data-dir", filepath.Join(dir, "t1")}, "give one of --etcd-data-dir and --from-url"},
		{"non-empty target", []string{"--from-url", e.url, "--data-dir", nonEmpty}, "is not empty"},
		{"nothing listening", []string{"--from-url", "http://127.0.0.1:1", "--data-dir", filepath.Join(dir, "t2")}, "connection refused"},
		{"not a URL", []string{"--from-url", "etcd:2379", "--data-dir", filepath.Join(dir, "t3")}, "from-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := imp(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// v2 auth on: refused (the API hides password hashes) unless told.
	for _, u := range []struct{ path, body string }{{"/v2/auth/users/root", `{"user":"root","password":"rootpw"}`}} {
		if r := do(t, e.url, call{method: "PUT", path: u.path, json: u.body}); r.status != 201 {
			t.Fatalf("PUT %s: %d %s", u.path, r.status, r.body)
		}
	}
	if r := do(t, e.url, call{method: "PUT", path: "/v2/auth/enable"}); r.status != 200 {
		t.Fatalf("auth enable: %d %s", r.status, r.body)
	}
	do(t, e.url, call{method: "PUT", path: "/v2/keys/secret", user: "root:rootpw", form: url.Values{"value": {"s"}}})
	if err := imp("--from-url", e.url, "--data-dir", filepath.Join(dir, "t4")); err == nil || !strings.Contains(err.Error(), "v2 auth enabled") {
		t.Errorf("auth enabled: got %v, want a refusal naming v2 auth", err)
	}
	for _, p := range []string{"t1", "t2", "t3", "t4"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("target %s was created (%v)", p, err)
		}
	}
	// With --skip-auth and root's credentials the keys come across.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var errb syncBuffer
	target := filepath.Join(dir, "t5")
	go func() {
		done <- importEtcd(ctx, []string{"--from-url", e.url, "--skip-auth", "--username", "root:rootpw", "--data-dir", target, "--backend", "memory"}, os.Stderr, &errb)
	}()
	waitFor(t, "the import to follow", func() bool { return strings.Contains(errb.String(), "following etcd's events") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("--skip-auth import: %v %s", err, errb.String())
	}
	e.stop()
	got := do(t, startMember(t, target, "memory").url, call{method: "GET", path: "/v2/keys/secret"})
	if got.status != 200 || !strings.Contains(got.body, `"value":"s"`) {
		t.Errorf("/secret after a --skip-auth import: %d %s", got.status, got.body)
	}
}
