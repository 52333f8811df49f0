package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"

	"github.com/strata-kv/strata/internal/fsutil"
)

// DefaultSegmentSize is the preallocated size of a segment.
const DefaultSegmentSize = 64 << 20

// ErrCorrupt reports data loss or damage that Open cannot repair without
// dropping acknowledged records; the log needs operator attention.
var ErrCorrupt = errors.New("wal: corrupt")

// ErrFailed marks a WAL that must not be written again: an fdatasync
// failed (after which the kernel may have dropped the dirty pages and a
// retry would falsely succeed: fsyncgate) or a write could not be undone.
// The process must stop and recover from what is on disk.
var ErrFailed = errors.New("wal: failed")

// ErrGap reports that the log does not continue the snapshot it was opened
// after: the entries in between are missing, so a newer snapshot is needed.
var ErrGap = errors.New("wal: entries missing after snapshot")

// Snapshot is a snapshot marker: the log restarts after Index.
type Snapshot struct {
	Index, Term uint64
	// Reset marks a snapshot received from a leader that replaced the log:
	// entries written before the marker are obsolete.
	Reset bool
}

// Options tune a WAL. The zero value is valid.
type Options struct {
	// SegmentSize is the preallocated size of a segment file (default
	// DefaultSegmentSize). A segment is cut when the next batch would
	// overflow it.
	SegmentSize int64
	// UnsafeNoFsync skips every fdatasync: a crash may lose acknowledged
	// writes. For test rigs and benchmarks only.
	UnsafeNoFsync bool
	// Logger receives repair reports; default slog.Default().
	Logger *slog.Logger
}

// Recovered is the state replayed by Open.
type Recovered struct {
	// HardState is the newest HardState saved (zero if none).
	HardState raftpb.HardState
	// Entries are the live entries after the index Open was given, in
	// order and contiguous, with conflicting suffixes already replaced.
	Entries []raftpb.Entry
	// Snapshot is the newest snapshot marker (zero if none).
	Snapshot Snapshot
	// Repaired is true if a torn tail was cut.
	Repaired bool
}

// Stats are cumulative counters since Open.
type Stats struct {
	Fsyncs     uint64 // fdatasync calls
	FsyncNanos uint64 // total time spent in them
	// FsyncBuckets[i] counts the fdatasyncs that took at most
	// FsyncBucketBounds[i] and more than the bound before it; the last
	// element counts those above every bound. Its total is Fsyncs (read
	// concurrently with an fdatasync, the two may differ by one).
	FsyncBuckets [len(FsyncBucketBounds) + 1]uint64
	Bytes        uint64 // bytes written
	Segments     int    // live segment files
}

// FsyncBucketBounds are the upper bounds of Stats.FsyncBuckets: 25 µs
// doubling up to 3.3 s (an fdatasync into a preallocated segment takes
// 57–77 µs on an idle SSD; etcd's wal_fsync_duration_seconds starts at 1 ms,
// too coarse for that).
var FsyncBucketBounds = [...]time.Duration{
	25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond,
	400 * time.Microsecond, 800 * time.Microsecond, 1600 * time.Microsecond, 3200 * time.Microsecond,
	6400 * time.Microsecond, 12800 * time.Microsecond, 25600 * time.Microsecond, 51200 * time.Microsecond,
	102400 * time.Microsecond, 204800 * time.Microsecond, 409600 * time.Microsecond, 819200 * time.Microsecond,
	1638400 * time.Microsecond, 3276800 * time.Microsecond,
}

// WAL is an open write-ahead log positioned for appending. Its methods must
// be called from one goroutine, except Stats.
type WAL struct {
	dir  string
	opts Options
	log  *slog.Logger

	segs []segment // live segments, oldest first; the last one is f
	f    *os.File
	next *os.File // the next segment, preallocated ahead (nextTmp in dir)
	// failed is set once the log must not be written again (ErrFailed).
	failed error
	off    int64 // append offset in f
	head   int64 // bytes of f taken by the segment head (marker, HardState)
	buf    []byte

	last uint64 // index of the last entry written
	hs   raftpb.HardState
	// hsPending: hs holds a commit-only change not yet written.
	hsPending bool
	snap      Snapshot

	fsyncs, fsyncNanos, bytes atomic.Uint64
	fsyncHist                 [len(FsyncBucketBounds) + 1]atomic.Uint64
	nsegs                     atomic.Int64
}

