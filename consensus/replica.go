package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus/snap"
	"github.com/strata-kv/strata/consensus/wal"
)

// Replica is one raft member: a raft.RawNode owned by a single run goroutine,
// a raft.MemoryStorage rebuilt from the newest snapshot plus the WAL on
// Open, and the StateMachine it applies committed entries to.
//
// Every Ready is made durable in the WAL (one write, one fdatasync when
// raft requires it) before its messages are sent, its committed entries
// are applied or any proposer is answered. Proposals queued while the loop
// is busy share the next Ready: group commit.
//
// Entry.Data handed to the StateMachine aliases the raft log: it may be
// retained but must not be modified.
type Replica[R any] struct {
	cfg Config
	id  uint64
	log *slog.Logger
	sm  StateMachine[R]
	// durable: sm is a DurableStateMachine whose Durable reported true, so
	// snapshots are metadata-only (see snapshot.go).
	durable bool

	// Owned by the run goroutine (by Open before it starts).
	rn            *raft.RawNode
	ms            *raft.MemoryStorage
	wal           *wal.WAL
	snaps         *snap.Snapshotter
	lead          uint64
	snapIndex     uint64 // newest durable snapshot
	snapAttempt   uint64 // applied index when the last snapshot was started
	lastSnapEnd   time.Time
	snapping      bool
	readSeq       uint64
	readsWaiting  []*readReq
	readsIssued   map[uint64]*readBatch
	readsApplying []*readBatch
	smEnts        []Entry
	acks          []ack[R]
	lateMsgs      []raftpb.Message // scratch of handleReady: messages sent after the WAL write

	// Committed entries are applied by the applier goroutine, in log order,
	// so the next batch's fdatasync overlaps this batch's apply (as etcd).
	// Before run starts (replay and boot in Open) apply runs inline.
	async       bool
	applyc      chan applyJob
	appliedc    chan struct{} // applier -> loop: the applied index moved
	applierDone chan struct{}

	propc    chan *proposal[R]
	readc    chan *readReq
	recvc    chan raftpb.Message
	snapc    chan snapResult
	stopc    chan struct{}
	done     chan struct{} // closed when the run loop has fully stopped
	stopOnce sync.Once
	stopErr  error // valid once done is closed
	snapWG   sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	cause   error // why the loop stopped on its own
	waiters map[uint64]*proposal[R]
	reqID   atomic.Uint64

	confMu   sync.Mutex
	confHist []confAt // membership by index, for snapshot metadata

	stats counters

	space spaceAlarm
	// stuck is a Ready whose WAL write failed for want of space: the loop
	// retries it every tick and takes no other Ready meanwhile (run).
	stuck  *pendingReady
	fatalc chan error // applier -> loop: a failure that stops the member
	// quitApply is closed by shutdown: an applier waiting for space gives up.
	quitApply chan struct{}

	removedc    chan struct{} // closed once this member's own removal is applied
	removedOnce sync.Once

	forcing, fresh bool // forceNewCluster's first pass; it found no log
}

type confAt struct {
	index uint64
	cs    raftpb.ConfState
}

