package bbolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/internal/fsutil"
)

func init() {
	backends.Register("bbolt", func(opts backends.Options) (backends.Backend, error) {
		return OpenWith(opts.Dir, Options{UnsafeNoFsync: opts.UnsafeNoFsync})
	})
}

// File names inside the backend's directory.
const (
	dbName        = "strata.db"
	markerName    = dbName + ".unsynced" // see the package documentation
	restorePrefix = dbName + ".restore-" // temporary files of Restore
)

var (
	dataBucket = []byte("data")
	metaBucket = []byte("meta")

	appliedName  = []byte("applied")   // uint64 big-endian
	formatName   = []byte("format")    // formatVersion as decimal text
	emptyKeyName = []byte("empty-key") // the value of the key ""
)

// formatVersion is the layout described in the package documentation.
const formatVersion = "1"

// Backend is the bbolt backends.Backend. Use Open or
// backends.Open("bbolt", ...).
type Backend struct {
	dir, path, marker string

	// db is the open file; nil once closed. Restore replaces it. Readers
	// load it without locking; see beginRead.
	db atomic.Pointer[bolt.DB]
	// applied caches the applied index in db's meta bucket. It is only
	// written under mu, after the commit that stored it.
	applied atomic.Uint64

	// noSync: commits skip fdatasync (Options.UnsafeNoFsync), guarded by
	// the unsynced marker; otherwise every commit is durable.
	noSync bool

	mu    sync.Mutex // serializes Update, Restore, Sync and Close
	arena arena      // value copies of the running Update or Restore
	dirty bool       // the marker exists: commits since the last fdatasync
}

var (
	_ backends.Backend = (*Backend)(nil)
	_ backends.Durable = (*Backend)(nil)
)

// Options tune a bbolt backend. The zero value is the safe default.
type Options struct {
	// UnsafeNoFsync commits without fdatasync (bbolt's NoSync), as
	// --unsafe-no-fsync does for the raft log: a power loss can then leave
	// the file corrupt, which the unsynced marker detects (see the package
	// documentation). Test rigs and benchmarks only.
	UnsafeNoFsync bool
}

// Open opens or creates the store in dir with the default options; see
// OpenWith.
func Open(dir string) (*Backend, error) { return OpenWith(dir, Options{}) }

// OpenWith opens or creates the store in dir, creating dir if needed. It
// fails with ErrUnsafeShutdown if the file may have been corrupted by a
// machine restart (an unsynced marker from another boot, whatever opts
// say), and with a timeout if another process has it open.
func OpenWith(dir string, opts Options) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("bbolt: open: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bbolt: open: %w", err)
	}
	b := &Backend{
		dir:    dir,
		path:   filepath.Join(dir, dbName),
		marker: filepath.Join(dir, markerName),
		noSync: opts.UnsafeNoFsync,
	}
	// Check before bolt.Open: opening a corrupt file can panic inside
	// bbolt (in its freelist rebuild goroutine, beyond recover).
	hadMarker, err := checkMarker(b.marker)
	if err != nil {
		return nil, fmt.Errorf("bbolt: open %s: %w", b.path, err)
	}
	_, statErr := os.Stat(b.path)
	created := errors.Is(statErr, os.ErrNotExist)
	db, err := openDB(b.path, b.noSync)
	if err != nil {
		return nil, fmt.Errorf("bbolt: %w", err)
	}
	applied, err := initBuckets(db)
	if err == nil && created {
		err = fsutil.SyncDir(dir) // the new file's directory entry
	}
	if err == nil {
		err = removeStaleRestores(dir) // we hold the flock: no Restore of ours is running
	}
	// Start from a clean state: the unsynced commits a crashed process left
	// in the page cache, or the buckets just created, become durable now.
	if err == nil {
		if err = db.Sync(); err != nil {
			err = fmt.Errorf("sync %s: %w", b.path, err)
		}
	}
	if err == nil && hadMarker {
		err = removeMarker(b.marker)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bbolt: open %s: %w", b.path, err)
	}
	b.applied.Store(applied)
	b.db.Store(db)
	return b, nil
}

// initialMmapSize is the address space bbolt maps up front (not memory: the
// file only grows as data is written). bbolt must remap when the file
// outgrows its mapping, and a remap waits for every open read transaction,
// so a long Snapshot would stall the writer, and a write inside a View
// would deadlock. 2 GiB covers the design target without ever remapping:
// 5M keys of 100 bytes make a 0.67 GB file after a Restore (full pages),
// up to about twice that once random writes have split every page.
// 32-bit platforms keep bbolt's default growth.
var initialMmapSize = func() int {
	if strconv.IntSize == 32 {
		return 0
	}
	n := 1
	return n << 31
}()

