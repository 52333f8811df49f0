package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends/bbolt"
	_ "github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testConfig(dir, backend string) Config {
	peer := []string{"http://127.0.0.1:2380"}
	return Config{
		Name: "m", DataDir: dir, Backend: backend, PeerURLs: peer,
		InitialPeers: map[string][]string{"m": peer}, SnapshotCount: 20, Logger: quiet,
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func propose(t *testing.T, s *Server, c engine.Command) *engine.Event {
	t.Helper()
	ev, err := s.Propose(context.Background(), c)
	if err != nil {
		t.Fatalf("%s %s: %v", c.Op, c.Path, err)
	}
	return ev
}

// writeSome writes 100 keys in a directory, updates and deletes some, and
// returns the JSON of the whole sorted tree and the store index.
func writeSome(t *testing.T, s *Server) (string, uint64) {
	t.Helper()
	for i := range 100 {
		propose(t, s, engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/dir/k%03d", i), Value: fmt.Sprintf("value %d ✓", i)})
	}
	for i := 0; i < 100; i += 7 {
		propose(t, s, engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/dir/k%03d", i), Value: fmt.Sprintf("updated %d", i)})
	}
	for i := 3; i < 100; i += 11 {
		propose(t, s, engine.Command{Op: engine.OpDelete, Path: fmt.Sprintf("/dir/k%03d", i)})
	}
	propose(t, s, engine.Command{Op: engine.OpSet, Path: "/empty", Value: ""})
	return tree(t, s)
}

func tree(t *testing.T, s *Server) (string, uint64) {
	t.Helper()
	ev, err := s.Get(context.Background(), "/", true, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), s.Engine().Index()
}

// TestUnsafeShutdownRebuildsFromLog: bbolt refuses a file that may have
// lost unsynced pages in a machine crash; the server moves db/ aside and
// rebuilds from the newest snapshot and the WAL, serving every key.
func TestUnsafeShutdownRebuildsFromLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "bbolt")
	s := start(t, cfg)
	want, wantIndex := writeSome(t, s)
	if st := s.NodeStatus(); st.Snapshots == 0 {
		t.Fatalf("no snapshot taken after %d entries: the test must cover a released log", st.Applied)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// What bbolt finds after a power loss: its unsynced marker from another
	// boot (as backends/bbolt's TestUnsafeShutdownRefused makes it). Zero
	// the file too: nothing may be read from it.
	db := filepath.Join(dir, "db")
	if err := os.WriteFile(filepath.Join(db, "strata.db.unsynced"), []byte("00000000-0000-0000-0000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(db, "strata.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "strata.db"), make([]byte, fi.Size()), 0o600); err != nil {
		t.Fatal(err)
	}

	s = start(t, cfg)
	defer s.Stop()
	got, gotIndex := tree(t, s)
	if got != want || gotIndex != wantIndex {
		t.Fatalf("after rebuild: index %d, tree\n%s\nwant index %d, tree\n%s", gotIndex, got, wantIndex, want)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "db.unsafe-*"))
	if len(aside) != 1 {
		t.Fatalf("db moved aside to %v, want one db.unsafe-<time>", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "strata.db.unsynced")); err != nil {
		t.Errorf("the set-aside copy lost its marker: %v", err)
	}
	// The rebuilt member goes on at the next index.
	ev := propose(t, s, engine.Command{Op: engine.OpSet, Path: "/after", Value: "x"})
	if ev.Node.ModifiedIndex != wantIndex+1 {
		t.Errorf("first write after rebuild at index %d, want %d", ev.Node.ModifiedIndex, wantIndex+1)
	}
}

// TestUnsafeShutdownWithoutLog: with no raft log to rebuild from, the
// error stands and the file is left where it is.
func TestUnsafeShutdownWithoutLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "bbolt")
	s := start(t, cfg)
	s.Stop()
	if err := os.RemoveAll(filepath.Join(dir, "member")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "strata.db.unsynced"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(cfg)
	if !errors.Is(err, bbolt.ErrUnsafeShutdown) || !strings.Contains(err.Error(), "no raft log") {
		t.Fatalf("Start = %v, want ErrUnsafeShutdown and no raft log", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db", "strata.db")); err != nil {
		t.Fatalf("db moved although it could not be rebuilt: %v", err)
	}
}

// TestUnsafeNoFsyncSkipsWALSyncs: UnsafeNoFsync reaches the WAL, which then
// never calls fdatasync; without it every write costs one.
func TestUnsafeNoFsyncSkipsWALSyncs(t *testing.T) {
	for _, noFsync := range []bool{true, false} {
		cfg := testConfig(t.TempDir(), "memory")
		cfg.UnsafeNoFsync = noFsync
		s := start(t, cfg)
		for i := range 50 {
			propose(t, s, engine.Command{Op: engine.OpSet, Path: fmt.Sprintf("/k%d", i), Value: "v"})
		}
		// The snapshot (and its WAL marker) completes off the write path.
		st := s.NodeStatus()
		for deadline := time.Now().Add(5 * time.Second); st.Snapshots == 0 && time.Now().Before(deadline); st = s.NodeStatus() {
			time.Sleep(time.Millisecond)
		}
		s.Stop()
		if st.Snapshots == 0 {
			t.Errorf("noFsync=%v: no snapshot taken", noFsync)
		}
		if noFsync && st.Fsyncs != 0 {
			t.Errorf("UnsafeNoFsync: %d WAL fsyncs, want 0", st.Fsyncs)
		}
		if !noFsync && st.Fsyncs < 50 {
			t.Errorf("default: %d WAL fsyncs for 50 sequential writes, want at least 50", st.Fsyncs)
		}
	}
}

// hashTree hashes every file under dir (path and content).
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestOpenOffline: a stopped memory member opens offline with its whole
// state (snapshot + WAL replayed), without writing to its raft log, and
// holds the data dir lock meanwhile.
func TestOpenOffline(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "memory")
	s := start(t, cfg)
	want, wantIndex := writeSome(t, s)
	if _, err := OpenOffline(dir, quiet); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("OpenOffline of a running member: %v", err)
	}
	s.Stop()
	member := hashTree(t, filepath.Join(dir, "member"))

	o, err := OpenOffline(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if o.BackendName() != "memory" {
		t.Errorf("backend %q", o.BackendName())
	}
	if _, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("Start while open offline: %v", err)
	}
	eng, err := engine.Open(o.Backend(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eng.Get("/", true, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	if string(b) != want || eng.Index() != wantIndex {
		t.Fatalf("offline: index %d tree\n%s\nwant %d\n%s", eng.Index(), b, wantIndex, want)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hashTree(t, filepath.Join(dir, "member")); got != member {
		t.Error("OpenOffline changed the raft log or snapshots")
	}

	if _, err := OpenOffline(t.TempDir(), quiet); err == nil || !strings.Contains(err.Error(), "not a strata data dir") {
		t.Errorf("OpenOffline of an empty dir: %v", err)
	}
}

// TestBackendMismatchNamesMigrate: the refusal tells how to change backend.
func TestBackendMismatchNamesMigrate(t *testing.T) {
	dir := t.TempDir()
	s := start(t, testConfig(dir, "memory"))
	s.Stop()
	_, err := Start(testConfig(dir, "bbolt"))
	if err == nil || !strings.Contains(err.Error(), "strata migrate --from-dir "+dir) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Start with another backend: %v", err)
	}
}