// Open starts a member: it loads the newest valid snapshot, restores the
// state machine from it if the state machine is behind, replays the
// committed WAL entries after max(snapshot index, sm.AppliedIndex())
// through sm.Apply, and starts the run loop. If the state machine is
// behind a metadata-only snapshot (its storage lost state it had synced,
// or was replaced by an empty one), Open falls back to the newest snapshot
// that has an image, or to the whole log if it still starts at index 1,
// and fails if neither exists. A first boot bootstraps the
// configured peers. A single member campaigns at once, so Open returns it
// as leader with its term's empty entry applied.
func Open[R any](cfg Config, sm StateMachine[R]) (*Replica[R], error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Replica[R]{
		cfg:         c,
		id:          c.ID,
		log:         c.Logger.With("member", fmt.Sprintf("%x", c.ID)),
		sm:          sm,
		readsIssued: make(map[uint64]*readBatch),
		propc:       make(chan *proposal[R], proposalQueue),
		readc:       make(chan *readReq, readQueue),
		recvc:       make(chan raftpb.Message, recvQueue),
		snapc:       make(chan snapResult, 1),
		applyc:      make(chan applyJob, applyQueue),
		appliedc:    make(chan struct{}, 1),
		applierDone: make(chan struct{}),
		stopc:       make(chan struct{}),
		done:        make(chan struct{}),
		waiters:     make(map[uint64]*proposal[R]),
		removedc:    make(chan struct{}),
		fatalc:      make(chan error, 1),
		quitApply:   make(chan struct{}),
	}
	n.space.log, n.space.dir = n.log, c.DataDir
	if d, ok := sm.(DurableStateMachine[R]); ok && d.Durable() {
		n.durable = true
	}
	// Request ids only need to be unique among this member's in-flight
	// proposals, including entries of a previous run that commit after a
	// restart: seeding from the clock keeps them from colliding.
	n.reqID.Store(uint64(time.Now().UnixNano()))
	if c.ForceNewCluster {
		if err := n.forceNewCluster(); err != nil {
			return nil, fmt.Errorf("force a new cluster from member %x in %s: %w", c.ID, c.DataDir, err)
		}
	}
	if err := n.restore(); err != nil {
		if n.wal != nil {
			n.wal.Close()
		}
		return nil, fmt.Errorf("open consensus member %x in %s: %w", c.ID, c.DataDir, err)
	}
	if err := n.boot(); err != nil {
		n.wal.Close()
		return nil, fmt.Errorf("start consensus member %x in %s: %w", c.ID, c.DataDir, err)
	}
	go n.run()
	go n.probeSpace()
	return n, nil
}

// restore rebuilds raft storage and the state machine from disk: the
// newest usable snapshot, the log after it, the state machine brought up
// to the snapshot, raft's storage and RawNode, then a bootstrap (a new
// member) or the replay of the committed entries.
func (n *Replica[R]) restore() error {
	sf, behind, err := n.loadSnapshot()
	if err != nil {
		return err
	}
	var md raftpb.SnapshotMetadata
	if sf != nil {
		md = sf.Metadata
	}
	rec, err := n.openLog(sf, behind)
	if err != nil {
		return err
	}
	if sf != nil && n.sm.AppliedIndex() < md.Index {
		if err := n.restoreImage(sf); err != nil {
			return err
		}
	}
	hs, err := n.recoveredHardState(md.Index, rec)
	if err != nil {
		return err
	}
	if err := n.newRaft(sf, md, hs, rec.Entries); err != nil {
		return err
	}
	if sf == nil && raft.IsEmptyHardState(rec.HardState) && len(rec.Entries) == 0 {
		return n.startNew()
	}
	return n.replay(md.Index, hs, rec.Entries)
}

// loadSnapshot opens the snapshot dir and picks the snapshot to start
// from: the newest, or, when the state machine is behind a metadata-only
// one (behind), an older base to rebuild it from (nil: the whole log).
func (n *Replica[R]) loadSnapshot() (sf, behind *snap.File, err error) {
	c := &n.cfg
	if n.snaps, err = snap.New(filepath.Join(c.DataDir, "snap"), n.log, c.UnsafeNoFsync); err != nil {
		return nil, nil, err
	}
	sf, err = n.snaps.Load()
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return nil, nil, err
	}
	if sf != nil && !sf.HasImage() && n.sm.AppliedIndex() < sf.Metadata.Index {
		behind = sf
		if sf, err = n.rebuildBase(sf); err != nil {
			return nil, nil, err
		}
	}
	return sf, behind, nil
}

// openLog opens the WAL from sf's index (0 without a snapshot).
func (n *Replica[R]) openLog(sf, behind *snap.File) (*wal.Recovered, error) {
	c := &n.cfg
	walDir := filepath.Join(c.DataDir, "wal")
	var from uint64
	if sf != nil {
		from = sf.Metadata.Index
		if !wal.Exist(walDir) {
			return nil, fmt.Errorf("snapshot %d exists but the wal in %s is missing: refusing to start without the raft HardState", from, walDir)
		}
	}
	w, rec, err := wal.Open(walDir, from, wal.Options{
		SegmentSize: c.walSegmentSize, UnsafeNoFsync: c.UnsafeNoFsync, Logger: n.log,
	})
	if err != nil && behind != nil && sf == nil && errors.Is(err, wal.ErrGap) {
		return nil, fmt.Errorf("state machine is at applied index %d, behind snapshot %d, which has no image, and neither an image snapshot nor a log from index 1 is left to rebuild it from: %w",
			n.sm.AppliedIndex(), behind.Metadata.Index, err)
	}
	if err != nil {
		return nil, err
	}
	n.wal = w
	return rec, nil
}

