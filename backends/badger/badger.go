// Package badger implements the "badger" backend on
// github.com/dgraph-io/badger/v4, an LSM-tree store.
//
// # Layout
//
// Options.Dir holds a CURRENT file naming the live generation directory
// (data-N), which is a badger database. Restore builds generation N+1 beside
// it and switches CURRENT with an atomic rename, so a failed or interrupted
// Restore never touches the live data. Inside a generation, user key k is
// stored as "k"+k (badger refuses empty keys and its reserved "!badger!"
// prefix) and the applied index as the key "m/applied", written in the same
// badger transaction as the data of every Update.
//
// # Versions
//
// The database is opened in badger's managed mode: the backend assigns every
// Update its own version (commit timestamp) and every View reads at the
// version last published, so readers never see a batch in part. Managed mode
// is what lets an Update larger than one badger transaction stay atomic: when
// badger reports ErrTxnTooBig, the pending chunk is committed at the
// Update's version, invisible to readers until the whole Update is published
// (see Update). An Update that fails after such a spill is undone by writing,
// at a newer version, the values every touched key had before.
//
// # Durability
//
// Badger runs with SyncWrites=false: a commit lands in the memtable's
// write-ahead log, a MAP_SHARED mmap of a .mem file (values of 1 MiB or more
// go to the value log, also mmapped), and nothing is fsynced. The raft log
// is Strata's durable record; Sync fsyncs every WAL and value-log file (not
// only the active ones, as badger's DB.Sync does), then durably records the
// version it covers in the generation's SYNCED file. A clean Close flushes
// the memtables to tables and records the last version as synced.
//
// After SIGKILL the page cache survives, so every committed Update is on
// disk; after power loss (or a kernel crash) any Update since the last Sync
// may be lost, and not as a prefix: badger's WAL pages, spread over several
// .mem files, reach the disk in no particular order, so a later Update (and
// its applied index) can survive while an earlier one is lost. Open cannot
// tell the two apart, so after any unclean shutdown (the newest version on
// disk is above the one SYNCED records) it rolls every key written since the
// last Sync back to its value at that Sync, applied index included. The
// store therefore reopens exactly as it was at the last Sync (or at Close),
// and the applied index is never ahead of the data; the raft log, which is
// only compacted behind a Sync'd index, replays the rest. To keep that
// rollback possible, versions are only garbage-collected up to the last Sync
// (badger's discard timestamp never passes it): Strata must call Sync
// periodically, which it does before compacting the raft log.
//
// # Memory
//
// Options are chosen for 5 million keys under 1 GiB of heap (see
// badgerOptions): two 32 MiB memtables (each a 41.6 MiB arena allocated
// from the Go heap), no block cache (uncompressed tables are read straight
// from their mmap, i.e. from the page cache, not the heap), and table
// indexes and bloom filters read in place from the mmapped tables.
//
// # Limits
//
// Keys are limited to 65000 bytes (badger's limit; longer ones fail Put and
// Restore) and values to badger's ValueLogFileSize (1 GiB - 1).
package badger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/strata-kv/strata/backends"
)

func init() {
	backends.Register("badger", func(opts backends.Options) (backends.Backend, error) {
		return Open(opts.Dir)
	})
}

const (
	dataPrefix = 'k'       // user key k is stored as "k"+k
	maxKeySize = 65000 - 1 // badger's key limit, minus the prefix
	memTable   = 32 << 20  // see badgerOptions
	valueLimit = 1 << 20   // values at least this big go to the value log
)

// metaApplied holds the applied index (8 bytes, big-endian). It sorts after
// every data key, which Restore's StreamWriter relies on.
var metaApplied = []byte("m/applied")

