package server

// Opening a data dir without serving it (strata migrate), and rebuilding a
// backend whose files may be corrupt after a machine crash.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-kv/strata/backends"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/snap"
	"github.com/strata-kv/strata/consensus/wal"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/internal/fsutil"
)

// openBackend opens the data dir's backend in db/ (noFsync: as
// --unsafe-no-fsync, see backends.Options).
//
// If the backend reports that its files may be corrupt because the machine
// went down while they held unsynced commits (backends.ErrUnsafeShutdown, from bbolt:
// possible only after a run with --unsafe-no-fsync or with a data dir
// written by an older Strata, whose bbolt commits were not fsync'd), db/
// is moved aside to db.unsafe-<UTC time> and an empty backend is opened in
// its place, provided there is something to rebuild it from: a raft
// snapshot with an image (consensus.Open then restores the newest such
// image and replays the WAL after it, which is kept back to the oldest kept
// snapshot), or a WAL that still starts at index 1. The raft snapshots of
// a durable backend carry no image (the backend's files are the durable
// copy), so otherwise the error stands and nothing is moved: the operator
// decides (delete the marker to open the file as it is, or restore a
// backup). The files set aside are kept for the operator to inspect or
// delete.
func openBackend(d *dataDir, name string, noFsync bool, log *slog.Logger) (backends.Backend, error) {
	db := d.sub("db")
	opts := backends.Options{Dir: db, UnsafeNoFsync: noFsync}
	be, err := backends.Open(name, opts)
	if err == nil {
		return be, nil
	}
	if !errors.Is(err, backends.ErrUnsafeShutdown) {
		return nil, fmt.Errorf("open %s backend: %w", name, err)
	}
	member := d.sub("member")
	if !wal.Exist(filepath.Join(member, "wal")) {
		return nil, fmt.Errorf("open %s backend: %w; there is no raft log in %s to rebuild it from", name, err, member)
	}
	source, ok, serr := rebuildSource(member)
	if serr != nil {
		return nil, fmt.Errorf("open %s backend: %w; and looking for a raft snapshot or log to rebuild it from: %w", name, err, serr)
	}
	if !ok {
		return nil, fmt.Errorf("open %s backend: %w; nothing to rebuild it from: its raft snapshots carry no image (the backend's files are the durable copy) and the raft log no longer starts at index 1. "+
			"Delete the marker to open the file as it is (it may be corrupt), or restore a backup", name, err)
	}
	aside := db + ".unsafe-" + time.Now().UTC().Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, serr := os.Lstat(aside); errors.Is(serr, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.unsafe-%s-%d", db, time.Now().UTC().Format("20060102T150405Z"), i)
	}
	log.Warn("backend files may be corrupt after an unsafe shutdown: moving them aside and rebuilding from the raft "+source,
		"backend", name, "moved_to", aside, "err", err)
	if err := os.Rename(db, aside); err != nil {
		return nil, fmt.Errorf("move possibly corrupt %s backend aside: %w", name, err)
	}
	if err := fsutil.SyncDir(d.path); err != nil {
		return nil, err
	}
	be, err = backends.Open(name, opts)
	if err != nil {
		return nil, fmt.Errorf("open empty %s backend after moving %s aside: %w", name, aside, err)
	}
	return be, nil
}

// rebuildSource reports what consensus.Open can rebuild an empty state
// machine from in member/: the newest snapshot with an image, or the whole
// log if no snapshot has one and the log still starts at index 1.
func rebuildSource(member string) (string, bool, error) {
	ss, err := snap.New(filepath.Join(member, "snap"), slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		return "", false, err
	}
	f, err := ss.LoadImage()
	if err == nil {
		return fmt.Sprintf("snapshot image at index %d and the log after it", f.Metadata.Index), true, nil
	}
	if !errors.Is(err, snap.ErrNoSnapshot) {
		return "", false, err
	}
	first, err := wal.FirstIndex(filepath.Join(member, "wal"))
	if err != nil {
		return "", false, err
	}
	if first > 1 {
		return "", false, nil
	}
	return "log from index 1", true, nil
}