// recoveredHardState is the log's HardState with the commit index raised
// to what the state machine has applied (and, when forcing, to the log's
// end), checked against the log.
func (n *Replica[R]) recoveredHardState(snapIndex uint64, rec *wal.Recovered) (raftpb.HardState, error) {
	last := snapIndex + uint64(len(rec.Entries))
	applied := max(snapIndex, n.sm.AppliedIndex())
	if applied > last {
		return raftpb.HardState{}, fmt.Errorf("state machine has applied index %d but the log ends at %d", applied, last)
	}
	hs := rec.HardState
	// The commit index is written without fdatasync (raft does not need
	// it durable), so it may lag what was applied: applied implies committed.
	hs.Commit = max(hs.Commit, applied)
	if n.forcing {
		hs.Commit = last // every entry this member holds is kept
	}
	if hs.Commit > last {
		return raftpb.HardState{}, fmt.Errorf("wal commit index %d is beyond its last entry %d", hs.Commit, last)
	}
	return hs, nil
}

// newRaft fills raft's memory storage from the snapshot and the log and
// creates the RawNode.
func (n *Replica[R]) newRaft(sf *snap.File, md raftpb.SnapshotMetadata, hs raftpb.HardState, ents []raftpb.Entry) error {
	c := &n.cfg
	n.ms = raft.NewMemoryStorage()
	if sf != nil {
		if err := n.ms.ApplySnapshot(raftpb.Snapshot{Metadata: md}); err != nil {
			return err
		}
	}
	if err := n.ms.SetHardState(hs); err != nil {
		return err
	}
	if err := n.ms.Append(ents); err != nil {
		return err
	}
	n.snapIndex, n.snapAttempt = md.Index, md.Index
	n.confHist = []confAt{{index: md.Index, cs: md.ConfState}}
	n.stats.snapIndex.Store(md.Index)
	var err error
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID:                       n.id,
		ElectionTick:             c.ElectionTicks,
		HeartbeatTick:            c.HeartbeatTicks,
		Storage:                  n.ms,
		Applied:                  hs.Commit, // replayed below, not via Ready
		MaxSizePerMsg:            maxSizePerMsg,
		MaxCommittedSizePerReady: maxCommittedPerReady,
		MaxInflightMsgs:          maxInflightMsgs,
		CheckQuorum:              true,
		PreVote:                  true,
		Logger:                   raftLogger{n.log},
	})
	if err != nil {
		return err
	}
	n.stats.term.Store(hs.Term)
	n.stats.commit.Store(hs.Commit)
	return nil
}

// startNew handles a member with neither snapshot nor log: forced (there
// is nothing to force), joining (the leader sends the log), or a new
// cluster's member bootstrapping from the configured peers.
func (n *Replica[R]) startNew() error {
	c := &n.cfg
	if n.forcing {
		n.fresh = true // no log: nothing to force
		return nil
	}
	if c.Join {
		// The leader sends the log (or a snapshot) once it has
		// applied the conf change that added this member.
		n.log.Info("consensus: joining an existing cluster: waiting for the leader's log")
		return nil
	}
	peers := make([]raft.Peer, len(c.Peers))
	for i, p := range c.Peers {
		peers[i] = raft.Peer{ID: p.ID, Context: p.Context}
	}
	n.log.Info("consensus: bootstrapping new member", "peers", len(peers))
	return n.rn.Bootstrap(peers)
}

// replay applies the committed entries after the snapshot: conf changes
// go to raft from the snapshot on (raft only knows the snapshot's
// ConfState), commands to the state machine, which skips those at or
// below its AppliedIndex.
func (n *Replica[R]) replay(snapIndex uint64, hs raftpb.HardState, ents []raftpb.Entry) error {
	applied := max(snapIndex, n.sm.AppliedIndex()) // before the replay, for the log
	n.stats.applied.Store(snapIndex)
	replay := ents[:hs.Commit-snapIndex]
	for len(replay) > 0 {
		k := min(len(replay), 1024)
		if err := n.applyCommitted(replay[:k]); err != nil {
			return err
		}
		replay = replay[k:]
	}
	n.stats.applied.Store(hs.Commit)
	n.log.Info("consensus: restored", "snapshot", snapIndex, "sm_applied", applied,
		"replayed", hs.Commit-snapIndex, "commit", hs.Commit, "last", snapIndex+uint64(len(ents)), "term", hs.Term)
	return nil
}