// badgerOptions returns the options of every generation directory.
func badgerOptions(dir string) badger.Options {
	opts := badger.DefaultOptions(dir)
	// The raft log is the durable record; Sync and the rollback on open make
	// up for unsynced commits (see the package doc).
	opts.SyncWrites = false
	// Each memtable is an arena of 1.3x this size on the Go heap. 32 MiB
	// keeps two of them (plus one being flushed) near 125 MiB; the per-
	// transaction limit it implies (15%: ~4.8 MiB, ~52k entries) no longer
	// bounds Updates, which spill (see Update).
	opts.MemTableSize = memTable
	// One mutable memtable and one being flushed: more only buffers writes
	// in heap, and 2 cores flush no faster.
	opts.NumMemtables = 2
	// No block cache: it would be anonymous memory duplicating the page
	// cache. It is required only with compression or encryption.
	opts.BlockCacheSize = 0
	opts.Compression = options.None
	// 0 keeps each table's index and bloom filter where it is, in the
	// mmapped table file, rather than in a heap cache.
	opts.IndexCacheSize = 0
	// Values under 1 MiB (badger's maximum threshold) stay in the LSM, so
	// 100-byte values never need a value-log read or value-log GC.
	opts.ValueThreshold = valueLimit
	// Badger requires at least 2 (the first is dedicated to L0); more than
	// the 2 cores would only contend with the writer.
	opts.NumCompactors = 2
	// One writer (the raft apply loop): conflict tracking is pure cost.
	opts.DetectConflicts = false
	opts.NumVersionsToKeep = 1
	opts.MetricsEnabled = false
	opts.Logger = newLogger()
	return opts
}

// Backend is the badger backends.Backend. Use Open or
// backends.Open("badger", ...).
//
// Concurrency: Update, Restore, Sync and Close are serialized by wmu. Views
// take rmu only to pin the current generation and version, so they run
// concurrently with each other and with the writer.
type Backend struct {
	dir string

	wmu sync.Mutex // serializes writers

	rmu sync.Mutex
	cur *handle // nil once closed; guarded by rmu, replaced under wmu too

	open sync.WaitGroup // handles whose database is still open
}

// handle is one open generation directory.
type handle struct {
	db   *badger.DB
	dir  string
	name string // generation directory name, as in CURRENT

	// Guarded by Backend.rmu.
	ts       uint64         // version Views read at: the last published one
	applied  uint64         // applied index at ts
	synced   uint64         // last version made durable (see Sync)
	readers  map[uint64]int // versions pinned by running Views
	refs     int            // running Views, plus 1 while current
	replaced bool           // replaced by Restore: delete dir when closed

	// Owned by the writer (Backend.wmu).
	lastTs uint64 // highest version ever written
	broken error  // set when a failed Update could not be undone
}

var (
	_ backends.Backend = (*Backend)(nil)
	_ backends.Durable = (*Backend)(nil)
)

// Durable implements backends.Durable: after an unclean shutdown the store
// reopens exactly as of its last Sync (or Close), never earlier, so raft
// snapshots need no image of it (see the package documentation).
func (b *Backend) Durable() bool { return true }

// Open opens (creating it if needed) the store in dir. If the previous
// shutdown was not clean, it first rolls the content back to the last Sync
// (see the package doc).
func Open(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("open badger: no directory given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	name, err := readCurrent(dir)
	if err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	fresh := name == ""
	if fresh {
		name = genName(1)
	}
	// Leftovers of an interrupted Restore, of a replaced generation whose
	// removal was cut short, or of a creation that never wrote CURRENT.
	if err := removeStale(dir, name, fresh); err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	if !fresh {
		// Never let badger create an empty database in place of a
		// generation CURRENT names: that would silently lose the data.
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("open badger %s: generation named by %s: %w", dir, currentFile, err)
		}
	}
	b := &Backend{dir: dir}
	h, err := b.openHandle(name)
	if err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	if fresh {
		if err := writeCurrent(dir, name); err != nil {
			h.closeDB()
			return nil, fmt.Errorf("open badger %s: %w", dir, err)
		}
	}
	b.cur = h
	return b, nil
}

// openHandle opens generation name, rolling back to its last synced version
// if it was not closed cleanly.
func (b *Backend) openHandle(name string) (*handle, error) {
	dir := filepath.Join(b.dir, name)
	db, err := badger.OpenManaged(badgerOptions(dir))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	h := &handle{db: db, dir: dir, name: name, readers: map[uint64]int{}, refs: 1}
	b.open.Add(1)
	fail := func(err error) (*handle, error) {
		h.closeDB()
		b.open.Done()
		return nil, err
	}
	synced, err := readSynced(dir)
	if err != nil {
		return fail(err)
	}
	h.synced = synced
	h.lastTs = db.MaxVersion()
	h.ts = h.lastTs
	if h.lastTs > synced {
		// Unclean shutdown: roll back to the last Sync.
		ts := h.lastTs + 1
		wrote, err := revertAbove(db, synced, h.lastTs, ts)
		if err != nil {
			return fail(fmt.Errorf("roll back %s to version %d: %w", dir, synced, err))
		}
		if wrote {
			h.lastTs, h.ts = ts, ts
		}
	}
	if h.applied, err = readApplied(db, h.ts); err != nil {
		return fail(err)
	}
	db.SetDiscardTs(h.synced)
	return h, nil
}

