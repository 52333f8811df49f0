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
}

// maybeSnapshot starts a snapshot every SnapshotCount applied entries. The
// image is written off the run loop (StateMachine.Snapshot may run
// concurrently with Apply); finishSnapshot does the bookkeeping on it.
func (n *Node) maybeSnapshot() {
	applied := n.stats.applied.Load()
	if n.snapping || applied < max(n.snapIndex, n.snapAttempt)+n.cfg.SnapshotCount {
		return
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
	n.snapWG.Add(1)
	go func() {
		defer n.snapWG.Done()
		md, err := n.snaps.Save(n.sm.Snapshot, n.snapMeta)
		n.snapc <- snapResult{md: md, err: err, dur: time.Since(start)}
	}()
}

// snapMeta completes a snapshot's metadata for the index the state machine
// image reflects. Runs on the snapshot goroutine: MemoryStorage and
// confHist are both safe for that.
func (n *Node) snapMeta(index uint64) (uint64, raftpb.ConfState, error) {
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
// snapshot and compaction, state machine sync, then release of old
// snapshot files and of WAL segments no kept snapshot needs. Only a WAL
// failure is fatal; other failures leave extra files for the next round.
func (n *Node) finishSnapshot(res snapResult) error {
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
		return err
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
	n.stats.snapshots.Add(1)
	n.stats.snapIndex.Store(md.Index)
	n.stats.lastSnapNanos.Store(int64(res.dur))
	n.lastSnapEnd = time.Now()
	n.log.Debug("consensus: snapshot", "index", md.Index, "term", md.Term, "duration", res.dur)

	n.quiesce() // Sync must not race Apply
	if err := n.sm.Sync(); err != nil {
		n.log.Error("consensus: sync state machine", "err", err)
		return nil
	}
	oldest, err := n.snaps.Purge(keepSnapshots)
	if err != nil {
		n.log.Error("consensus: purge snapshots", "err", err)
		return nil
	}
	// Any kept snapshot must stay usable, so the WAL goes back to the oldest.
	if err := n.wal.ReleaseTo(oldest); err != nil {
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
