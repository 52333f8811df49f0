package bbolt

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/strata-kv/strata/backends"
)

// errTxDone is returned by a Reader or Writer used after its View or
// Update returned; bbolt itself would panic on a closed transaction.
var errTxDone = errors.New("bbolt: transaction already finished")

// txn is the Reader of a View and the Writer of an Update: the two buckets
// of one bbolt transaction. The empty key, which bbolt cannot store, is
// kept in meta under emptyKeyName; it sorts before every other key, so
// Ascend yields it first.
type txn struct {
	tx   *bolt.Tx
	data *bolt.Bucket
	meta *bolt.Bucket // opened on first use: most Views never need it
	// get is reused by every Get: bbolt's Bucket.Get allocates a cursor
	// and grows its stack on each lookup, and Updates make several. Seek
	// restarts from the root, so writes in between do not invalidate it.
	get   *bolt.Cursor
	arena *arena // value copies for Put; nil in a View
	done  bool
}

// metaB returns the meta bucket, opening it on first use.
func (t *txn) metaB() *bolt.Bucket {
	if t.meta == nil {
		t.meta = t.tx.Bucket(metaBucket) // exists: Open and Restore check or create it
	}
	return t.meta
}

func (t *txn) Get(key []byte) ([]byte, error) {
	if t.done {
		return nil, errTxDone
	}
	if len(key) == 0 {
		if v := t.metaB().Get(emptyKeyName); v != nil {
			return v, nil
		}
		return nil, backends.ErrNotFound
	}
	if t.get == nil {
		t.get = t.data.Cursor()
	}
	k, v := t.get.Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, backends.ErrNotFound
	}
	// A stored empty value is a non-nil empty slice, both on a page and,
	// because Put never passes nil, in a node dirtied by this transaction;
	// callers may tell it from nil, as from the memory backend.
	return v, nil
}

func (t *txn) Ascend(start, end []byte, fn func(key, value []byte) bool) error {
	if t.done {
		return errTxDone
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil // empty range, including a non-nil empty end
	}
	if len(start) == 0 {
		if v := t.metaB().Get(emptyKeyName); v != nil && !fn([]byte{}, v) {
			return nil
		}
	}
	c := t.data.Cursor()
	var k, v []byte
	if len(start) == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(start)
	}
	for ; k != nil; k, v = c.Next() {
		if end != nil && bytes.Compare(k, end) >= 0 {
			return nil
		}
		if !fn(k, v) {
			return nil
		}
	}
	return nil
}

// Put stores a copy of value (bbolt keeps a reference to it until commit)
// and of key (bbolt copies keys itself).
func (t *txn) Put(key, value []byte) error {
	if t.done {
		return errTxDone
	}
	if t.arena == nil {
		return berrors.ErrTxNotWritable
	}
	if len(key) == 0 {
		return t.metaB().Put(emptyKeyName, t.arena.copy(value))
	}
	return t.data.Put(key, t.arena.copy(value))
}

func (t *txn) Delete(key []byte) error {
	if t.done {
		return errTxDone
	}
	if len(key) == 0 {
		return t.metaB().Delete(emptyKeyName)
	}
	return t.data.Delete(key)
}

// arenaChunk is the size of the blocks Put copies values into: one
// allocation serves hundreds of typical values, instead of one each.
const arenaChunk = 64 << 10

// arena holds copies of values until their transaction ends. bbolt keeps
// the value slices passed to Put in its dirty nodes until commit, so they
// must not be the caller's buffers. The writer (one at a time, under
// Backend.mu) reuses the last block across transactions.
type arena struct{ buf []byte }

// copy returns a copy of p that stays valid until reset. It never returns
// nil, so a stored empty value reads back as present.
func (a *arena) copy(p []byte) []byte {
	if len(p) > arenaChunk/4 {
		return append(make([]byte, 0, len(p)), p...) // large: own allocation, no wasted block tail
	}
	if a.buf == nil || cap(a.buf)-len(a.buf) < len(p) {
		a.buf = make([]byte, 0, arenaChunk) // the old block stays alive while bbolt references it
	}
	n := len(a.buf)
	a.buf = append(a.buf, p...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// reset makes the current block reusable. Call it only once the
// transaction that received the copies has committed or rolled back.
func (a *arena) reset() { a.buf = a.buf[:0] }
