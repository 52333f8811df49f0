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
	"github.com/strata-kv/strata/consensus/snap"
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

// powerLoss leaves db/ as bbolt finds it after a power loss with unsynced
// commits: its unsynced marker from another boot (as backends/bbolt's
// TestUnsafeShutdownRefused makes it), and a zeroed file: nothing may be
// read from it.
func powerLoss(t *testing.T, dir string) {
	t.Helper()
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
}

// snapshotFiles lists the member's snapshot files, newest first.
func snapshotFiles(t *testing.T, dir string) []*snap.File {
	t.Helper()
	ss, err := snap.New(filepath.Join(dir, "member", "snap"), quiet, true)
	if err != nil {
		t.Fatal(err)
	}
	var out []*snap.File
	for {
		f, err := ss.LoadFunc(func(f *snap.File) bool {
			return len(out) == 0 || f.Metadata.Index < out[len(out)-1].Metadata.Index
		})
		if errors.Is(err, snap.ErrNoSnapshot) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

// TestSnapshotsByBackend: a durable backend's raft snapshots are
// metadata-only (its file is the durable copy), memory's carry the image;
// both restart to the same tree, bbolt without restoring an image.
func TestSnapshotsByBackend(t *testing.T) {
	for _, backend := range []string{"memory", "bbolt"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, backend)
			s := start(t, cfg)
			want, wantIndex := writeSome(t, s)
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			files := snapshotFiles(t, dir)
			if len(files) == 0 {
				t.Fatalf("no snapshot file after %d entries with SnapshotCount 20", wantIndex)
			}
			for _, f := range files {
				if f.HasImage() != (backend == "memory") {
					t.Fatalf("snapshot %s: image=%v", f.Path, f.HasImage())
				}
			}
			s = start(t, cfg)
			defer s.Stop()
			if got, gotIndex := tree(t, s); got != want || gotIndex != wantIndex {
				t.Fatalf("after restart: index %d, tree\n%s\nwant index %d, tree\n%s", gotIndex, got, wantIndex, want)
			}
		})
	}
}

// TestUnsafeShutdownRebuildsFromLog: bbolt refuses a file that may have
// lost unsynced pages in a machine crash (possible after a run with
// --unsafe-no-fsync); its snapshots carry no image, but while the raft log
// still starts at index 1 the server moves db/ aside and rebuilds from the
// whole log, serving every key.
func TestUnsafeShutdownRebuildsFromLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "bbolt")
	cfg.UnsafeNoFsync = true
	s := start(t, cfg)
	want, wantIndex := writeSome(t, s)
	if st := s.ReplicaStatus(); st.Snapshots == 0 {
		t.Fatalf("no snapshot taken after %d entries: the test must cover metadata-only snapshots", st.Applied)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, dir)

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

// TestUnsafeShutdownWithoutRebuildSource: once the log no longer starts at
// index 1 and no snapshot has an image, there is nothing to rebuild a
// corrupt bbolt file from: the error stands, says what to do, and db/ is
// left where it is.
func TestUnsafeShutdownWithoutRebuildSource(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "bbolt")
	cfg.UnsafeNoFsync = true
	s := start(t, cfg)
	writeSome(t, s)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// A released log: its oldest segment starts after index 1 (renamed
	// rather than written, since a server's segments are 64 MiB).
	segs, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if len(segs) != 1 || !strings.HasSuffix(segs[0], "0000000000000000-0000000000000001.wal") {
		t.Fatalf("wal segments %v, want one starting at index 1", segs)
	}
	if err := os.Rename(segs[0], strings.Replace(segs[0], "-0000000000000001.wal", "-0000000000000011.wal", 1)); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, dir)
	_, err := Start(cfg)
	if !errors.Is(err, bbolt.ErrUnsafeShutdown) || !strings.Contains(err.Error(), "nothing to rebuild it from") {
		t.Fatalf("Start = %v, want ErrUnsafeShutdown and nothing to rebuild from", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db", "strata.db.unsynced")); err != nil {
		t.Fatalf("db moved although it could not be rebuilt: %v", err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "db.unsafe-*")); len(aside) != 0 {
		t.Fatalf("db moved aside to %v", aside)
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
		st := s.ReplicaStatus()
		for deadline := time.Now().Add(5 * time.Second); st.Snapshots == 0 && time.Now().Before(deadline); st = s.ReplicaStatus() {
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

// TestSealAddsImageForMemory: migrating a durable backend's data dir, whose
// snapshots carry no image, to memory adds an image snapshot at the copy's
// applied index, from which the new member starts.
func TestSealAddsImageForMemory(t *testing.T) {
	src := t.TempDir()
	s := start(t, testConfig(src, "bbolt"))
	want, wantIndex := writeSome(t, s)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOffline(src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	dst := filepath.Join(t.TempDir(), "new")
	tg, err := CreateTarget(dst, "memory", quiet)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(o.Backend().Snapshot(pw)) }()
	if err := tg.Backend().Restore(pr); err != nil {
		t.Fatal(err)
	}
	applied := tg.Backend().AppliedIndex()
	if _, _, _, err := tg.Seal(o); err != nil {
		t.Fatal(err)
	}
	if err := tg.Commit(); err != nil {
		t.Fatal(err)
	}
	files := snapshotFiles(t, dst)
	if len(files) == 0 || !files[0].HasImage() || files[0].Metadata.Index != applied {
		t.Fatalf("newest snapshot of the memory copy: %+v, want an image at %d", files, applied)
	}
	for _, f := range files[1:] {
		if f.HasImage() {
			t.Fatalf("copied bbolt snapshot %s has an image", f.Path)
		}
	}
	s = start(t, testConfig(dst, "memory"))
	defer s.Stop()
	if got, gotIndex := tree(t, s); got != want || gotIndex != wantIndex {
		t.Fatalf("migrated: index %d, tree\n%s\nwant index %d, tree\n%s", gotIndex, got, wantIndex, want)
	}
}