// readApplied reads the applied index recorded at version ts.
func readApplied(db *badger.DB, ts uint64) (uint64, error) {
	txn := db.NewTransactionAt(ts, false)
	defer txn.Discard()
	item, err := txn.Get(metaApplied)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read applied index: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, fmt.Errorf("read applied index: %w", err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read applied index: %d bytes, want 8", len(v))
	}
	return getUint64(v), nil
}

// closeDB closes the database. If the handle was replaced by a Restore its
// directory is deleted; otherwise, as badger's Close flushed everything to
// synced tables, the last version is recorded as synced so the next Open
// needs no rollback.
func (h *handle) closeDB() error {
	err := h.db.Close()
	if err != nil {
		err = fmt.Errorf("close %s: %w", h.dir, err)
	}
	switch {
	case h.replaced:
		if rerr := os.RemoveAll(h.dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove replaced %s: %w", h.dir, rerr)
		}
	case err == nil:
		err = writeSynced(h.dir, h.lastTs)
	}
	return err
}

// acquire pins the current generation and version for a reader.
func (b *Backend) acquire() (h *handle, ts, applied uint64, err error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	h = b.cur
	if h == nil {
		return nil, 0, 0, backends.ErrClosed
	}
	h.refs++
	h.readers[h.ts]++
	return h, h.ts, h.applied, nil
}

// release unpins what acquire pinned, closing the generation if it was
// replaced or the backend closed meanwhile and this was its last reader.
func (b *Backend) release(h *handle, ts uint64) {
	b.rmu.Lock()
	if n := h.readers[ts] - 1; n > 0 {
		h.readers[ts] = n
	} else {
		delete(h.readers, ts)
	}
	last := b.unref(h)
	b.rmu.Unlock()
	if last {
		b.finish(h)
	}
}

// unref drops a reference; the caller holds rmu and, if it returns true,
// must call finish.
func (b *Backend) unref(h *handle) bool {
	h.refs--
	return h.refs == 0
}

// finish closes a generation nobody uses any more. Errors are logged: the
// caller is a View or a Restore that already succeeded.
func (b *Backend) finish(h *handle) error {
	defer b.open.Done()
	err := h.closeDB()
	if err != nil {
		logger().Error("badger: closing generation", "dir", h.dir, "err", err)
	}
	return err
}

// publish makes version ts, with applied index applied, the one Views read,
// and lets badger discard versions no reader or rollback can need.
func (b *Backend) publish(h *handle, ts, applied uint64) {
	b.rmu.Lock()
	h.ts, h.applied = ts, applied
	discard := h.discardTs()
	b.rmu.Unlock()
	h.db.SetDiscardTs(discard)
}

// discardTs is the version at or below which badger may drop superseded
// versions: neither a running View nor the rollback to the last Sync may
// need an older one. The caller holds rmu.
func (h *handle) discardTs() uint64 {
	d := min(h.synced, h.ts)
	for ts := range h.readers {
		d = min(d, ts)
	}
	return d
}

// writable is the current handle if it may take writes: not after a failed
// rollback, until the store is reopened.
func (b *Backend) writable(op string) (*handle, error) {
	h, err := b.current()
	if err != nil {
		return nil, err
	}
	if h.broken != nil {
		return nil, fmt.Errorf("badger: %s: store needs reopening after a failed rollback: %w", op, h.broken)
	}
	return h, nil
}

// current returns the current generation, for a writer holding wmu.
func (b *Backend) current() (*handle, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.cur == nil {
		return nil, backends.ErrClosed
	}
	return b.cur, nil
}

// View runs fn against the version published last, in a read-only badger
// transaction. It runs concurrently with other Views and with Update.
// Slices fn receives stay valid until View returns. Generations are
// reference-counted, so a Restore or Close never waits for a View to let
// others in: nested Views cannot deadlock. Close does wait for running
// Views before closing badger.
func (b *Backend) View(fn func(r backends.Reader) error) error {
	h, ts, _, err := b.acquire()
	if err != nil {
		return err
	}
	defer b.release(h, ts)
	r := &reader{txn: h.db.NewTransactionAt(ts, false)}
	defer r.finish()
	return fn(r)
}