// replayID is the raft ID an offline replay runs under. Member IDs are the
// first 8 bytes of a SHA-1, so this one is (all but certainly) no voter of
// the group: raft never campaigns with it, so opening the replica only replays
// the committed log into the state machine and writes nothing to the WAL.
const replayID = 0x5354524154415250 // "STRATARP"

// replayLog brings be up to the raft commit index recorded in d's log,
// exactly as a member start does (newest snapshot image if be is behind it,
// then the committed WAL entries after it) but without campaigning, serving
// or snapshotting. The caller has checked (checkRaftState) that the log is
// not empty, since an empty one would bootstrap a new group. Entries after the recorded commit index stay in the log;
// the member commits them when it next starts.
//
// It returns the snapshot metadata for be's applied index once replayed
// (the term of that entry and the membership then), which an image
// snapshot of be would carry.
func replayLog(d *dataDir, be backends.Backend, log *slog.Logger) (raftpb.SnapshotMetadata, error) {
	var md raftpb.SnapshotMetadata
	member := d.sub("member")
	eng, err := engine.Open(be, engine.Options{})
	if err != nil {
		return md, err
	}
	rep, err := consensus.Open(consensus.Config{
		ID: replayID, DataDir: member, Logger: log,
		// Never snapshot: a replay writes nothing into member/.
		SnapshotCount: 1 << 62,
	}, newFSM(eng, be))
	if err != nil {
		return md, fmt.Errorf("replay raft log of %s: %w", d.path, err)
	}
	st := rep.Status()
	md, mdErr := rep.SnapshotMetadata(be.AppliedIndex())
	if err := rep.Stop(); err != nil {
		return md, fmt.Errorf("replay raft log of %s: stop: %w", d.path, err)
	}
	if st.Lead != 0 || st.RaftState == "StateLeader" {
		return md, fmt.Errorf("replay raft log of %s: the replay replica found a leader (%x): refusing to go on", d.path, st.Lead)
	}
	if mdErr != nil {
		return md, fmt.Errorf("replay raft log of %s: %w", d.path, mdErr)
	}
	return md, nil
}

// checkRaftState makes sure member/ holds a raft log with state in it: a
// replay of an empty log would bootstrap a new group.
func checkRaftState(member string) error {
	walDir := filepath.Join(member, "wal")
	if !wal.Exist(walDir) {
		return fmt.Errorf("no raft log in %s: not the data dir of a member that has run", member)
	}
	des, _ := os.ReadDir(filepath.Join(member, "snap"))
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".snap") {
			return nil
		}
	}
	w, rec, err := wal.Open(walDir, 0, wal.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("read raft log %s: %w", walDir, err)
	}
	w.Close()
	if len(rec.Entries) == 0 && rec.HardState.Term == 0 {
		return fmt.Errorf("raft log %s is empty: the member never started", walDir)
	}
	return nil
}

// readBackendName reads the backend a data dir was created with.
func readBackendName(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "backend"))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s has no backend file: not a strata data dir", dir)
	}
	if err != nil {
		return "", fmt.Errorf("read backend of %s: %w", dir, err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" {
		return "", fmt.Errorf("%s/backend is empty", dir)
	}
	return name, nil
}

// Offline is a stopped member's data dir, locked and opened for reading:
// its backend holds every committed raft entry, and no raft replica runs.
type Offline struct {
	dir     *dataDir
	backend string
	be      backends.Backend
	md      raftpb.SnapshotMetadata // for be's applied index
}

