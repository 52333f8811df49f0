package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// etcdProc is a real etcd member with the v2 API on loopback ports.
type etcdProc struct {
	url, dataDir string
	cmd          *exec.Cmd
}

// etcd34 is Debian's etcd-server (3.4) from PATH; the live-import tests
// need only it.
func etcd34(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (Debian etcd-server): the import test needs a real etcd 3.4")
	}
	return bin
}

// eachEtcd runs f once per etcd release whose data dir the importer must
// read: 3.4 from PATH and 3.5 from $STRATA_ETCD35 (.ci/run builds it from
// go.etcd.io/etcd/server/v3@v3.5.x). A missing release skips its subtest.
func eachEtcd(t *testing.T, f func(t *testing.T, bin string)) {
	t.Run("etcd3.4", func(t *testing.T) { f(t, etcd34(t)) })
	t.Run("etcd3.5", func(t *testing.T) {
		bin := os.Getenv("STRATA_ETCD35")
		if bin == "" {
			t.Skip("STRATA_ETCD35 is not set: no etcd 3.5 binary (.ci/run builds one)")
		}
		f(t, bin)
	})
}

func startEtcd(t *testing.T, bin, dataDir string, flags ...string) *etcdProc {
	t.Helper()
	p := freePorts(t, 2)
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", p[0]), fmt.Sprintf("http://127.0.0.1:%d", p[1])
	if flags == nil {
		flags = []string{"--enable-v2=true"}
	}
	cmd := exec.Command(bin, append(flags, "--snapshot-count", "50", "--data-dir", dataDir,
		"--listen-client-urls", cu, "--advertise-client-urls", cu, "--listen-peer-urls", pu,
		"--initial-advertise-peer-urls", pu, "--initial-cluster", "default="+pu)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &etcdProc{url: cu, dataDir: dataDir, cmd: cmd}
	t.Cleanup(e.stop)
	for i := 0; ; i++ {
		resp, err := http.Get(cu + "/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 100 {
			t.Fatalf("etcd on %s did not come up: %v", cu, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e
}

func (e *etcdProc) stop() {
	if e.cmd.ProcessState != nil || e.cmd.Process == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	e.cmd.Wait()
}

// call is one recorded v2 request and what etcd answered.
type call struct {
	method, path, user string
	form               url.Values
	json               string // a JSON body (the auth API) instead of form
}

func do(t *testing.T, base string, c call) response {
	t.Helper()
	body, ctype := c.form.Encode(), "application/x-www-form-urlencoded"
	if c.json != "" {
		body, ctype = c.json, "application/json"
	}
	req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if u, p, ok := strings.Cut(c.user, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, string(b), resp.Header.Get("X-Etcd-Index")}
}

// writer returns a form writer to base: w("PUT", path, "value", "v", "ttl", "5").
func writer(t *testing.T, base string) func(method, path string, kv ...string) response {
	return func(method, path string, kv ...string) response {
		t.Helper()
		f := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		return do(t, base, call{method: method, path: path, form: f})
	}
}

// remainingTTL is the remaining TTL, the one part of a GET that moves with the
// clock between the two readings.
var remainingTTL = regexp.MustCompile(`"ttl":[0-9]+`)

func TestImportEtcdDataDir(t *testing.T) { eachEtcd(t, testImportEtcdDataDir) }

func testImportEtcdDataDir(t *testing.T, bin string) {
	dir := t.TempDir()
	etcdDir := filepath.Join(dir, "etcd")
	e := startEtcd(t, bin, etcdDir)
	const root = "root:rootpw"
	w := writer(t, e.url)
	// Enough writes that etcd (--snapshot-count 50) snapshots and keeps
	// more in the WAL after it.
	for i := 0; i < 70; i++ {
		w("PUT", fmt.Sprintf("/v2/keys/k/%d", i), "value", fmt.Sprint("v", i))
	}
	w("PUT", "/v2/keys/d/sub", "dir", "true")
	w("PUT", "/v2/keys/d/sub/x", "value", "x")
	w("PUT", "/v2/keys/_hidden", "value", "h")
	w("PUT", "/v2/keys/d/_hid2", "value", "h2")
	w("PUT", "/v2/keys/_hdir/in", "value", "i")
	for i := 0; i < 3; i++ {
		w("POST", "/v2/keys/queue", "value", fmt.Sprint("job", i))
	}
	w("PUT", "/v2/keys/k/1", "value", "swapped", "prevValue", "v1")
	w("PUT", "/v2/keys/k/2", "value", "nope", "prevValue", "wrong")
	w("PUT", "/v2/keys/k/3", "value", "byindex", "prevIndex", "7")
	w("DELETE", "/v2/keys/k/4", "prevValue", "v4")
	w("DELETE", "/v2/keys/k/5", "prevIndex", "1")
	w("DELETE", "/v2/keys/k/6")
	w("PUT", "/v2/keys/gone/a", "value", "a")
	w("DELETE", "/v2/keys/gone?recursive=true")
	w("PUT", "/v2/keys/k/7?prevExist=true", "value", "updated")
	w("PUT", "/v2/keys/k/8?prevExist=false", "value", "exists")
	w("PUT", "/v2/keys/new?prevExist=false", "value", "created")
	w("PUT", "/v2/keys/short", "value", "s", "ttl", "1")
	w("PUT", "/v2/keys/long", "value", "l", "ttl", "600")
	w("PUT", "/v2/keys/ttldir", "dir", "true", "ttl", "600")
	w("PUT", "/v2/keys/long", "ttl", "900", "refresh", "true", "prevExist", "true")
	time.Sleep(2500 * time.Millisecond) // etcd's leader expires /short (a SYNC entry)
	for _, u := range []struct{ path, body string }{
		{"/v2/auth/users/root", `{"user":"root","password":"rootpw"}`},
		{"/v2/auth/roles/reader", `{"role":"reader","permissions":{"kv":{"read":["/k/*"],"write":[]}}}`},
		{"/v2/auth/users/alice", `{"user":"alice","password":"alicepw","roles":["reader"]}`},
	} {
		req, _ := http.NewRequest("PUT", e.url+u.path, strings.NewReader(u.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("PUT %s: %v %v", u.path, err, resp)
		}
		resp.Body.Close()
	}
	if r := do(t, e.url, call{method: "PUT", path: "/v2/auth/enable"}); r.status != 200 {
		t.Fatalf("auth enable: %d %s", r.status, r.body)
	}
	// Expires after etcd stops: on Strata, at its first expiry pass.
	if r := do(t, e.url, call{method: "PUT", path: "/v2/keys/later", user: root, form: url.Values{"value": {"l"}, "ttl": {"30"}}}); r.status != 201 {
		t.Fatalf("PUT later: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(30 * time.Second)

	// Every key (hidden ones named, as a listing skips them), sorted
	// listings (etcd lists from a Go map: unsorted order is random),
	// deleted keys, and logins.
	var calls []call
	get := func(p string) { calls = append(calls, call{method: "GET", path: "/v2/keys" + p, user: root}) }
	for _, p := range []string{"/?sorted=true", "/?recursive=true&sorted=true", "/k?recursive=true&sorted=true", "/d?recursive=true&sorted=true",
		"/_hidden", "/d/_hid2", "/_hdir", "/_hdir/in", "/queue?sorted=true", "/short", "/long", "/ttldir", "/later",
		"/gone", "/k/4", "/k/5", "/k/6", "/new", "/k/1", "/k/2", "/k/3", "/k/7", "/k/8"} {
		get(p)
	}
	for i := 0; i < 70; i++ {
		get(fmt.Sprintf("/k/%d", i))
	}
	// Watches answered from etcd's event history (snapshot and WAL parts).
	for _, p := range []string{"/k/1?wait=true&waitIndex=1", "/k/1?wait=true&waitIndex=6", "/k?wait=true&recursive=true&waitIndex=3",
		"/k?wait=true&recursive=true&waitIndex=60", "/short?wait=true&waitIndex=90", "/?wait=true&recursive=true&waitIndex=95",
		"/queue?wait=true&recursive=true&waitIndex=1", "/gone/a?wait=true&waitIndex=85", "/k/4?wait=true&waitIndex=60",
		"/long?wait=true&waitIndex=93", "/d?wait=true&recursive=true&waitIndex=1"} {
		get(p)
	}
	calls = append(calls,
		call{method: "GET", path: "/v2/keys/k/9", user: "alice:alicepw"},
		call{method: "GET", path: "/v2/keys/k/9", user: "alice:wrong"},
		call{method: "GET", path: "/v2/keys/d/sub", user: "alice:alicepw"},
		call{method: "PUT", path: "/v2/keys/k/9", user: "alice:alicepw", form: url.Values{"value": {"no"}}},
		call{method: "GET", path: "/v2/keys/k/9"},
		call{method: "GET", path: "/v2/auth/users", user: root},
		call{method: "GET", path: "/v2/auth/users/alice", user: root},
		call{method: "GET", path: "/v2/auth/roles", user: root},
	)
	calls, want := record(t, e.url, calls)
	etcdIndex := want[0].etcdIndex
	e.stop()

	// Importing a running etcd's dir is refused; this one is stopped.
	urls := map[string]string{}
	for _, backend := range []string{"memory", "bbolt", "badger"} {
		target := filepath.Join(dir, backend)
		var out, errb strings.Builder
		if err := importEtcd(t.Context(), []string{"--etcd-data-dir", etcdDir, "--data-dir", target, "--backend", backend}, &out, &errb); err != nil {
			t.Fatalf("import into %s: %v (%s)", backend, err, errb.String())
		}
		t.Logf("%s: %s", backend, out.String())
		urls[backend] = startMember(t, target, backend).url
	}
	if time.Now().After(deadline.Add(-time.Second)) {
		t.Fatal("imports took longer than /later's TTL; the comparison would race its expiry")
	}
	for backend, u := range urls {
		compareWith(t, backend, u, calls, want)
	}
	time.Sleep(time.Until(deadline) + 1500*time.Millisecond)
	for backend, u := range urls {
		got := do(t, u, call{method: "GET", path: "/v2/keys/later", user: root})
		var n uint64
		fmt.Sscan(etcdIndex, &n)
		wantBody := fmt.Sprintf(`{"errorCode":100,"message":"Key not found","cause":"/later","index":%d}`, n+1)
		if got.status != 404 || strings.TrimSpace(got.body) != wantBody {
			t.Errorf("%s: /later after its deadline: %d %s, want 404 %s", backend, got.status, got.body, wantBody)
		}
	}
	// The imported users and roles can be changed and removed, not only
	// read: each is where the auth API looks for it. (Writes, so after the
	// comparison with etcd's data dir; the answers are etcd 3.4.23's.)
	for backend, u := range urls {
		for _, st := range []struct {
			c    call
			want response
		}{
			{call{method: "PUT", path: "/v2/auth/users/alice", user: root, json: `{"user":"alice","revoke":["reader"]}`},
				response{200, `{"user":"alice","roles":[]}` + "\n", ""}},
			{call{method: "GET", path: "/v2/keys/k/9", user: "alice:alicepw"},
				response{401, `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}` + "\n", "0"}},
			{call{method: "DELETE", path: "/v2/auth/roles/reader", user: root}, response{200, "", ""}},
		} {
			if got := do(t, u, st.c); got != st.want {
				t.Errorf("%s: %s %s after the import: got %+v, want %+v", backend, st.c.method, st.c.path, got, st.want)
			}
		}
	}
}

// tryDo is do with a deadline, for a watch that may have nothing to say.
func tryDo(base string, c call, timeout time.Duration) (response, bool) {
	req, err := http.NewRequest(c.method, base+c.path, nil)
	if err != nil {
		return response{}, false
	}
	if u, p, ok := strings.Cut(c.user, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return response{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, false
	}
	return response{resp.StatusCode, string(b), resp.Header.Get("X-Etcd-Index")}, true
}

// copyDir copies an etcd data dir so each refusal case damages its own.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func TestImportEtcdRefusals(t *testing.T) { eachEtcd(t, testImportEtcdRefusals) }

func testImportEtcdRefusals(t *testing.T, bin string) {
	dir := t.TempDir()
	etcdDir := filepath.Join(dir, "etcd")
	e := startEtcd(t, bin, etcdDir)
	for i := 0; i < 60; i++ {
		do(t, e.url, call{method: "PUT", path: fmt.Sprintf("/v2/keys/k%d", i), form: url.Values{"value": {"v"}}})
	}
	imp := func(src, target string) error {
		return importEtcd(t.Context(), []string{"--etcd-data-dir", src, "--data-dir", target, "--backend", "bbolt"}, io.Discard, io.Discard)
	}
	// A running etcd holds locks on its WAL files.
	if err := imp(etcdDir, filepath.Join(dir, "t-locked")); err == nil || !strings.Contains(err.Error(), "locked by a running etcd") {
		t.Errorf("import of a running etcd's dir: %v, want a lock refusal", err)
	}
	e.stop()
	snaps, _ := filepath.Glob(filepath.Join(etcdDir, "member/snap/*.snap"))
	wals, _ := filepath.Glob(filepath.Join(etcdDir, "member/wal/*.wal"))
	if len(snaps) == 0 || len(wals) == 0 {
		t.Fatalf("etcd wrote no snapshot (%v) or WAL (%v)", snaps, wals)
	}
	cases := []struct {
		name   string
		damage func(d string) // d is the copy
		want   []string
	}{
		{"corrupt snapshot", func(d string) {
			p := filepath.Join(d, "member/snap", filepath.Base(snaps[len(snaps)-1]))
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, []string{filepath.Base(snaps[len(snaps)-1]), "crc mismatch", "offset"}},
		{"torn wal", func(d string) {
			p := filepath.Join(d, "member/wal", filepath.Base(wals[0]))
			b, _ := os.ReadFile(p)
			end := 0 // end of the records: the preallocated zeros start there
			for off := 0; off+8 <= len(b); {
				n := int(binary.LittleEndian.Uint64(b[off:]) & 0x00ffffffffffffff)
				if n == 0 {
					break
				}
				pad := int(b[off+7] & 0x7)
				if b[off+7]&0x80 == 0 {
					pad = 0
				}
				end, off = off+8+n+pad, off+8+n+pad
			}
			os.Truncate(p, int64(end-3)) // the last record loses its tail
		}, []string{filepath.Base(wals[0]), "torn record at offset"}},
		{"not an etcd dir", func(d string) { os.RemoveAll(filepath.Join(d, "member")) }, []string{"not an etcd data dir"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "etcd")
			copyDir(t, etcdDir, src)
			tc.damage(src)
			target := filepath.Join(t.TempDir(), "strata")
			err := imp(src, target)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want it to mention %q", err, w)
				}
			}
			if _, serr := os.Stat(target); !os.IsNotExist(serr) {
				t.Errorf("target %s was created (%v)", target, serr)
			}
		})
	}
	t.Run("non-empty target", func(t *testing.T) {
		target := t.TempDir()
		os.WriteFile(filepath.Join(target, "x"), []byte("keep"), 0o644)
		if err := imp(etcdDir, target); err == nil || !strings.Contains(err.Error(), "is not empty") {
			t.Errorf("got %v, want a non-empty target refusal", err)
		}
		if b, _ := os.ReadFile(filepath.Join(target, "x")); string(b) != "keep" {
			t.Errorf("target changed")
		}
		ents, _ := os.ReadDir(target)
		if len(ents) != 1 {
			t.Errorf("target has %d entries, want 1", len(ents))
		}
	})
	// The intact dir still imports.
	if err := imp(etcdDir, filepath.Join(dir, "ok")); err != nil {
		t.Errorf("intact dir: %v", err)
	}
}

// A member that only ever served v3 has nothing for Strata: refused.
func TestImportEtcdV3Only(t *testing.T) { eachEtcd(t, testImportEtcdV3Only) }

func testImportEtcdV3Only(t *testing.T, bin string) {
	ctl, err := exec.LookPath("etcdctl")
	if err != nil {
		t.Skip("etcdctl not installed")
	}
	etcdDir := filepath.Join(t.TempDir(), "etcd")
	e := startEtcd(t, bin, etcdDir, "--enable-v2=false")
	for i := 0; i < 60; i++ {
		cmd := exec.Command(ctl, "--endpoints", e.url, "put", fmt.Sprint("k", i), "v")
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("etcdctl put: %v %s", err, out)
		}
	}
	e.stop()
	target := filepath.Join(t.TempDir(), "strata")
	err = importEtcd(t.Context(), []string{"--etcd-data-dir", etcdDir, "--data-dir", target, "--backend", "bbolt"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no v2 data") {
		t.Errorf("got %v, want a no-v2-data refusal", err)
	}
	if _, serr := os.Stat(target); !os.IsNotExist(serr) {
		t.Errorf("target %s was created (%v)", target, serr)
	}
}