// Update runs fn in a badger read-write transaction at a new version and
// commits its writes with appliedIndex, then publishes that version. Reads
// through the Writer see its own pending writes.
//
// Big batches: when badger refuses a write with ErrTxnTooBig (the limit is
// 15% of MemTableSize, ~4.8 MiB or ~52k entries), the pending chunk is
// committed at the Update's version and a new transaction continues at the
// same version, reading the chunks committed before. Views read at the
// previously published version, so they see none of it until the last chunk
// (with the applied index) commits and the version is published; a crash in
// between is rolled back on Open. If fn fails or panics after a spill, or
// the final commit fails, the chunks are undone before Update returns (at
// a newer version, leaving the content and applied index as they were); if
// even that fails, later Updates fail until the store is reopened, which
// rolls back.
//
// Writing from inside an Ascend callback fails if it would need a spill.
func (b *Backend) Update(appliedIndex uint64, fn func(w backends.Writer) error) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	h, err := b.writable("update")
	if err != nil {
		return err
	}
	if applied := h.applied; appliedIndex < applied {
		return fmt.Errorf("badger: update at index %d, store is at %d: %w", appliedIndex, applied, backends.ErrIndexBackwards)
	}

	ts := h.lastTs + 1
	w := &writer{batch: batch{db: h.db, ts: ts}}
	w.batch.txn = h.db.NewTransactionAt(ts, true)
	w.reader.txn = w.batch.txn
	done := false
	defer func() {
		w.finish()
		if done || !w.batch.touched {
			return
		}
		// Chunks of this Update may be on disk: make them unreachable.
		h.lastTs = ts
		if err := b.undo(h); err != nil {
			h.broken = err
			logger().Error("badger: undoing a failed update", "err", err)
		}
	}()
	if err := fn(w); err != nil {
		return err
	}
	if err := w.batch.put(metaApplied, putUint64(appliedIndex), w.reader.iters); err != nil {
		return fmt.Errorf("badger: update: record applied index: %w", err)
	}
	if err := w.batch.commit(); err != nil {
		return fmt.Errorf("badger: update at index %d: %w", appliedIndex, err)
	}
	done = true
	h.lastTs = ts
	b.publish(h, ts, appliedIndex)
	return nil
}

// undo writes back, at a new version, the published value of every key
// written above the published version, then publishes that new version
// (same content, same applied index). The caller holds wmu.
func (b *Backend) undo(h *handle) error {
	ts := h.lastTs + 1
	wrote, err := revertAbove(h.db, h.ts, h.lastTs, ts)
	if err != nil {
		return err
	}
	if wrote {
		h.lastTs = ts
		b.publish(h, ts, h.applied)
	}
	return nil
}

// AppliedIndex returns the applied index of the published version, or 0
// once the store is closed.
func (b *Backend) AppliedIndex() uint64 {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.cur == nil {
		return 0
	}
	return b.cur.applied
}

// Sync makes every published Update durable: it fsyncs all of the current
// generation's WAL (.mem) and value-log files and its directory, then
// records the published version in the SYNCED file, which bounds the
// rollback after an unclean shutdown. Only then may badger discard versions
// up to it. Update waits while Sync runs.
func (b *Backend) Sync() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	h, err := b.writable("sync")
	if err != nil {
		return err
	}
	if err := syncFiles(h.db, h.dir); err != nil {
		return fmt.Errorf("badger: sync %s: %w", h.dir, err)
	}
	if err := writeSynced(h.dir, h.ts); err != nil {
		return fmt.Errorf("badger: sync %s: %w", h.dir, err)
	}
	b.rmu.Lock()
	h.synced = h.ts
	discard := h.discardTs()
	b.rmu.Unlock()
	h.db.SetDiscardTs(discard)
	return nil
}

// Close waits for running Views to finish, then closes badger (stopping
// its goroutines; its Close flushes the memtables to tables, so a clean
// Close needs no rollback on the next Open). Later calls fail with
// backends.ErrClosed; closing twice is a no-op.
func (b *Backend) Close() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.rmu.Lock()
	h := b.cur
	b.cur = nil
	last := h != nil && b.unref(h)
	b.rmu.Unlock()
	if h == nil {
		return nil
	}
	var err error
	if last {
		err = b.finish(h)
	}
	b.open.Wait()
	return err
}
