package procs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestFreePortsDistinct(t *testing.T) {
	ports, err := FreePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 8 distinct positive ports", ports)
		}
		seen[p] = true
	}
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot() = %q: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "strata")); err != nil {
		t.Fatalf("ModuleRoot() = %q is not Strata's module: %v", root, err)
	}
}

func TestRunDir(t *testing.T) {
	for _, keep := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "sub")
		var w bytes.Buffer
		dir, cleanup, err := RunDir(root, "run-", keep, &w)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(dir) != root || !strings.HasPrefix(filepath.Base(dir), "run-") {
			t.Fatalf("dir %q: want run-* under %s", dir, root)
		}
		cleanup()
		_, err = os.Stat(dir)
		if gone := os.IsNotExist(err); gone == keep {
			t.Errorf("keep=%v: dir gone=%v", keep, gone)
		}
		if said := strings.Contains(w.String(), "kept data and logs in "+dir); said != keep {
			t.Errorf("keep=%v: output %q", keep, w.String())
		}
	}
}

func TestNewServerLayout(t *testing.T) {
	s, err := NewStrata("/b/strata", "/r", "x")
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != "/r/x-data" || s.Log != "/r/x.log" || s.Port == s.PeerPort || !strings.HasSuffix(s.URL, ":"+strconv.Itoa(s.Port)) {
		t.Fatalf("layout %+v", s)
	}
	want := "/b/strata --name strata --data-dir /r/x-data --listen-client-urls " + s.URL + " --advertise-client-urls " + s.URL +
		" --listen-peer-urls " + s.Peer + " --initial-advertise-peer-urls " + s.Peer
	if got := strings.Join(s.Argv, " "); got != want {
		t.Fatalf("argv\n got %s\nwant %s", got, want)
	}
	if d := s.Stop(0); d != 0 {
		t.Fatalf("Stop of a server never started took %v", d)
	}
}

func TestIsTmpfs(t *testing.T) {
	if IsTmpfs("/nonexistent/dir") {
		t.Error("a missing path is not tmpfs")
	}
	if _, err := os.Stat("/dev/shm"); err == nil && !IsTmpfs("/dev/shm") {
		t.Error("/dev/shm: want tmpfs")
	}
}
