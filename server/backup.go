package server

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/consensus/snap"
	"github.com/strata-kv/strata/consensus/wal"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/internal/fsutil"
)

// WriteSnapshot implements httpd.SnapshotSource: a backup of the whole
// store in the backends' portable snapshot format, read from one
// consistent backend view while writes go on (it never blocks them), so
// it reflects exactly the raft index it returns.
func (s *Server) WriteSnapshot(w io.Writer) (uint64, error) {
	start := time.Now()
	cw := &countingWriter{w: w}
	index, err := s.eng.Snapshot(cw)
	if err != nil {
		s.log.Error("backup snapshot failed", "bytes", cw.n, "err", err)
		return 0, fmt.Errorf("backup snapshot: %w", err)
	}
	s.log.Info("backup snapshot sent", "index", index, "bytes", cw.n, "duration", time.Since(start))
	return index, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// RestoreConfig describes the single-member cluster a backup is restored
// into: the flags the member will be started with (its ID and the new
// cluster's ID are derived from them exactly as a first start would).
type RestoreConfig struct {
	DataDir      string
	Backend      string
	PeerURLs     []string // this member's advertised peer URLs
	ClusterToken string
	Logger       *slog.Logger
}

// RestoreResult reports what a restore wrote.
type RestoreResult struct {
	Index     uint64 // raft index the backup reflects; the new log starts after it
	Records   int    // key-space records restored
	Dropped   int    // records of the old cluster (membership) left out
	SHA256    []byte // over the restored records, as `strata migrate` hashes a store
	MemberID  uint64
	ClusterID uint64
}

// Restore creates a new data dir from a backup (the stream of GET
// /v2/strata/snapshot, as `stratactl snapshot save` writes it) for a new
// single-member cluster on any backend. The data dir must not exist or be
// empty. The backup is checked as it is read (format, key order, CRC-32C
// trailer): a truncated or corrupted file fails with an error wrapping
// backends.ErrCorruptSnapshot, and on any failure everything written is
// removed. Only the v2 key space is restored (keys, directories, TTLs,
// the store index, auth data); the old cluster's membership records are
// dropped. The member starts from a raft snapshot at the backup's index,
// as the only voter, with a cluster ID derived from cfg, so it cannot be
// mistaken for a member of the old cluster.
func Restore(backup io.Reader, cfg RestoreConfig) (_ RestoreResult, err error) {
	var res RestoreResult
	if cfg.ClusterToken == "" {
		cfg.ClusterToken = "etcd-cluster"
	}
	t, err := CreateTarget(cfg.DataDir, cfg.Backend, cfg.Logger) // MIGRATING until committed
	if err != nil {
		return res, fmt.Errorf("restore into %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if err != nil {
			t.Abort()
			err = fmt.Errorf("restore into %s: %w", cfg.DataDir, err)
		}
	}()
	br := bufio.NewReaderSize(backup, 64<<10)
	if res.Index, err = backupIndex(br); err != nil {
		return res, err
	}
	if err := restoreRecords(br, t, cfg.Backend, &res); err != nil {
		return res, err
	}
	res.MemberID = MemberID(cfg.PeerURLs, cfg.ClusterToken)
	res.ClusterID = ClusterID([]uint64{res.MemberID})
	md := raftpb.SnapshotMetadata{Index: res.Index, Term: 1, ConfState: raftpb.ConfState{Voters: []uint64{res.MemberID}}}
	if err := writeRestoredRaft(t, cfg, md); err != nil {
		return res, err
	}
	if err := commitRestore(t, cfg.Backend, identity{cluster: res.ClusterID, member: res.MemberID}); err != nil {
		return res, err
	}
	return res, nil
}

// backupIndex reads a backup's header (without consuming it) and returns
// the raft index the backup reflects.
func backupIndex(br *bufio.Reader) (uint64, error) {
	head, err := br.Peek(20)
	if err != nil || string(head[:8]) != "STRATASN" {
		return 0, fmt.Errorf("%w: not a Strata backup (no snapshot header)", backends.ErrCorruptSnapshot)
	}
	index := binary.BigEndian.Uint64(head[12:20])
	if index == 0 {
		return index, fmt.Errorf("%w: backup reflects raft index 0", backends.ErrCorruptSnapshot)
	}
	return index, nil
}

// restoreRecords streams the backup's key-space records into t's backend,
// counting and hashing them into res; the old cluster's records are dropped.
func restoreRecords(br *bufio.Reader, t *Target, backend string, res *RestoreResult) error {
	// Backup -> (check, filter, hash) -> portable stream -> backend.Restore.
	sum := sha256.New()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- t.be.Restore(pr) }()
	werr := backends.WriteSnapshot(pw, res.Index, func(put func(k, v []byte) error) error {
		_, err := backends.ReadSnapshot(br, func(k, v []byte) error {
			if !engine.KeySpaceRecord(k) {
				res.Dropped++
				return nil
			}
			res.Records++
			hashRecord(sum, k, v)
			return put(k, v)
		})
		return err
	})
	pw.CloseWithError(werr)
	if rerr := <-done; werr == nil && rerr != nil {
		werr = fmt.Errorf("%s backend restore: %w", backend, rerr)
	}
	if werr != nil {
		return fmt.Errorf("read backup: %w", werr)
	}
	res.SHA256 = sum.Sum(nil)
	if got := t.be.AppliedIndex(); got != res.Index {
		return fmt.Errorf("restored backend reports applied index %d, the backup %d", got, res.Index)
	}
	return nil
}