func (n *Replica[R]) restoreImage(sf *snap.File) error {
	rc, err := sf.Image()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := n.sm.Restore(rc); err != nil {
		return fmt.Errorf("restore state machine from %s: %w", sf.Path, err)
	}
	// A received image may reflect a later index than its metadata (see
	// PeerSnapshot); never an earlier one.
	if got := n.sm.AppliedIndex(); got < sf.Metadata.Index {
		return fmt.Errorf("state machine reports applied index %d after restoring snapshot %d", got, sf.Metadata.Index)
	}
	return nil
}

// rebuildBase picks what to rebuild a state machine from when it is behind
// the newest snapshot, which has no image: the newest snapshot with an
// image (the log is kept back to the oldest kept snapshot), else nothing
// (nil: replay the whole log, which wal.Open refuses with ErrGap unless it
// still starts at index 1).
func (n *Replica[R]) rebuildBase(newest *snap.File) (*snap.File, error) {
	applied := n.sm.AppliedIndex()
	img, err := n.snaps.LoadImage()
	switch {
	case err == nil:
		n.log.Warn("consensus: state machine is behind the newest snapshot, which has no image: rebuilding from an older snapshot image and the log",
			"sm_applied", applied, "newest_snapshot", newest.Metadata.Index, "image_snapshot", img.Metadata.Index)
		return img, nil
	case errors.Is(err, snap.ErrNoSnapshot):
		n.log.Warn("consensus: state machine is behind the newest snapshot, which has no image, and no snapshot has one: rebuilding from the whole log",
			"sm_applied", applied, "newest_snapshot", newest.Metadata.Index)
		return nil, nil
	default:
		return nil, err
	}
}

// boot processes the initial Readys synchronously and, for a single
// voter, campaigns right away rather than waiting an election timeout.
func (n *Replica[R]) boot() error {
	if err := n.processReady(); err != nil {
		return err
	}
	cs := n.currentConf()
	if len(cs.Voters) == 1 && cs.Voters[0] == n.id && len(cs.VotersOutgoing) == 0 {
		if err := n.rn.Campaign(); err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
		if err := n.processReady(); err != nil {
			return err
		}
	}
	return nil
}

func (n *Replica[R]) currentConf() raftpb.ConfState {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	return n.confHist[len(n.confHist)-1].cs
}

// run is the only goroutine that touches the RawNode after Open.
func (n *Replica[R]) run() {
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.async = true
	go n.applier()
	for {
		// Stop wins over queued work, so what is still queued fails
		// deterministically rather than racing the shutdown.
		select {
		case <-n.stopc:
			n.shutdown(nil)
			return
		default:
		}
		select {
		case now := <-ticker.C:
			n.expireProposals(now)
			if n.stuck != nil {
				// Frozen until the Ready is durable: raft sees a member
				// that neither ticks nor answers, as if it were paused.
				if err := n.retryStuck(); err != nil {
					n.shutdown(err)
					return
				}
			} else {
				n.rn.Tick()
			}
			n.prepareWAL()
		case p := <-n.propc:
			n.propose(p)
		case err := <-n.fatalc:
			n.shutdown(err)
			return
		case r := <-n.readc:
			n.readsWaiting = append(n.readsWaiting, r)
		case m := <-n.recvc:
			n.step(m)
		case <-n.appliedc:
			n.serveReads()
			n.maybeSnapshot()
		case res := <-n.snapc:
			if err := n.finishSnapshot(res); err != nil {
				n.shutdown(err)
				return
			}
		case <-n.stopc:
			n.shutdown(nil)
			return
		}
		// Everything already queued joins this Ready: one WAL write and
		// one fdatasync for all of it.
		n.drain()
		n.issueReads()
		if err := n.processReady(); err != nil {
			n.shutdown(err)
			return
		}
	}
}