// Open opens (creating if needed) the log in dir, replays it and returns it
// ready for appending. Entries at or below from (the index of the snapshot
// the caller restored) are dropped from Recovered.Entries. A torn tail is
// cut; mid-log corruption fails with ErrCorrupt; a log that does not reach
// back to from+1 fails with ErrGap.
func Open(dir string, from uint64, opts Options) (*WAL, *Recovered, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &WAL{dir: dir, opts: opts, log: opts.Logger.With("wal", dir)}
	rec, err := w.open(from)
	if err != nil {
		if w.f != nil {
			w.f.Close()
		}
		return nil, nil, fmt.Errorf("open wal %s: %w", dir, err)
	}
	return w, rec, nil
}

// Exist reports whether dir holds at least one segment.
func Exist(dir string) bool {
	segs, err := listSegments(dir)
	return err == nil && len(segs) > 0
}

func (w *WAL) open(from uint64) (*Recovered, error) {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return nil, err
	}
	segs, err := listSegments(w.dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		f, path, err := createSegment(w.dir, 0, from+1, w.opts.SegmentSize, nil)
		if err != nil {
			return nil, err
		}
		w.f, w.segs, w.last = f, []segment{{seq: 0, first: from + 1, path: path}}, from
		w.nsegs.Store(1)
		return &Recovered{}, nil
	}
	rp := replayer{from: from, last: from}
	out := &Recovered{}
	for i, s := range segs {
		isLast := i == len(segs)-1
		res, err := replaySegment(s.path, isLast, &rp)
		if err != nil {
			return nil, fmt.Errorf("segment %s: %w", filepath.Base(s.path), err)
		}
		if !isLast {
			continue
		}
		f, err := os.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		w.f = f
		if res.dirty > res.end {
			w.log.Warn("wal: cutting torn tail", "segment", filepath.Base(s.path),
				"offset", res.end, "bytes", res.dirty-res.end, "invalid_at", res.stop)
			if err := zeroRange(f, int64(res.end), int64(res.dirty)); err != nil {
				return nil, fmt.Errorf("cut torn tail of %s: %w", s.path, err)
			}
			out.Repaired = true
		}
		if err := preallocate(f, w.opts.SegmentSize); err != nil {
			if !fsutil.IsNoSpace(err) {
				return nil, fmt.Errorf("preallocate %s: %w", s.path, err)
			}
			// A full disk must not keep the member from starting: the
			// segment grows as it is written, and a write that finds no
			// space waits for it like any other.
			w.log.Warn("wal: cannot preallocate the last segment: disk full", "segment", s.path, "err", err)
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		w.off = int64(res.end)
	}
	w.segs = segs
	w.nsegs.Store(int64(len(segs)))
	w.last, w.hs, w.snap = rp.last, rp.hs, rp.snap
	out.HardState, out.Entries, out.Snapshot = rp.hs, rp.ents, rp.snap
	return out, nil
}

// replaySegment scans one segment and feeds its records to rp. The file is
// mapped read-only rather than read: a 64 MiB segment then costs page
// cache, not heap, and decoded entries copy what they keep.
func replaySegment(path string, last bool, rp *replayer) (scanResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return scanResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	var data []byte
	if st.Size() > 0 {
		data, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return scanResult{}, fmt.Errorf("mmap: %w", err)
		}
		defer unix.Munmap(data)
	}
	res, err := scanSegment(data, last)
	if err != nil {
		return res, err
	}
	for _, r := range res.recs {
		if err := rp.record(r); err != nil {
			return res, err
		}
	}
	res.recs = nil // they point into the mapping
	return res, nil
}

func zeroRange(f *os.File, from, to int64) error {
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return fdatasync(f)
}

// replayer folds records into the recovered state.
type replayer struct {
	from uint64
	ents []raftpb.Entry
	last uint64 // last entry index seen, including those <= from
	hs   raftpb.HardState
	// hsPending: hs holds a commit-only change not yet written.
	hsPending bool
	snap      Snapshot
}

func (rp *replayer) record(r record) error {
	switch r.typ {
	case recEntry:
		var e raftpb.Entry
		if err := e.Unmarshal(r.payload); err != nil {
			return fmt.Errorf("%w: decode entry: %v", ErrCorrupt, err)
		}
		return rp.entry(e)
	case recHardState:
		var hs raftpb.HardState
		if err := hs.Unmarshal(r.payload); err != nil {
			return fmt.Errorf("%w: decode hardstate: %v", ErrCorrupt, err)
		}
		rp.hs = hs
	case recSnapshot:
		s, err := decodeMarker(r.payload)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		rp.snap = s
		if s.Reset {
			rp.ents, rp.last = rp.ents[:0], s.Index
		}
	}
	return nil
}