// writeRestoredRaft writes the raft state a restored member starts from:
// a snapshot at md (metadata only on a durable backend, else the image)
// and a log that restarts after it.
func writeRestoredRaft(t *Target, cfg RestoreConfig, md raftpb.SnapshotMetadata) error {
	memberDir := t.dir.sub("member")
	if backends.IsDurable(t.be) {
		if err := t.be.Sync(); err != nil {
			return fmt.Errorf("sync %s backend: %w", cfg.Backend, err)
		}
		ss, err := snap.New(filepath.Join(memberDir, "snap"), cfg.Logger, false)
		if err != nil {
			return err
		}
		if err := ss.SaveMeta(md); err != nil {
			return err
		}
	} else if err := writeImageSnapshot(filepath.Join(memberDir, "snap"), t.be, md); err != nil {
		return fmt.Errorf("image snapshot: %w", err)
	}
	// The log restarts after the snapshot, at term 1, committed up to it.
	w, _, err := wal.Open(filepath.Join(memberDir, "wal"), 0, wal.Options{Logger: cfg.Logger})
	if err != nil {
		return err
	}
	err = w.SaveSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term, Reset: true})
	if err == nil {
		err = w.Save(raftpb.HardState{Term: md.Term, Commit: md.Index}, nil)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write raft log: %w", err)
	}
	return nil
}

// commitRestore records the new member's identity and backend, syncs the
// data dir and commits it (it stops being MIGRATING).
func commitRestore(t *Target, backend string, id identity) error {
	if err := t.dir.writeIdentity(id); err != nil {
		return err
	}
	if err := fsutil.WriteFileSync(t.dir.sub("backend"), []byte(backend+"\n")); err != nil {
		return err
	}
	if err := fsutil.SyncDir(t.dir.path); err != nil {
		return err
	}
	return t.Commit()
}

// hashRecord adds one record to a store hash: SHA-256 over
// uvarint(len(k)) k uvarint(len(v)) v in key order (HashSnapshot).
func hashRecord(h io.Writer, k, v []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	h.Write(k)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
	h.Write(v)
}

// HashSnapshot reads a backup (or any portable snapshot stream), checking
// it as Restore does, and returns the raft index it reflects, the number
// of key-space records and their hash, computed as Restore computes it:
// equal hashes mean equal v2 key spaces, byte for byte.
func HashSnapshot(r io.Reader) (index uint64, records int, sum []byte, err error) {
	h := sha256.New()
	index, err = backends.ReadSnapshot(r, func(k, v []byte) error {
		if engine.KeySpaceRecord(k) {
			records++
			hashRecord(h, k, v)
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read backup: %w", err)
	}
	return index, records, h.Sum(nil), nil
}
