package badger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/strata-kv/strata/backends"
)

// errTxDone is returned by a Reader or Writer used after its View or Update
// returned.
var errTxDone = errors.New("badger: transaction already finished")

// reader is the Reader of a View and the read side of a Writer.
//
// Badger's slices (an iterator's key, a value passed to Item.Value) are
// only valid until the iterator moves or the callback returns, while the
// interface promises slices valid until the View or Update returns. So
// every key and value handed out is copied into arena, which allocates in
// chunks: one small allocation per Get, a handful per Ascend of 1000 keys.
type reader struct {
	txn   *badger.Txn // nil once finished
	arena arena
	key   []byte // scratch for prefixed keys
	iters int    // Ascends in progress (a Writer must not spill during one)
}

func (r *reader) finish() {
	if r.txn != nil {
		r.txn.Discard()
		r.txn = nil
	}
}

// dataKey returns "k"+key in r's scratch buffer, valid until the next call.
func (r *reader) dataKey(key []byte) []byte {
	r.key = append(append(r.key[:0], dataPrefix), key...)
	return r.key
}

// Get returns a copy of the value at key, valid until the View or Update
// returns, or backends.ErrNotFound.
func (r *reader) Get(key []byte) ([]byte, error) {
	if r.txn == nil {
		return nil, errTxDone
	}
	item, err := r.txn.Get(r.dataKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, backends.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("badger: get %q: %w", key, err)
	}
	var val []byte
	if err := item.Value(func(v []byte) error { val = r.arena.copy(v); return nil }); err != nil {
		return nil, fmt.Errorf("badger: get %q: read value: %w", key, err)
	}
	return val, nil
}

// Ascend iterates [start, end) with a badger iterator that fetches values
// lazily (PrefetchValues would read values fn may never get to, after an
// early stop; 100-byte values are inline in the LSM anyway).
func (r *reader) Ascend(start, end []byte, fn func(key, value []byte) bool) error {
	if r.txn == nil {
		return errTxDone
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil // empty range, including a non-nil empty end
	}
	prefix := []byte{dataPrefix}
	it := r.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	r.iters++
	defer func() {
		it.Close()
		r.iters--
	}()
	var limit []byte
	if end != nil {
		limit = append(append(make([]byte, 0, 1+len(end)), dataPrefix), end...)
	}
	for it.Seek(append(prefix, start...)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if limit != nil && bytes.Compare(k, limit) >= 0 {
			return nil
		}
		var val []byte
		if err := item.Value(func(v []byte) error { val = r.arena.copy(v); return nil }); err != nil {
			return fmt.Errorf("badger: ascend at %q: read value: %w", k[1:], err)
		}
		if !fn(r.arena.copy(k[1:]), val) {
			return nil
		}
	}
	return nil
}

// arena hands out copies carved from chunks that grow from 256 bytes to
// 32 KiB. Chunks are never reused: a chunk is freed by the GC once the
// caller keeps no slice of it, so a long scan whose results are dropped
// holds at most one chunk. Big values get their own allocation.
type arena struct {
	buf []byte
}

const (
	arenaMin = 256
	arenaMax = 32 << 10
)