func (rp *replayer) entry(e raftpb.Entry) error {
	rp.last = e.Index
	if e.Index <= rp.from {
		// Covered by the snapshot; a rewrite this low also obsoletes
		// anything after it.
		rp.ents = rp.ents[:0]
		return nil
	}
	if len(rp.ents) == 0 {
		if e.Index != rp.from+1 {
			return fmt.Errorf("%w: first entry after snapshot %d is %d", ErrGap, rp.from, e.Index)
		}
		rp.ents = append(rp.ents, e)
		return nil
	}
	first, lastEnt := rp.ents[0].Index, rp.ents[len(rp.ents)-1].Index
	switch {
	case e.Index <= lastEnt:
		// A new leader overwrote the suffix from e.Index on.
		rp.ents = append(rp.ents[:e.Index-first], e)
	case e.Index == lastEnt+1:
		rp.ents = append(rp.ents, e)
	default:
		return fmt.Errorf("%w: entry %d follows entry %d", ErrCorrupt, e.Index, lastEnt)
	}
	return nil
}

// Save appends entries and, if not empty, the HardState as one batch: one
// write and, when raft requires it (new entries, term or vote change), one
// fdatasync; it then returns only once the batch is durable. A HardState
// whose only change is the commit index is not written at once but carried
// by the next batch, Sync or Close: raft does not need it durable, and a
// lagging commit index costs only re-learning it. A failed Save leaves the
// WAL unusable: the caller must stop.
func (w *WAL) Save(hs raftpb.HardState, ents []raftpb.Entry) error {
	if w.failed != nil {
		return w.failed
	}
	hasHS := !raft.IsEmptyHardState(hs)
	if !hasHS && len(ents) == 0 {
		return nil
	}
	prev := w.hs
	if !hasHS {
		hs = prev
	}
	mustSync := raft.MustSync(hs, prev, len(ents))
	if !mustSync && len(ents) == 0 {
		// Only the commit index moved. raft does not need it durable (a
		// lagging commit index is re-learned), so defer it to the next
		// write instead of paying a write(2) per round.
		w.hs, w.hsPending = hs, true
		return nil
	}
	if w.hsPending && !hasHS {
		hasHS = true // carry the deferred HardState in this batch
	}

	size := 0
	for i := range ents {
		size += headerSize + padded(ents[i].Size())
	}
	if hasHS {
		size += headerSize + padded(hs.Size())
	}
	if err := w.maybeCut(int64(size)); err != nil {
		return err
	}
	batch := uint64(w.off)
	buf := w.buf[:0]
	for i := range ents {
		e := &ents[i]
		var flags uint8
		if i == len(ents)-1 && !hasHS {
			flags = flagBatchEnd
		}
		buf = appendRecord(buf, recEntry, flags, batch, e.Size(), func(b []byte) { _, _ = e.MarshalToSizedBuffer(b) })
	}
	if hasHS {
		buf = appendRecord(buf, recHardState, flagBatchEnd, batch, hs.Size(), func(b []byte) { _, _ = hs.MarshalToSizedBuffer(b) })
	}
	w.buf = buf
	if err := w.write(buf, mustSync); err != nil {
		return err
	}
	if len(ents) > 0 {
		w.last = ents[len(ents)-1].Index
	}
	w.hs, w.hsPending = hs, false
	return nil
}

// SaveSnapshot durably records a snapshot marker. Call it only after the
// snapshot itself is durable, so replay never points at a missing one.
func (w *WAL) SaveSnapshot(s Snapshot) error {
	if w.failed != nil {
		return w.failed
	}
	if err := w.flushHardState(); err != nil {
		return err
	}
	if err := w.maybeCut(headerSize + markerSize); err != nil {
		return err
	}
	w.buf = appendRecord(w.buf[:0], recSnapshot, flagBatchEnd, uint64(w.off), markerSize, func(b []byte) { encodeMarker(b, s) })
	if err := w.write(w.buf, true); err != nil {
		return err
	}
	w.snap = s
	if s.Reset {
		w.last = s.Index
	}
	return nil
}