// OpenOffline locks the data dir of a stopped member (a running member
// holds the lock: that fails) and opens its backend with the committed raft
// log replayed into it, as a member start would, but without campaigning or
// serving. The raft log itself is not changed (beyond cutting a torn tail,
// as every start does). An unsafe-shutdown backend is rebuilt as in Start.
func OpenOffline(dataDir string, log *slog.Logger) (_ *Offline, err error) {
	if log == nil {
		log = slog.Default()
	}
	if fi, err := os.Stat(dataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s is not a directory", dataDir)
	}
	name, err := readBackendName(dataDir)
	if err != nil {
		return nil, err
	}
	d, err := openDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if err := checkRaftState(d.sub("member")); err != nil {
		return nil, err
	}
	be, err := openBackend(d, name, false, log)
	if err != nil {
		return nil, err
	}
	md, err := replayLog(d, be, log)
	if err != nil {
		be.Close()
		return nil, err
	}
	return &Offline{dir: d, backend: name, be: be, md: md}, nil
}

// Backend is the member's backend, fully replayed. Read it only.
func (o *Offline) Backend() backends.Backend { return o.be }

// BackendName is the backend the data dir was created with.
func (o *Offline) BackendName() string { return o.backend }

// Close closes the backend and unlocks the data dir.
func (o *Offline) Close() error {
	err := o.be.Close()
	o.dir.close()
	return err
}

// Target is a new data dir being written by strata migrate. Until Commit it
// holds a MIGRATING marker, so no member starts on it.
type Target struct {
	dir     *dataDir
	backend string
	be      backends.Backend
	created bool // the directory itself did not exist
	log     *slog.Logger
}

// CreateTarget locks a new data dir for a member on the named backend and
// opens that backend, empty, in it. dataDir must not exist or be empty.
func CreateTarget(dataDir, backend string, log *slog.Logger) (_ *Target, err error) {
	if log == nil {
		log = slog.Default()
	}
	created := false
	des, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		created = true
	case err != nil:
		return nil, fmt.Errorf("target data dir: %w", err)
	case len(des) > 0:
		return nil, fmt.Errorf("target data dir %s is not empty (it holds %s): migrate only writes into a new or empty directory", dataDir, des[0].Name())
	}
	d, err := openDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	t := &Target{dir: d, backend: backend, created: created, log: log}
	defer func() {
		if err != nil {
			t.Abort()
		}
	}()
	if err := fsutil.WriteFileSync(d.sub(migratingName), []byte("strata migrate has not finished writing this directory\n")); err != nil {
		return nil, err
	}
	if err := fsutil.SyncDir(d.path); err != nil {
		return nil, err
	}
	if t.be, err = backends.Open(backend, backends.Options{Dir: d.sub("db")}); err != nil {
		return nil, fmt.Errorf("open %s backend in %s: %w", backend, d.sub("db"), err)
	}
	return t, nil
}

// Backend is the new, empty backend, to Restore into.
func (t *Target) Backend() backends.Backend { return t.be }

// Seal finishes the target's files: it copies src's raft log and snapshots
// verbatim (so the new member is the same member, at the same indexes);
// if the target backend is not durable (memory), whose content lives only
// in snapshot images and the log, it adds an image snapshot of the copy at
// its applied index, since a durable source's snapshots carry no image; it
// syncs and closes the backend, records it, then reopens the target as a
// member start would (replaying the copied log) and returns that backend
// for verification. It reports the raft files copied.
func (t *Target) Seal(src *Offline) (_ backends.Backend, files int, bytes int64, err error) {
	applied := t.be.AppliedIndex()
	if files, bytes, err = copyTree(src.dir.sub("member"), t.dir.sub("member")); err != nil {
		return nil, files, bytes, fmt.Errorf("copy raft log and snapshots: %w", err)
	}
	if !backends.IsDurable(t.be) {
		if err := writeImageSnapshot(filepath.Join(t.dir.sub("member"), "snap"), t.be, src.md); err != nil {
			return nil, files, bytes, fmt.Errorf("image snapshot of the %s backend: %w", t.backend, err)
		}
	}
	if err := t.be.Sync(); err != nil {
		return nil, files, bytes, fmt.Errorf("sync %s backend: %w", t.backend, err)
	}
	err = t.be.Close()
	t.be = nil
	if err != nil {
		return nil, files, bytes, fmt.Errorf("close %s backend: %w", t.backend, err)
	}
	if err := fsutil.WriteFileSync(t.dir.sub("backend"), []byte(t.backend+"\n")); err != nil {
		return nil, files, bytes, err
	}
	if err := fsutil.SyncDir(t.dir.path); err != nil {
		return nil, files, bytes, err
	}
	if t.be, err = backends.Open(t.backend, backends.Options{Dir: t.dir.sub("db")}); err != nil {
		return nil, files, bytes, fmt.Errorf("reopen %s backend: %w", t.backend, err)
	}
	if _, err := replayLog(t.dir, t.be, t.log); err != nil {
		return nil, files, bytes, fmt.Errorf("reopen target: %w", err)
	}
	if got := t.be.AppliedIndex(); got != applied {
		return nil, files, bytes, fmt.Errorf("reopened target is at applied index %d, the copy was at %d", got, applied)
	}
	return t.be, files, bytes, nil
}