// ErrCorrupt reports a file that fails bbolt's own checks at open.
var ErrCorrupt = errors.New("fails its consistency check")

// openDB opens (or creates) the bbolt file with Strata's options. bbolt
// asserts (panics) on a damaged page while it rebuilds the freelist at
// open; on this goroutine that is recovered and reported as ErrCorrupt
// naming the file, instead of a goroutine dump.
func openDB(path string, noSync bool) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%s %w (%v): restore it from a backup or rejoin the cluster (docs/operations.md)", path, ErrCorrupt, r)
		}
	}()
	return openDBUnchecked(path, noSync)
}

func openDBUnchecked(path string, noSync bool) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Every commit is fdatasync'd (pages, then meta page) unless the
		// operator asked for --unsafe-no-fsync: the file is then the
		// durable copy of the store, and raft snapshots need no image of
		// it. See the package documentation.
		NoSync: noSync,
		// Do not write the freelist on every commit (pages of it, in a
		// fragmented file): it is rebuilt by scanning the tree at open
		// instead, as etcd does.
		NoFreelistSync: true,
		// The hashmap freelist allocates runs in O(1); the array one scans
		// every free page, which degrades with a large fragmented file.
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
		// bbolt waits forever for the flock by default; a second process
		// on the same directory should get an error instead.
		Timeout: 2 * time.Second,
		// Left at their defaults, deliberately: NoGrowSync=false (growing
		// the file fsyncs its size, once per 16 MiB AllocSize), PageSize =
		// OS page, no Mlock (the data is page cache the kernel may evict),
		// no MAP_POPULATE (the open-time freelist scan warms what it needs).
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w (is another process using it?)", path, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// initBuckets creates the buckets of a new file, checks the format of an
// existing one, and returns its applied index.
func initBuckets(db *bolt.DB) (applied uint64, err error) {
	fresh := false
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return fmt.Errorf("has bucket %q but no %q: not a Strata file", k, metaBucket)
			}
			fresh = true
			return nil
		}
		if f := meta.Get(formatName); string(f) != formatVersion {
			return fmt.Errorf("unsupported format %q (want %q)", f, formatVersion)
		}
		if tx.Bucket(dataBucket) == nil {
			return fmt.Errorf("bucket %q missing", dataBucket)
		}
		applied, err = decodeApplied(meta.Get(appliedName))
		return err
	})
	if err == nil && fresh {
		err = db.Update(createBuckets)
	}
	return applied, err
}

// createBuckets lays out an empty store at applied index 0.
func createBuckets(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(dataBucket); err != nil {
		return fmt.Errorf("create data bucket: %w", err)
	}
	meta, err := tx.CreateBucket(metaBucket)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	if err := meta.Put(formatName, []byte(formatVersion)); err != nil {
		return err
	}
	return meta.Put(appliedName, encodeApplied(0))
}