func (a *arena) copy(p []byte) []byte {
	if len(p) > cap(a.buf)-len(a.buf) {
		if len(p) > arenaMax/4 {
			return bytes.Clone(p)
		}
		a.buf = make([]byte, 0, min(max(2*cap(a.buf), arenaMin, len(p)), arenaMax))
	}
	n := len(a.buf)
	a.buf = append(a.buf, p...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// writer is the Writer of one Update: reads go to the current chunk's
// transaction (which sees its pending writes and the chunks committed
// before it at the same version), writes go through batch.
type writer struct {
	reader
	batch batch
}

func (w *writer) finish() {
	w.batch.discard()
	w.reader.txn = nil
}

// Put copies key and value (into one allocation) and stores them. Badger
// keeps the slices it is given until commit, so the copy is required.
func (w *writer) Put(key, value []byte) error {
	if w.reader.txn == nil {
		return errTxDone
	}
	if len(key) > maxKeySize {
		return fmt.Errorf("badger: put: key of %d bytes exceeds %d", len(key), maxKeySize)
	}
	kv := make([]byte, 1+len(key)+len(value))
	kv[0] = dataPrefix
	copy(kv[1:], key)
	copy(kv[1+len(key):], value)
	k := kv[: 1+len(key) : 1+len(key)]
	if err := w.batch.put(k, kv[len(k):], w.iters); err != nil {
		return fmt.Errorf("badger: put %q: %w", key, err)
	}
	w.reader.txn = w.batch.txn
	return nil
}

// Delete removes key; deleting a missing key writes a tombstone all the
// same, which is harmless.
func (w *writer) Delete(key []byte) error {
	if w.reader.txn == nil {
		return errTxDone
	}
	if len(key) > maxKeySize {
		return nil // cannot exist
	}
	k := append(append(make([]byte, 0, 1+len(key)), dataPrefix), key...)
	if err := w.batch.delete(k, w.iters); err != nil {
		return fmt.Errorf("badger: delete %q: %w", key, err)
	}
	w.reader.txn = w.batch.txn
	return nil
}

// spills counts spilled transactions, for tests.
var spills atomic.Int64

// batch writes entries at one version ts, in as many badger transactions
// as ErrTxnTooBig requires. Only the last one is committed by commit; the
// others are committed as they fill ("spilled"). Keys and values passed in
// must stay untouched until the batch is committed or discarded.
type batch struct {
	db      *badger.DB
	ts      uint64
	txn     *badger.Txn // nil once committed or discarded
	touched bool        // something may have been written at ts
}

func (c *batch) put(k, v []byte, iters int) error {
	return c.write(func(txn *badger.Txn) error { return txn.Set(k, v) }, iters)
}

func (c *batch) delete(k []byte, iters int) error {
	return c.write(func(txn *badger.Txn) error { return txn.Delete(k) }, iters)
}

// write applies op, spilling the transaction and retrying once if it is
// full. A spill is refused while an iterator of the transaction is open
// (iters > 0): badger cannot commit under it.
func (c *batch) write(op func(*badger.Txn) error, iters int) error {
	err := op(c.txn)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	if iters > 0 {
		return fmt.Errorf("transaction full while an Ascend is running (write after the Ascend): %w", err)
	}
	c.touched = true
	spills.Add(1)
	if err := c.txn.CommitAt(c.ts, nil); err != nil {
		c.txn = nil
		return fmt.Errorf("spill at version %d: %w", c.ts, err)
	}
	c.txn = c.db.NewTransactionAt(c.ts, true)
	return op(c.txn)
}

// commit commits the last transaction.
func (c *batch) commit() error {
	c.touched = true
	txn := c.txn
	c.txn = nil
	if err := txn.CommitAt(c.ts, nil); err != nil {
		return fmt.Errorf("commit at version %d: %w", c.ts, err)
	}
	return nil
}

func (c *batch) discard() {
	if c.txn != nil {
		c.txn.Discard()
		c.txn = nil
	}
}

// revertAbove makes the content at a new version ts equal to the content
// at version base, given that nothing is written above version top (<ts):
// every key (data and meta) with a version in (base, top] is written again
// at ts with its value at base, or deleted if it had none. It reports
// whether it wrote anything. Running it twice is harmless, which makes it
// safe to interrupt: versions at or below base are never discarded while
// they may be needed (see discardTs).
func revertAbove(db *badger.DB, base, top, ts uint64) (wrote bool, err error) {
	scan := db.NewTransactionAt(top, false)
	defer scan.Discard()
	old := db.NewTransactionAt(base, false)
	defer old.Discard()
	out := batch{db: db, ts: ts, txn: db.NewTransactionAt(ts, true)}
	defer out.discard()

	// SinceTs lets badger skip every table whose versions are all <= base,
	// so after a normal Sync only the recent tables and memtables are read.
	it := scan.NewIterator(badger.IteratorOptions{AllVersions: true, SinceTs: base})
	var last []byte
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) == 0 || (k[0] != dataPrefix && k[0] != metaApplied[0]) {
			continue // not ours: badger's own keys are not rolled back
		}
		if it.Item().Version() <= base || bytes.Equal(k, last) {
			continue // versions come newest first: this key is handled
		}
		last = append(last[:0], k...)
		key := bytes.Clone(k) // held by the batch until commit
		item, err := old.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			err = out.delete(key, 0)
		case err == nil:
			var v []byte
			if v, err = item.ValueCopy(nil); err == nil {
				err = out.put(key, v, 0)
			}
		}
		if err != nil {
			it.Close()
			return out.touched, fmt.Errorf("revert %q to version %d: %w", key, base, err)
		}
		wrote = true
	}
	it.Close()
	if !wrote {
		return false, nil
	}
	if err := out.commit(); err != nil {
		return true, fmt.Errorf("revert to version %d: %w", base, err)
	}
	return true, nil
}

func putUint64(x uint64) []byte { return binary.BigEndian.AppendUint64(nil, x) }
func getUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
