package consensus

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus/wal"
)

type snapResult struct {
	md  raftpb.SnapshotMetadata
	err error
	dur time.Duration
	// synced: a metadata-only snapshot, taken right after sm.Sync covered
	// md.Index, so finishSnapshot need not Sync again.
	synced bool
}

// maybeSnapshot starts a snapshot every SnapshotCount applied entries.
//
// For a state machine with an image (not durable) the image is written
// off the run loop (StateMachine.Snapshot may run concurrently with
// Apply); finishSnapshot does the bookkeeping on it.
//
// For a durable state machine the snapshot is metadata-only: a sync job
// queued to the applier, behind every batch already queued, calls
// sm.Sync, then durably records a snapshot at the index Sync covered
// (syncSnapshot). The loop goes on meanwhile: only the applier waits for
// the state machine's fsync.
func (n *Replica[R]) maybeSnapshot() {
	applied := n.stats.applied.Load()
	if n.snapping || applied < max(n.snapIndex, n.snapAttempt)+n.cfg.SnapshotCount {
		return
	}
	if n.durable && !n.async {
		return // during Open apply runs inline; the loop snapshots once it runs
	}
	// A snapshot writes the whole state, so with a large store and a fast
	// write rate SnapshotCount alone would keep one running back to back:
	// space them by SnapshotSpacing times the last one's duration, at the
	// price of a longer log to replay.
	if sp, d := n.cfg.SnapshotSpacing, time.Duration(n.stats.lastSnapNanos.Load()); sp > 0 && d > 0 && time.Since(n.lastSnapEnd) < time.Duration(sp)*d {
		return
	}
	n.snapping, n.snapAttempt = true, applied
	start := time.Now()
	if n.durable {
		n.applyc <- applyJob{sync: true, start: start}
		return
	}
	n.snapWG.Add(1)
	go func() {
		defer n.snapWG.Done()
		md, err := n.snaps.Save(n.sm.Snapshot, n.snapMeta)
		n.snapc <- snapResult{md: md, err: err, dur: time.Since(start)}
	}()
}

// syncSnapshot takes a metadata-only snapshot. It runs on the applier
// between two Apply calls, so AppliedIndex is stable: sm.Sync makes the
// state durable up to it, and only then is the snapshot recorded, so a
// snapshot index never exceeds what the state machine durably holds.
func (n *Replica[R]) syncSnapshot(start time.Time) snapResult {
	if err := n.sm.Sync(); err != nil {
		return snapResult{err: fmt.Errorf("sync state machine: %w", err)}
	}
	index := n.sm.AppliedIndex()
	term, cs, err := n.snapMeta(index)
	if err != nil {
		return snapResult{err: fmt.Errorf("metadata for index %d: %w", index, err)}
	}
	md := raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: cs}
	if err := n.snaps.SaveMeta(md); err != nil {
		return snapResult{err: err}
	}
	return snapResult{md: md, dur: time.Since(start), synced: true}
}

// snapMeta completes a snapshot's metadata for the index the state machine
// image reflects. Runs on the snapshot goroutine or the applier:
// MemoryStorage and confHist are both safe for that.
func (n *Replica[R]) snapMeta(index uint64) (uint64, raftpb.ConfState, error) {
	if index == 0 {
		return 0, raftpb.ConfState{}, errors.New("state machine snapshot reflects index 0")
	}
	term, err := n.ms.Term(index)
	if err != nil {
		return 0, raftpb.ConfState{}, fmt.Errorf("term of %d: %w", index, err)
	}
	cs, err := n.confAt(index)
	return term, cs, err
}

// finishSnapshot records a durable snapshot: WAL marker, raft storage
// snapshot and compaction, state machine sync (already done for a
// metadata-only snapshot), then release of old snapshot files and of WAL
// segments no kept snapshot needs. Only a WAL failure is fatal; other
// failures leave extra files for the next round.
//
// The log is never released past what the state machine durably holds:
// it goes back to the oldest kept snapshot, and every snapshot is either
// an image (durable by itself) or metadata-only at an index sm.Sync had
// covered before the snapshot was written.
func (n *Replica[R]) finishSnapshot(res snapResult) error {
	n.snapping = false
	if res.err != nil {
		n.stats.snapshotFailures.Add(1)
		n.log.Error("consensus: snapshot failed", "err", res.err)
		return nil
	}
	md := res.md
	if md.Index <= n.snapIndex {
		return nil
	}
	if err := n.wal.SaveSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term}); err != nil {
		if !retryable(err) {
			return err
		}
		// Disk full: the snapshot stays unrecorded (the log keeps what it
		// covers) and the next one is tried as usual.
		n.stats.snapshotFailures.Add(1)
		n.log.Error("consensus: snapshot not recorded: disk full", "index", md.Index, "err", err)
		return nil
	}
	if _, err := n.ms.CreateSnapshot(md.Index, &md.ConfState, nil); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return fmt.Errorf("create raft snapshot %d: %w", md.Index, err)
	}
	// Keep a tail of entries so a slow follower can catch up from the log.
	if md.Index > n.cfg.SnapshotCatchUpEntries {
		if err := n.ms.Compact(md.Index - n.cfg.SnapshotCatchUpEntries); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("compact raft storage: %w", err)
		}
	}
	n.snapIndex = md.Index
	n.stats.snapIndex.Store(md.Index)
	n.stats.recordSnapshot(res.dur)
	n.lastSnapEnd = time.Now()
	n.log.Info("consensus: snapshot taken", "index", md.Index, "term", md.Term, "duration", res.dur, "image", !res.synced)

	if !res.synced {
		n.quiesce() // Sync must not race Apply
		if err := n.sm.Sync(); err != nil {
			n.log.Error("consensus: sync state machine", "err", err)
			return nil
		}
	}
	oldest, err := n.snaps.Purge(n.cfg.MaxSnapshots)
	if err != nil {
		n.log.Error("consensus: purge snapshots", "err", err)
		return nil
	}
	// Any kept snapshot must stay usable, so the WAL goes back to the
	// oldest, unless MaxWALSegments asks for less (then to the newest).
	release := oldest
	if m := n.cfg.MaxWALSegments; m > 0 {
		release = max(release, min(n.wal.ReleaseIndexToKeep(m), md.Index))
	}
	if err := n.wal.ReleaseTo(release); err != nil {
		n.log.Error("consensus: release wal", "err", err)
		return nil
	}
	n.confMu.Lock()
	k := 0
	for i, c := range n.confHist {
		if c.index <= oldest {
			k = i
		}
	}
	n.confHist = append(n.confHist[:0], n.confHist[k:]...)
	n.confMu.Unlock()
	return nil
}

// SnapshotMetadata returns the metadata a snapshot taken at index would
// carry: the term of the entry at index and the membership in force there.
// index must be applied and not older than the newest snapshot. It lets a
// tool write an image snapshot of a state machine copied at that index
// (strata migrate to a backend that is not durable). Safe for concurrent
// use.
func (n *Replica[R]) SnapshotMetadata(index uint64) (raftpb.SnapshotMetadata, error) {
	term, cs, err := n.snapMeta(index)
	if err != nil {
		return raftpb.SnapshotMetadata{}, fmt.Errorf("snapshot metadata at %d: %w", index, err)
	}
	return raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: cs}, nil
}
