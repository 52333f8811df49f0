// Package backends defines the storage interface under Strata's engine and
// keeps the registry of implementations selectable with --backend.
//
// A Backend is an ordered byte-key store with atomic batches. It knows
// nothing of etcd v2 semantics: keys and values are opaque to it. The raft
// log is the durable record, so a backend may defer fsync; what it must
// guarantee is that the applied raft index it reports is always consistent
// with the data it holds (both are committed in one atomic step).
package backends

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// ErrNotFound is returned by Reader.Get when the key does not exist.
var ErrNotFound = errors.New("key not found")

// ErrClosed is returned by operations on a closed backend.
var ErrClosed = errors.New("backend closed")

// Reader reads a consistent snapshot of the store.
//
// Slices passed to callers (Get results, Ascend callbacks) are only valid
// until the enclosing View or Update returns, and must not be modified;
// copy them to keep or change them.
type Reader interface {
	// Get returns the value stored at key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Ascend calls fn for every key in [start, end) in ascending byte order
	// until fn returns false. A nil end means no upper bound.
	Ascend(start, end []byte, fn func(key, value []byte) bool) error
}

// Writer is a Reader that can also change the store. Reads through a Writer
// observe the writes made earlier in the same transaction. Writing from
// inside an Ascend callback has undefined effect: collect keys, then write.
type Writer interface {
	Reader
	// Put stores value at key. The backend copies both slices.
	Put(key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
}

// Backend is the storage engine interface every implementation satisfies.
//
// Concurrency: any number of View calls may run concurrently with each other
// and with one Update. Update calls are serialized by the caller (the engine
// applies the raft log from one goroutine) but implementations must still be
// safe if they are not.
type Backend interface {
	// View runs fn against a consistent, read-only snapshot.
	View(fn func(r Reader) error) error
	// Update runs fn in a write transaction. If fn returns nil, every write
	// it made and appliedIndex become visible atomically; otherwise nothing
	// does. An appliedIndex below AppliedIndex fails with ErrIndexBackwards
	// without running fn.
	Update(appliedIndex uint64, fn func(w Writer) error) error
	// AppliedIndex is the raft index recorded by the last successful Update
	// (or Restore); 0 for a new store.
	AppliedIndex() uint64
	// Snapshot writes every key and value, plus the applied index, to w in
	// the portable format of WriteSnapshot, from one consistent view.
	Snapshot(w io.Writer) error
	// Restore replaces the whole content with a stream made by Snapshot
	// (from any backend) and sets the applied index recorded in it.
	Restore(r io.Reader) error
	// Sync makes everything written so far durable on the backend's own
	// files; used before the raft log behind it is compacted.
	Sync() error
	// Close releases resources. It does not need to sync.
	Close() error
}

// Durable is implemented by a Backend whose own files are a durable copy
// of the store, as opposed to one whose content lives only in memory (and
// so must be rebuilt from a raft snapshot image and the log at every
// start). Strata takes metadata-only raft snapshots for such a backend:
// Sync, then a record of the index it covered, and no image.
type Durable interface {
	// Durable reports that once Sync returns nil, the store as of that
	// Sync survives a process crash and a power loss: reopening the
	// directory yields that state or a later one, never an earlier one,
	// with AppliedIndex at least as high as at that Sync. (Opened with
	// Options.UnsafeNoFsync, a backend keeps this only for process
	// crashes, as the raft log then does.)
	Durable() bool
}

// IsDurable reports whether be implements Durable and reports true.
func IsDurable(be Backend) bool {
	d, ok := be.(Durable)
	return ok && d.Durable()
}

// Options configure how a backend is opened.
type Options struct {
	// Dir is the directory the backend owns. Memory backends ignore it.
	Dir string
	// UnsafeNoFsync lets a backend skip the fsyncs that make its commits
	// survive a power loss (--unsafe-no-fsync): a process crash still
	// loses nothing. Backends that do not fsync commits ignore it.
	UnsafeNoFsync bool
}

// OpenFunc opens (or creates) a backend.
type OpenFunc func(opts Options) (Backend, error)

var (
	regMu    sync.Mutex
	registry = map[string]OpenFunc{}
)

// Register makes a backend available by name. It panics on a duplicate
// name, which is a programming error caught at init.
func Register(name string, open OpenFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backends: duplicate registration of " + name)
	}
	registry[name] = open
}

// Open opens the backend registered under name.
func Open(name string, opts Options) (Backend, error) {
	regMu.Lock()
	open, ok := registry[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (have %v)", name, Names())
	}
	return open(opts)
}

// Names lists the registered backends in sorted order.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