func (w *WAL) write(buf []byte, sync bool) error {
	if n, err := writeAt(w.f, buf, w.off); err != nil {
		err = fmt.Errorf("wal write %s at offset %d: %w", w.f.Name(), w.off, err)
		// Undo a partial write, so a retry at the same offset leaves no
		// stale records behind it; zeros overwrite blocks already there.
		if n > 0 {
			if _, zerr := w.f.WriteAt(make([]byte, n), w.off); zerr != nil {
				return w.fail(fmt.Errorf("%w (and undoing it: %v)", err, zerr))
			}
		}
		if !fsutil.IsNoSpace(err) {
			return w.fail(err)
		}
		return err
	}
	w.off += int64(len(buf))
	w.bytes.Add(uint64(len(buf)))
	if sync {
		return w.fdatasync()
	}
	return nil
}

// Sync makes everything saved durable, a deferred HardState included.
func (w *WAL) Sync() error {
	if w.failed != nil {
		return w.failed
	}
	if err := w.flushHardState(); err != nil {
		return err
	}
	return w.fdatasync()
}

// flushHardState writes (without syncing) a deferred commit-only HardState.
func (w *WAL) flushHardState() error {
	if !w.hsPending {
		return nil
	}
	hs := w.hs
	if err := w.maybeCut(int64(headerSize + padded(hs.Size()))); err != nil {
		return err
	}
	if !w.hsPending { // the new segment's head carries it
		return nil
	}
	w.buf = appendRecord(w.buf[:0], recHardState, flagBatchEnd, uint64(w.off), hs.Size(), func(b []byte) { _, _ = hs.MarshalToSizedBuffer(b) })
	if err := w.write(w.buf, false); err != nil {
		return err // still pending: a retry writes it
	}
	w.hsPending = false
	return nil
}

func (w *WAL) fdatasync() error {
	if w.opts.UnsafeNoFsync {
		return nil
	}
	start := time.Now()
	err := fdatasync(w.f)
	d := time.Since(start)
	w.fsyncNanos.Add(uint64(d))
	i := 0
	for i < len(FsyncBucketBounds) && d > FsyncBucketBounds[i] {
		i++
	}
	w.fsyncHist[i].Add(1)
	w.fsyncs.Add(1)
	if err = fsyncFault(w.f.Name(), err); err != nil {
		return w.fail(fmt.Errorf("wal fdatasync %s: %w", w.f.Name(), err))
	}
	return nil
}

// fail records that the log must not be written again and returns err
// marked ErrFailed.
func (w *WAL) fail(err error) error {
	w.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	return w.failed
}

// maybeCut starts a new segment if a batch of n bytes does not fit in the
// current one (a batch larger than a whole segment just grows it).
func (w *WAL) maybeCut(n int64) error {
	if w.off+n <= w.opts.SegmentSize || w.off <= w.head {
		return nil
	}
	return w.cut(n)
}

// cut seals the current segment and starts the next one. The new segment
// begins with the current snapshot marker and HardState so that it stays
// self-sufficient once older segments are released.
func (w *WAL) cut(n int64) error {
	// The next segment first: without space for it the current one stays
	// open and unchanged, so the batch may be retried once space returns.
	if w.next == nil {
		if err := w.prepareNext(n); err != nil {
			return err
		}
	}
	cur := w.segs[len(w.segs)-1]
	sealed := w.off
	// Seal: drop the unused preallocation and make everything durable, so
	// a sealed segment never ends in a torn batch.
	if err := w.f.Truncate(w.off); err != nil {
		return w.fail(fmt.Errorf("seal segment %s: %w", cur.path, err))
	}
	if !w.opts.UnsafeNoFsync {
		if err := fsyncFault(cur.path, w.f.Sync()); err != nil {
			return w.fail(fmt.Errorf("seal segment %s: %w", cur.path, err))
		}
	}
	if err := w.f.Close(); err != nil {
		return w.fail(fmt.Errorf("seal segment %s: %w", cur.path, err))
	}
	w.f = nil
	var head []byte
	hasSnap, hasHS := w.snap != (Snapshot{}), !raft.IsEmptyHardState(w.hs)
	if hasSnap {
		var flags uint8
		if !hasHS {
			flags = flagBatchEnd
		}
		s := w.snap
		s.Reset = false // the segment head only repeats where the log restarts
		head = appendRecord(head, recSnapshot, flags, 0, markerSize, func(b []byte) { encodeMarker(b, s) })
	}
	if hasHS {
		hs := w.hs
		head = appendRecord(head, recHardState, flagBatchEnd, 0, hs.Size(), func(b []byte) { _, _ = hs.MarshalToSizedBuffer(b) })
	}
	next := segment{seq: cur.seq + 1, first: w.last + 1}
	f, path, err := installSegment(w.next, w.dir, next.seq, next.first, head, w.opts.UnsafeNoFsync)
	w.next = nil
	if err != nil {
		return w.fail(err)
	}
	next.path = path
	w.f, w.off, w.head = f, int64(len(head)), int64(len(head))
	w.hsPending = false // the head carries it
	w.segs = append(w.segs, next)
	w.nsegs.Store(int64(len(w.segs)))
	w.log.Debug("wal: segment cut", "sealed", cur.path, "sealed_bytes", sealed, "next", path, "first_index", next.first)
	return nil
}