func (n *Replica[R]) drain() {
	for i := 0; i < maxProposalsPerReady; i++ {
		select {
		case p := <-n.propc:
			n.propose(p)
		case r := <-n.readc:
			n.readsWaiting = append(n.readsWaiting, r)
		case m := <-n.recvc:
			n.step(m)
		default:
			return
		}
	}
}

func (n *Replica[R]) step(m raftpb.Message) {
	if n.dropWhileStalled(m) {
		return
	}
	if n.stepLocal(m) { // ReportUnreachable, ReportSnapshot
		return
	}
	if err := n.rn.Step(m); err != nil {
		n.log.Debug("consensus: step", "type", m.Type, "from", m.From, "err", err)
	}
}

// processReady handles Readys until raft has nothing more: after Advance
// a single voter's own append ack commits the entries just persisted, and
// they are applied at once rather than on the next tick.
func (n *Replica[R]) processReady() error {
	for n.stuck == nil && n.rn.HasReady() {
		if err := n.handleReady(); err != nil {
			return err
		}
	}
	return nil
}

func (n *Replica[R]) handleReady() error {
	rd := n.rn.Ready()
	if rd.SoftState != nil {
		n.softState(rd.SoftState)
	}
	// Messages that do not depend on what this Ready persists go out
	// before the fdatasync, so the followers' disk writes overlap the
	// leader's (raft thesis §10.2.1, as etcd does); the rest after.
	msgs := rd.Messages
	if len(msgs) > 0 && n.cfg.Transport != nil {
		var early []raftpb.Message
		early, msgs = splitEarly(msgs, n.lateMsgs[:0], raft.StateType(n.stats.state.Load()) == raft.StateLeader)
		n.lateMsgs = msgs
		if len(early) > 0 {
			n.cfg.Transport.Send(early)
		}
	}
	return n.persistReady(&pendingReady{rd: rd, msgs: msgs, durable: n.wal.LastIndex()})
}

// pendingReady is a Ready taken from raft and not yet fully handled.
type pendingReady struct {
	rd        raft.Ready
	msgs      []raftpb.Message // sent once the Ready is durable
	durable   uint64           // WAL last index before this Ready
	snapSaved bool
}

// persistReady makes a Ready durable and then acts on it. If the disk is
// full it keeps the Ready as n.stuck (raft is not told: no Advance, no
// acknowledgement) and returns nil; retryStuck calls it again.
func (n *Replica[R]) persistReady(p *pendingReady) error {
	rd, msgs, durable := p.rd, p.msgs, p.durable
	hasSnap := !raft.IsEmptySnap(rd.Snapshot)
	if hasSnap && !p.snapSaved {
		if err := n.saveReceivedSnapshot(rd.Snapshot); err != nil {
			return n.stall(p, err)
		}
		p.snapSaved = true
	}
	// Durability first: nothing below happens before this returns.
	if err := n.wal.Save(rd.HardState, rd.Entries); err != nil {
		return n.stall(p, err)
	}
	if n.stuck != nil {
		n.stuck = nil
		n.space.clear(spaceWALWrite)
	}
	if hasSnap {
		if err := n.restoreReceivedSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.ms.SetHardState(rd.HardState); err != nil {
			return err
		}
		n.stats.term.Store(rd.HardState.Term)
		n.stats.commit.Store(rd.HardState.Commit)
	}
	if len(rd.Entries) > 0 {
		if err := n.ms.Append(rd.Entries); err != nil {
			return fmt.Errorf("append to raft storage: %w", err)
		}
	}
	if len(msgs) > 0 && n.cfg.Transport != nil {
		n.cfg.Transport.Send(msgs)
	}
	clear(n.lateMsgs) // drop references to entry data
	n.lateMsgs = n.lateMsgs[:0]
	for _, rs := range rd.ReadStates {
		n.readState(rs)
	}
	if ce := rd.CommittedEntries; len(ce) > 0 {
		// In sync-storage mode raft may hand out entries committed by a
		// quorum of followers before this member persisted them; they were
		// persisted just above. Count it: a single voter must never do so.
		if ce[len(ce)-1].Index > durable {
			n.stats.commitBeforeDurable.Add(1)
		}
		if err := n.applyCommitted(ce); err != nil {
			return err
		}
	}
	n.rn.Advance(rd)
	n.serveReads()
	n.maybeSnapshot()
	return nil
}

