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
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/server"
)

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

// stratactlBinary builds cmd/stratactl once.
func stratactlBinary(t *testing.T) string {
	t.Helper()
	ctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stratactl-bin")
		if err != nil {
			ctlErr = err
			return
		}
		ctlPath = filepath.Join(dir, "stratactl")
		if out, err := exec.Command("go", "build", "-o", ctlPath, "../stratactl").CombinedOutput(); err != nil {
			ctlErr = fmt.Errorf("go build stratactl: %v\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// imageTree loads a backup into a memory engine and returns its v2 store
// index and every node below / (key -> value, "/" suffix for dirs, with
// its modifiedIndex).
func imageTree(t *testing.T, file string) (uint64, map[string]string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	be, err := backends.Open("memory", backends.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Restore(f); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(be, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := e.Get("/", true, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return e.Index(), flattenTree(t, b)
}

// flattenTree flattens a recursive GET's JSON into key -> value@modifiedIndex.
func flattenTree(t *testing.T, body []byte) map[string]string {
	t.Helper()
	var ev struct{ Node treeNode }
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("tree %q: %v", body, err)
	}
	out := map[string]string{}
	var walk func(n treeNode)
	walk = func(n treeNode) {
		for _, c := range n.Nodes {
			if c.Dir {
				out[c.Key+"/"] = fmt.Sprintf("@%d", c.ModifiedIndex)
				walk(c)
			} else {
				out[c.Key] = fmt.Sprintf("%s@%d", c.Value, c.ModifiedIndex)
			}
		}
	}
	walk(ev.Node)
	return out
}

type treeNode struct {
	Key           string     `json:"key"`
	Value         string     `json:"value"`
	Dir           bool       `json:"dir"`
	ModifiedIndex uint64     `json:"modifiedIndex"`
	Nodes         []treeNode `json:"nodes"`
}

func fileHash(t *testing.T, r io.Reader) (uint64, string) {
	t.Helper()
	idx, _, sum, err := server.HashSnapshot(r)
	if err != nil {
		t.Fatal(err)
	}
	return idx, fmt.Sprintf("%x", sum)
}

// TestBackupRestore: `stratactl snapshot save` from a member under write
// load; the backup holds exactly the acknowledged writes at or below its
// store index (the source at the snapshot's index); restored into each
// backend, the new single-member cluster serves the same tree and its own
// backup hashes the same, record for record. Truncated or corrupted
// backups are refused and leave no data dir.
func TestBackupRestore(t *testing.T) {
	ctl := stratactlBinary(t)
	base, _ := startLogged(t, io.Discard, "--data-dir", t.TempDir(), "--backend", "bbolt", "--log-level", "error", "--snapshot-count", "100")

	type ack struct {
		key, value string
		index      uint64
	}
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("/load/w%d/k%05d", g, i), fmt.Sprintf("v%d-%d", g, i)
				idx, err := put(c, base, key, val)
				if err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{key, val, idx})
				mu.Unlock()
			}
		}()
	}
	// Let some writes land, then save while they go on.
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")
	out, err := exec.Command(ctl, "--endpoints", base, "snapshot", "save", file).CombinedOutput()
	mu.Lock()
	during := len(acks)
	mu.Unlock()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	if len(acks) == during {
		t.Log("note: no write was acknowledged after the save returned")
	}
	m := regexp.MustCompile(`^Snapshot saved at .*: raft index (\d+), (\d+) records, \d+ bytes, sha256 ([0-9a-f]{64}) \(from `).FindSubmatch(out)
	if m == nil {
		t.Fatalf("snapshot save output %q", out)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part left behind: %v", file, err)
	}

	// The image is the source at one index: exactly the acknowledged
	// writes at or below its store index.
	storeIndex, tree := imageTree(t, file)
	want := map[string]string{"/load/": "", "/load/w0/": "", "/load/w1/": "", "/load/w2/": "", "/load/w3/": ""}
	for _, a := range acks {
		if a.index <= storeIndex {
			want[a.key] = fmt.Sprintf("%s@%d", a.value, a.index)
		}
	}
	got := map[string]string{}
	for k, v := range tree {
		if strings.HasSuffix(k, "/") {
			v = "" // a directory's index is its creation's: not checked
		}
		got[k] = v
	}
	if len(got) != len(want) {
		t.Fatalf("backup at store index %d holds %d nodes, want %d (of %d acknowledged writes)", storeIndex, len(got), len(want), len(acks))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("backup at store index %d: %s = %q, want %q", storeIndex, k, got[k], v)
		}
	}
	t.Logf("backup at store index %d holds %d of %d acknowledged writes (%d acknowledged before the save returned)", storeIndex, len(got)-5, len(acks), during)
	f, _ := os.Open(file)
	raftIndex, sum := fileHash(t, f)
	f.Close()
	if fmt.Sprint(raftIndex) != string(m[1]) {
		t.Fatalf("file index %d, save reported %s", raftIndex, m[1])
	}

	for _, be := range backendNames() {
		t.Run(be, func(t *testing.T) {
			newDir := filepath.Join(t.TempDir(), "restored")
			rbase, lines := startLogged(t, io.Discard, "--restore", file, "--data-dir", newDir, "--backend", be, "--log-level", "error")
			if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("raft index %d", raftIndex)) {
				t.Fatalf("restore output %q", lines)
			}
			resp, err := http.Get(rbase + "/v2/keys/?recursive=true&sorted=true")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rt := flattenTree(t, body); !equalMaps(rt, tree) {
				t.Fatalf("restored tree differs from the backup's (%d vs %d nodes)", len(rt), len(tree))
			}
			if h := resp.Header.Get("X-Etcd-Index"); h != fmt.Sprint(storeIndex) {
				t.Fatalf("restored X-Etcd-Index %s, want %d", h, storeIndex)
			}
			// Record for record: the restored member's own backup.
			resp, err = http.Get(rbase + "/v2/strata/snapshot")
			if err != nil {
				t.Fatal(err)
			}
			_, rsum := fileHash(t, resp.Body)
			resp.Body.Close()
			if rsum != sum {
				t.Fatalf("restored store hash %s, backup %s", rsum, sum)
			}
			// It is a new cluster, writable.
			if _, err := put(&http.Client{}, rbase, "/after-restore", "x"); err != nil {
				t.Fatal(err)
			}
		})
	}

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)/2] ^= 0x40
	for name, b := range map[string][]byte{"truncated": data[:len(data)-7], "corrupted": corrupt} {
		bad := filepath.Join(dir, name+".snap")
		os.WriteFile(bad, b, 0o600)
		if out, err := exec.Command(ctl, "snapshot", "status", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "corrupt snapshot") {
			t.Errorf("snapshot status of a %s backup: %v %s", name, err, out)
		}
		newDir := filepath.Join(t.TempDir(), "restored")
		err := run(t.Context(), []string{"--restore", bad, "--data-dir", newDir, "--listen-client-urls", "http://127.0.0.1:0"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "corrupt snapshot") {
			t.Errorf("restore of a %s backup: %v", name, err)
		}
		if _, err := os.Stat(newDir); !os.IsNotExist(err) {
			t.Errorf("restore of a %s backup left %s behind", name, newDir)
		}
	}
	// A data dir that is not new is refused.
	err = run(t.Context(), []string{"--restore", file, "--data-dir", dir, "--listen-client-urls", "http://127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("restore into a non-empty dir: %v", err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
