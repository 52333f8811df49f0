// Package memory implements the "memory" backend: an ordered key-value
// store held in a copy-on-write B-tree (github.com/tidwall/btree).
//
// Data lives only in process memory: it does not survive Close, a restart
// or a crash. Durability comes from the raft log and snapshots, which
// rebuild the store on start; Sync is therefore a no-op.
//
// Concurrency: every successful Update or Restore publishes a new immutable
// version of the tree, together with its applied index, through an atomic
// pointer. View loads the current version without taking a lock, so readers
// never wait for the writer (nor it for them) and always see a whole batch
// or none of it. Writers (Update, Restore, Close) are serialized by a mutex.
package memory

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/strata-kv/strata/backends"
)

func init() {
	backends.Register("memory", func(backends.Options) (backends.Backend, error) {
		return New(), nil
	})
}

// Backend is the in-memory backends.Backend. Use New or
// backends.Open("memory", ...).
type Backend struct {
	cur atomic.Pointer[version] // nil once closed

	mu sync.Mutex // serializes writers
	// base is the writer's private twin of cur.tree (same content, shared
	// nodes). Update copies base, never cur.tree, because btree's Copy
	// writes to the tree it copies, and readers hold cur.tree.
	base *tree
	deg  int
}

// version is one immutable published state. It is the Reader of View.
type version struct {
	tree    *tree
	applied uint64
}

var _ backends.Backend = (*Backend)(nil)

// New returns an empty store with applied index 0.
func New() *Backend { return newDegree(degree) }

func newDegree(deg int) *Backend {
	b := &Backend{deg: deg}
	b.publish(newTree(deg), 0)
	return b
}

// publish makes t the current content. The caller holds mu (or owns b)
// and must not modify t afterwards; t becomes base.
func (b *Backend) publish(t *tree, applied uint64) {
	b.base = t
	b.cur.Store(&version{tree: t.Copy(), applied: applied})
}

// View runs fn against the current version, lock-free. The version stays
// valid (and unchanged) for as long as fn runs, whatever writers do.
func (b *Backend) View(fn func(r backends.Reader) error) error {
	v := b.cur.Load()
	if v == nil {
		return backends.ErrClosed
	}
	return fn(v)
}

// Update runs fn on a copy-on-write clone of the current tree and publishes
// it with appliedIndex if fn returns nil. If fn fails or panics, the clone
// is dropped and nothing changes. An appliedIndex below AppliedIndex fails
// with backends.ErrIndexBackwards before fn runs.
func (b *Backend) Update(appliedIndex uint64, fn func(w backends.Writer) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cur.Load()
	if cur == nil {
		return backends.ErrClosed
	}
	if appliedIndex < cur.applied {
		return fmt.Errorf("memory: update at index %d, store is at %d: %w", appliedIndex, cur.applied, backends.ErrIndexBackwards)
	}
	tx := &txn{tree: b.base.Copy()}
	err := fn(tx)
	t := tx.tree
	tx.tree = nil // a Writer kept past fn must not reach the published tree
	if err != nil {
		return err
	}
	b.publish(t, appliedIndex)
	return nil
}

// AppliedIndex returns the applied index of the current version, or 0 once
// the store is closed.
func (b *Backend) AppliedIndex() uint64 {
	if v := b.cur.Load(); v != nil {
		return v.applied
	}
	return 0
}

// Sync is a no-op: memory holds nothing durable.
func (b *Backend) Sync() error {
	if b.cur.Load() == nil {
		return backends.ErrClosed
	}
	return nil
}

// Close drops all data; later calls fail with backends.ErrClosed. Views
// already running finish on the version they hold. Closing twice is a no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur.Store(nil)
	b.base = nil
	return nil
}

// Get implements backends.Reader on a published version.
func (v *version) Get(key []byte) ([]byte, error) {
	if val, ok := get(v.tree, key); ok {
		return val, nil
	}
	return nil, backends.ErrNotFound
}

// Ascend implements backends.Reader on a published version.
func (v *version) Ascend(start, end []byte, fn func(key, value []byte) bool) error {
	ascend(v.tree, start, end, fn)
	return nil
}