// splitEarly partitions a Ready's messages, keeping their order, into
// those that may be sent before the Ready's entries and HardState are
// durable and those that may not. Early are forwarded proposals (a
// client's request, promising nothing) and, from a leader, appends and
// heartbeats: raft counts the leader's own copy towards a commit only
// after its self-acknowledgement, which comes after the write (Advance),
// so a follower persisting first changes nothing. Everything else, above
// all a follower's append and vote responses, waits for the write. early
// reuses msgs' array; late is scratch with the rest appended.
func splitEarly(msgs, scratch []raftpb.Message, leader bool) (early, late []raftpb.Message) {
	k := 0
	for i := range msgs {
		switch t := msgs[i].Type; {
		case t == raftpb.MsgProp, leader && (t == raftpb.MsgApp || t == raftpb.MsgHeartbeat):
			msgs[k] = msgs[i]
			k++
		default:
			scratch = append(scratch, msgs[i])
		}
	}
	return msgs[:k], scratch
}

func (n *Replica[R]) softState(ss *raft.SoftState) {
	if ss.Lead != n.lead {
		if ss.Lead != raft.None {
			n.stats.leaderChanges.Add(1)
			n.log.Info("consensus: leader elected", "leader", fmt.Sprintf("%x", ss.Lead), "term", n.rn.BasicStatus().Term)
		} else {
			n.log.Warn("consensus: no leader", "previous", fmt.Sprintf("%x", n.lead))
		}
		// Reads issued under the old leader may have been dropped.
		for seq, rb := range n.readsIssued {
			delete(n.readsIssued, seq)
			rb.fail(ErrLeaderChanged)
		}
		n.lead = ss.Lead
	}
	n.stats.lead.Store(ss.Lead)
	n.stats.state.Store(uint32(ss.RaftState))
}

// apply hands committed entries, none of them a conf change (see
// applyCommitted), to the state machine in one call and answers the local
// proposers among them. If a FallibleStateMachine fails the batch, nothing
// is answered and the error is returned: the same entries must be applied
// again (or the member stopped), never skipped.
func (n *Replica[R]) apply(ents []raftpb.Entry) error {
	sme := n.smEnts[:0]
	acks := n.acks[:0]
	var cmds uint64
	for i := range ents {
		e := &ents[i]
		se := Entry{Index: e.Index, Term: e.Term}
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) == 0 {
				break // a new leader's empty entry
			}
			member, id, cmd, ok := decodeEnvelope(e.Data)
			se.Data = cmd
			cmds++
			if ok && member == n.id {
				acks = append(acks, ack[R]{id: id, pos: i})
			}
		}
		sme = append(sme, se)
	}
	var res []R
	if f, ok := n.sm.(FallibleStateMachine[R]); ok {
		var err error
		if res, err = f.TryApply(sme); err != nil {
			clear(sme)
			n.smEnts, n.acks = sme[:0], acks[:0]
			return err
		}
	} else {
		res = n.sm.Apply(sme)
	}
	n.stats.proposalsCommitted.Add(cmds)
	n.stats.applied.Store(ents[len(ents)-1].Index)
	n.stats.proposalsApplied.Add(cmds)
	for i := range acks {
		if acks[i].pos < len(res) {
			acks[i].res.val = res[acks[i].pos]
		}
	}
	if n.async {
		// Tell the loop first: the proposers woken last run first, and
		// the loop's bookkeeping goes to the other core.
		select {
		case n.appliedc <- struct{}{}:
		default:
		}
	}
	n.answer(acks)
	clear(sme) // drop references to entry data
	n.smEnts, n.acks = sme[:0], acks[:0]
	return nil
}

// applyRetrying applies ents on the applier, retrying the same batch every
// SpaceProbeInterval while the state machine's storage is full (the
// entries are durable in the WAL, so nothing is lost meanwhile). It
// returns false if the member is stopping or must stop (another failure,
// handed to the loop): the applier must then apply nothing more.
func (n *Replica[R]) applyRetrying(ents []raftpb.Entry) bool {
	for {
		err := n.apply(ents)
		if err == nil {
			n.space.clear(spaceApply)
			return true
		}
		first, last := ents[0].Index, ents[len(ents)-1].Index
		if !retryable(err) {
			n.fatalc <- fmt.Errorf("apply committed entries %d-%d: %w", first, last, err)
			return false
		}
		n.space.set(spaceApply, fmt.Sprintf("apply committed entries %d-%d: %v", first, last, err))
		select {
		case <-n.quitApply:
			return false
		case <-time.After(n.cfg.SpaceProbeInterval):
		}
	}
}