func encodeApplied(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

func decodeApplied(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("applied index is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// viewTxn starts a read-only txn on the current file; the caller rolls
// back t.tx. Restore and Close swap db before closing the old file, so a
// Begin that finds it closed retries on the new one, or reports ErrClosed.
func (b *Backend) viewTxn() (*txn, error) {
	tx, err := b.beginRead()
	if err != nil {
		return nil, err
	}
	t, err := newTxn(tx)
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	return t, nil
}

func (b *Backend) beginRead() (*bolt.Tx, error) {
	for {
		db := b.db.Load()
		if db == nil {
			return nil, backends.ErrClosed
		}
		tx, err := db.Begin(false)
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bbolt: begin read: %w", err)
		}
		return tx, nil
	}
}

// newTxn returns a txn over tx's buckets.
func newTxn(tx *bolt.Tx) (*txn, error) {
	t := &txn{tx: tx, data: tx.Bucket(dataBucket)}
	if t.data == nil {
		return nil, fmt.Errorf("bbolt: bucket %q missing", dataBucket)
	}
	return t, nil
}

// View runs fn in a bbolt read-only transaction: one committed state,
// unaffected by concurrent Updates. It waits for nothing but bbolt's brief
// meta lock. fn must not call Update, Restore or Close (see the package
// documentation), and the Reader must not outlive fn or leave its goroutine.
func (b *Backend) View(fn func(r backends.Reader) error) error {
	t, err := b.viewTxn()
	if err != nil {
		return err
	}
	defer t.tx.Rollback()
	defer func() { t.done = true }()
	return fn(t)
}

// Update runs fn in one bbolt read-write transaction and stores
// appliedIndex in the same transaction, so both commit or neither does.
// If fn returns an error (returned as is) or panics, the transaction rolls
// back. When Update returns nil the commit is durable (fdatasync'd), unless
// the backend was opened with UnsafeNoFsync: it then survives a process
// crash, and only Sync makes it survive a power loss.
func (b *Backend) Update(appliedIndex uint64, fn func(w backends.Writer) error) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	db := b.db.Load()
	if db == nil {
		return backends.ErrClosed
	}
	if cur := b.applied.Load(); appliedIndex < cur {
		return fmt.Errorf("bbolt: update at index %d, store is at %d: %w", appliedIndex, cur, backends.ErrIndexBackwards)
	}
	if b.noSync {
		if err := b.markDirty(); err != nil {
			return err
		}
	}
	tx, err := db.Begin(true)
	if err != nil {
		return fmt.Errorf("bbolt: begin update: %w", err)
	}
	var t *txn
	committed := false
	defer func() {
		if t != nil {
			t.done = true // a Writer kept past fn must not reach the transaction
		}
		if !committed {
			tx.Rollback() // also when fn panics
		}
		b.arena.reset() // after the transaction: it no longer references the copies
	}()
	if t, err = newTxn(tx); err != nil {
		return err
	}
	t.arena = &b.arena
	if err := fn(t); err != nil {
		return err
	}
	if err := t.metaB().Put(appliedName, encodeApplied(appliedIndex)); err != nil {
		return fmt.Errorf("bbolt: store applied index: %w", err)
	}
	committed = true // Commit closes the transaction whether or not it fails
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bbolt: commit at index %d: %w", appliedIndex, err)
	}
	b.applied.Store(appliedIndex)
	return nil
}

// AppliedIndex returns the index of the last successful Update or Restore.
// After Close it keeps returning the last value.
func (b *Backend) AppliedIndex() uint64 { return b.applied.Load() }

// Durable implements backends.Durable: the file is the durable copy of the
// store. By default every commit is fdatasync'd, so after a power loss the
// file reopens at its last commit. With UnsafeNoFsync only Sync makes
// commits durable and a power loss can corrupt the file (Open then fails
// with ErrUnsafeShutdown), as --unsafe-no-fsync accepts for the raft log.
func (b *Backend) Durable() bool { return true }

// Sync fdatasyncs the file: every Update so far survives a power loss
// afterwards (by default each commit already did; Sync then costs one
// fdatasync of a clean file). It holds the writer lock for the fdatasync so that no commit
// slips in between the sync and the marker's removal; Strata calls Sync
// and Update from the same goroutine anyway.
func (b *Backend) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	db := b.db.Load()
	if db == nil {
		return backends.ErrClosed
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("bbolt: sync %s: %w", b.path, err)
	}
	return b.markClean()
}

// Close syncs and closes the file (a clean shutdown leaves no marker, so a
// later reboot does not force a rebuild). It waits for running Views and
// Snapshots to finish; new ones fail with ErrClosed. A second Close is a
// no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	db := b.db.Swap(nil)
	if db == nil {
		return nil
	}
	err := db.Sync()
	if err != nil {
		err = fmt.Errorf("bbolt: sync %s: %w", b.path, err)
	} else {
		err = b.markClean()
	}
	if cerr := db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("bbolt: close %s: %w", b.path, cerr))
	}
	return err
}

// markDirty creates the unsynced marker before the first commit after a
// sync. The caller holds mu.
func (b *Backend) markDirty() error {
	if b.dirty {
		return nil
	}
	if err := writeMarker(b.marker); err != nil {
		return fmt.Errorf("bbolt: %w", err)
	}
	b.dirty = true
	return nil
}

// markClean removes the marker after an fdatasync covering every commit.
// The caller holds mu.
func (b *Backend) markClean() error {
	if !b.dirty {
		return nil
	}
	if err := removeMarker(b.marker); err != nil {
		return fmt.Errorf("bbolt: %w", err)
	}
	b.dirty = false
	return nil
}