// PrepareNext preallocates the next segment once the current one is half
// full, so a full disk shows up while half a segment is still left to
// write into, and a cut never waits for fallocate. It does nothing when
// the next segment is ready or not yet due; it fails (ENOSPC) when there
// is no room for it, and may be called again later.
func (w *WAL) PrepareNext() error {
	if w.failed != nil || w.next != nil || w.f == nil || w.off < w.opts.SegmentSize/2 {
		return nil
	}
	return w.prepareNext(0)
}

// prepareNext creates the next segment, preallocated and synced, under a
// temporary name (removed by listSegments if a crash leaves it).
// If need > 0 (a cut that cannot wait) and the disk has no room for a
// whole segment, it settles for need bytes rounded up to 1 MiB: the
// segment then grows as it is written.
func (w *WAL) prepareNext(need int64) error {
	tmp := filepath.Join(w.dir, nextTmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("preallocate next wal segment %s: %w", tmp, err)
	}
	err = preallocate(f, w.opts.SegmentSize)
	if small := (need + 1<<20 - 1) &^ (1<<20 - 1); err != nil && need > 0 && small < w.opts.SegmentSize && fsutil.IsNoSpace(err) {
		w.log.Warn("wal: no room for a whole segment: preallocating only part of it", "bytes", small, "err", err)
		err = preallocate(f, small)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("preallocate next wal segment %s (%d bytes): %w", tmp, w.opts.SegmentSize, err)
	}
	w.next = f
	return nil
}

// ReleaseTo deletes the segments that hold only entries at or below index
// (covered by a durable snapshot at index). The current segment is never
// deleted.
func (w *WAL) ReleaseTo(index uint64) error {
	// Segment k holds every entry >= segs[k].first, so all segments before
	// the newest k with first <= index+1 hold only entries <= index.
	k := 0
	for i, s := range w.segs {
		if s.first <= index+1 {
			k = i
		}
	}
	if k == 0 {
		return nil
	}
	for _, s := range w.segs[:k] {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("release wal segment %s: %w", s.path, err)
		}
	}
	w.segs = append(w.segs[:0], w.segs[k:]...)
	w.nsegs.Store(int64(len(w.segs)))
	// Removals must be durable in order: a hole in the sequence is
	// reported as corruption on the next Open.
	if err := fsutil.SyncDir(w.dir); err != nil {
		return fmt.Errorf("release wal %s: %w", w.dir, err)
	}
	return nil
}

// ReleaseIndexToKeep returns the index whose ReleaseTo would leave keep
// segments (0 when there are no more than that).
func (w *WAL) ReleaseIndexToKeep(keep int) uint64 {
	d := len(w.segs) - keep
	if keep <= 0 || d <= 0 {
		return 0
	}
	return w.segs[d].first - 1
}

// LastIndex returns the index of the last entry written.
func (w *WAL) LastIndex() uint64 { return w.last }

// Stats returns cumulative counters; safe for concurrent use.
func (w *WAL) Stats() Stats {
	s := Stats{
		Fsyncs:     w.fsyncs.Load(),
		FsyncNanos: w.fsyncNanos.Load(),
		Bytes:      w.bytes.Load(),
		Segments:   int(w.nsegs.Load()),
	}
	for i := range w.fsyncHist {
		s.FsyncBuckets[i] = w.fsyncHist[i].Load()
	}
	return s
}

// Close syncs and closes the current segment; its preallocation is kept.
func (w *WAL) Close() error {
	if w.next != nil {
		w.next.Close()
		os.Remove(w.next.Name())
		w.next = nil
	}
	if w.f == nil {
		return nil
	}
	var err error
	if w.failed == nil { // never retry a failed fsync (fsyncgate)
		err = w.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

// FirstIndex returns the index of the first entry the oldest segment in dir
// can hold (1 for a log that was never released), without replaying it.
// It fails if dir holds no segment.
func FirstIndex(dir string) (uint64, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return 0, fmt.Errorf("wal first index %s: %w", dir, err)
	}
	if len(segs) == 0 {
		return 0, fmt.Errorf("wal first index %s: no segment", dir)
	}
	return segs[0].first, nil
}