// applyJob is a batch of committed entries for the applier, a barrier the
// applier closes once everything queued before it is applied, or (sync) a
// metadata-only snapshot to take once everything before it is applied.
type applyJob struct {
	ents    []raftpb.Entry
	barrier chan struct{}
	sync    bool
	start   time.Time // of the snapshot (sync)
}

// maxApplyBatch bounds how many committed entries the applier hands the
// state machine in one Apply when it merges queued batches.
const maxApplyBatch = 16384

// applier applies queued batches in order until applyc is closed. Batches
// queued while the previous Apply ran are merged into one Apply call, so a
// state machine that commits (and fsyncs) once per call does so once for
// all of them.
func (n *Replica[R]) applier() {
	defer close(n.applierDone)
	var buf []raftpb.Entry
	var held *applyJob // a non-batch job met while merging
	for {
		var job applyJob
		if held != nil {
			job, held = *held, nil
		} else {
			var ok bool
			if job, ok = <-n.applyc; !ok {
				return
			}
		}
		switch {
		case job.barrier != nil:
			close(job.barrier)
			continue
		case job.sync:
			n.snapc <- n.syncSnapshot(job.start)
			continue
		}
		ents := job.ents
		closed := false
	merge:
		for len(ents) < maxApplyBatch {
			select {
			case next, ok := <-n.applyc:
				if !ok {
					closed = true
					break merge
				}
				if next.ents == nil {
					held = &next
					break merge
				}
				if len(buf) == 0 {
					buf = append(buf, ents...)
				}
				buf = append(buf, next.ents...)
				ents = buf
			default:
				break merge
			}
		}
		ok := n.applyRetrying(ents) // never a conf change: the loop applies those

		clear(buf) // drop references to entry data
		buf = buf[:0]
		if closed {
			return
		}
		if !ok {
			n.drainApplies(held)
			return
		}
	}
}

// drainApplies consumes the applier's queue without applying anything
// until the loop closes it: after a batch that could not be applied no
// later one may be. Barriers are released; snapshots report failure.
func (n *Replica[R]) drainApplies(held *applyJob) {
	fail := func(job applyJob) {
		switch {
		case job.barrier != nil:
			close(job.barrier)
		case job.sync:
			select {
			case n.snapc <- snapResult{err: ErrStopped}:
			default:
			}
		}
	}
	if held != nil {
		fail(*held)
	}
	for job := range n.applyc {
		fail(job)
	}
}

// quiesce waits until the applier has applied everything queued. The loop
// is the only producer, so the state machine stays idle until the loop
// queues more: it may then call Sync or Restore without racing Apply.
func (n *Replica[R]) quiesce() {
	if !n.async {
		return
	}
	done := make(chan struct{})
	n.applyc <- applyJob{barrier: done}
	<-done
}

func (n *Replica[R]) applyConfChange(index uint64, cc raftpb.ConfChangeI) {
	cs := n.rn.ApplyConfChange(cc)
	n.confMu.Lock()
	n.confHist = append(n.confHist, confAt{index: index, cs: *cs})
	n.confMu.Unlock()
	n.log.Info("consensus: membership changed", "index", index, "voters", hexIDs(cs.Voters), "learners", hexIDs(cs.Learners))
}

// confAt returns the membership in force at index.
func (n *Replica[R]) confAt(index uint64) (raftpb.ConfState, error) {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	for i := len(n.confHist) - 1; i >= 0; i-- {
		if n.confHist[i].index <= index {
			return n.confHist[i].cs, nil
		}
	}
	return raftpb.ConfState{}, fmt.Errorf("no membership known at index %d", index)
}

func (n *Replica[R]) issueReads() {
	if len(n.readsWaiting) == 0 {
		return
	}
	if n.stuck != nil { // no Ready until space returns: fail, do not hang
		err := n.space.errOr()
		for _, r := range n.readsWaiting {
			r.fail(err)
		}
		n.readsWaiting = nil
		return
	}
	n.readSeq++
	n.readsIssued[n.readSeq] = &readBatch{reqs: n.readsWaiting}
	n.readsWaiting = nil
	n.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, n.readSeq))
}