// Commit closes the target, removes its MIGRATING marker and unlocks it:
// a member may now start on it.
func (t *Target) Commit() error {
	if t.be != nil {
		err := t.be.Close()
		t.be = nil
		if err != nil {
			return fmt.Errorf("close %s backend: %w", t.backend, err)
		}
	}
	if err := os.Remove(t.dir.sub(migratingName)); err != nil {
		return fmt.Errorf("finish target: %w", err)
	}
	if err := fsutil.SyncDir(t.dir.path); err != nil {
		return err
	}
	t.dir.close()
	return nil
}

// Abort closes the target and removes everything written into it (the
// directory too, if it did not exist before).
func (t *Target) Abort() {
	if t.be != nil {
		t.be.Close()
		t.be = nil
	}
	if t.dir.lock == nil {
		return // committed
	}
	if t.created {
		os.RemoveAll(t.dir.path)
	} else if des, err := os.ReadDir(t.dir.path); err == nil {
		for _, de := range des {
			os.RemoveAll(filepath.Join(t.dir.path, de.Name()))
		}
	}
	t.dir.close()
}

// writeImageSnapshot durably writes an image snapshot of be into snapDir
// with metadata md, which must be for be's applied index.
func writeImageSnapshot(snapDir string, be backends.Backend, md raftpb.SnapshotMetadata) error {
	if got := be.AppliedIndex(); got != md.Index {
		return fmt.Errorf("backend is at applied index %d, the snapshot metadata is for %d", got, md.Index)
	}
	ss, err := snap.New(snapDir, nil, false)
	if err != nil {
		return err
	}
	_, err = ss.Save(func(w io.Writer) (uint64, error) {
		iw := &backends.SnapshotIndexWriter{W: w}
		if err := be.Snapshot(iw); err != nil {
			return 0, err
		}
		return iw.AppliedIndex()
	}, func(index uint64) (uint64, raftpb.ConfState, error) {
		if index != md.Index {
			return 0, raftpb.ConfState{}, fmt.Errorf("image reflects index %d, want %d", index, md.Index)
		}
		return md.Term, md.ConfState, nil
	})
	return err
}

// copyTree copies the regular files and directories under src to dst,
// which must not exist, fsyncing each file and directory.
func copyTree(src, dst string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(src, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case de.IsDir():
			return os.Mkdir(to, 0o700)
		case de.Type().IsRegular():
			n, err := copyFile(p, to)
			files++
			bytes += n
			return err
		default:
			return fmt.Errorf("%s is not a regular file or directory", p)
		}
	})
	if err != nil {
		return files, bytes, err
	}
	// Directory entries last, deepest first, once everything is in them.
	var dirs []string
	filepath.WalkDir(dst, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := fsutil.SyncDir(dirs[i]); err != nil {
			return files, bytes, err
		}
	}
	return files, bytes, fsutil.SyncDir(filepath.Dir(dst))
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", src, err)
	}
	return n, nil
}