func (n *Replica[R]) readState(rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(rs.RequestCtx)
	if rb, ok := n.readsIssued[seq]; ok {
		delete(n.readsIssued, seq)
		rb.index = rs.Index
		n.readsApplying = append(n.readsApplying, rb)
	}
}

func (n *Replica[R]) serveReads() {
	kept := n.readsApplying[:0]
	for _, rb := range n.readsApplying {
		if rb.index <= n.stats.applied.Load() {
			rb.fail(nil)
		} else {
			kept = append(kept, rb)
		}
	}
	clear(n.readsApplying[len(kept):])
	n.readsApplying = kept
}

// saveReceivedSnapshot persists a snapshot sent by the leader: file first,
// then the WAL marker saying the log restarts after it.
func (n *Replica[R]) saveReceivedSnapshot(s raftpb.Snapshot) error {
	if s.Data == nil {
		return fmt.Errorf("received snapshot %d without its image", s.Metadata.Index)
	}
	if err := n.snaps.SaveImage(s.Metadata, s.Data); err != nil {
		return err
	}
	return n.wal.SaveSnapshot(wal.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term, Reset: true})
}

func (n *Replica[R]) restoreReceivedSnapshot(s raftpb.Snapshot) error {
	if err := n.ms.ApplySnapshot(raftpb.Snapshot{Metadata: s.Metadata}); err != nil {
		return fmt.Errorf("apply received snapshot %d: %w", s.Metadata.Index, err)
	}
	n.quiesce() // Restore must not race Apply
	if err := n.sm.Restore(bytes.NewReader(s.Data)); err != nil {
		return fmt.Errorf("restore received snapshot %d: %w", s.Metadata.Index, err)
	}
	n.snapIndex = s.Metadata.Index
	n.stats.applied.Store(s.Metadata.Index)
	n.stats.snapIndex.Store(n.snapIndex)
	n.confMu.Lock()
	n.confHist = []confAt{{index: s.Metadata.Index, cs: s.Metadata.ConfState}}
	n.confMu.Unlock()
	return nil
}

// IsLeader reports whether this member currently leads.
func (n *Replica[R]) IsLeader() bool { return n.stats.lead.Load() == n.id }

// Stop shuts the member down: pending proposals and reads fail with
// ErrStopped, an in-flight snapshot finishes, the state machine is synced
// and the WAL closed. It returns the error that stopped the loop, if any,
// or a shutdown error. Safe to call more than once.
func (n *Replica[R]) Stop() error {
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.done
	return n.stopErr
}

// Done is closed once the member has stopped, by Stop or by a fatal error.
func (n *Replica[R]) Done() <-chan struct{} { return n.done }

func (n *Replica[R]) shutdown(cause error) {
	err := error(ErrStopped)
	if cause != nil {
		n.log.Error("consensus: run loop failed, member stopped", "err", cause)
		err = fmt.Errorf("%w: %w", ErrStopped, cause)
	}
	n.mu.Lock()
	n.cause = cause
	n.mu.Unlock()
	if n.async {
		// Entries already durable and committed are applied and answered,
		// unless the applier waits for space: the WAL has them for the restart.
		close(n.quitApply)
		close(n.applyc)
		<-n.applierDone
		n.async = false
	}
	n.failAll(err)
	n.snapWG.Wait()
	select {
	case res := <-n.snapc: // record a snapshot that finished meanwhile
		if cause == nil {
			if err := n.finishSnapshot(res); err != nil {
				n.log.Error("consensus: finish snapshot at stop", "err", err)
			}
		}
	default:
	}
	errs := []error{cause}
	if err := n.sm.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("sync state machine: %w", err))
	}
	if err := n.wal.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wal: %w", err))
	}
	n.stopErr = errors.Join(errs...)
	close(n.done)
}

func (n *Replica[R]) stoppedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cause != nil {
		return fmt.Errorf("%w: %w", ErrStopped, n.cause)
	}
	return ErrStopped
}

// hexIDs formats member IDs as etcd prints them.
func hexIDs(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%x", id)
	}
	return out
}
