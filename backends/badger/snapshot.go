package badger

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/strata-kv/strata/backends"
)

// restoreChunk is how much marshalled data Restore hands the StreamWriter
// at a time: large enough to amortize its per-call work, small enough not
// to matter for the heap.
const restoreChunk = 4 << 20

// Snapshot streams the published version current at the call, from one
// read-only transaction, in the portable format of backends.WriteSnapshot.
// Updates proceed meanwhile and are not included. Badger iterates in
// ascending byte order of the stored keys, which share the one-byte
// prefix, so user keys come out ascending too.
func (b *Backend) Snapshot(w io.Writer) error {
	h, ts, applied, err := b.acquire()
	if err != nil {
		return err
	}
	defer b.release(h, ts)
	txn := h.db.NewTransactionAt(ts, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{dataPrefix}})
	defer it.Close()
	err = backends.WriteSnapshot(w, applied, func(fn func(k, v []byte) error) error {
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return fn(item.Key()[1:], v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("badger: snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole content with a backends.WriteSnapshot stream
// (from any backend). It builds a new generation directory beside the live
// one with badger's StreamWriter (the stream's keys arrive sorted, so it
// writes tables straight to the last level, bypassing memtables and WAL),
// and only once backends.ReadSnapshot has verified the whole stream,
// checksum included, and the tables are synced, switches CURRENT to it
// with an atomic rename. Until then readers and the files on disk keep the
// old content: on any error, or a crash, the old content and applied index
// stay, and the new directory is deleted (on the next Open after a crash).
// Views running on the old generation finish on it; it is closed and
// deleted after the last one.
func (b *Backend) Restore(r io.Reader) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	old, err := b.current()
	if err != nil {
		return err
	}
	n, _ := genNumber(old.name)
	h, err := b.build(genName(n+1), r)
	if err != nil {
		return fmt.Errorf("badger: restore: %w", err)
	}
	if err := writeCurrent(b.dir, h.name); err != nil {
		// The rename may or may not have happened: point CURRENT back at
		// the old generation before deleting the new one.
		if rerr := writeCurrent(b.dir, old.name); rerr == nil {
			h.replaced = true
		}
		b.finish(h)
		return fmt.Errorf("badger: restore: switch to %s: %w", h.name, err)
	}
	b.rmu.Lock()
	b.cur = h
	old.replaced = true
	last := b.unref(old)
	b.rmu.Unlock()
	if last {
		b.finish(old)
	}
	return nil
}

// build writes the stream into a new generation directory name and returns
// it open, with the stream's applied index at version 1, or deletes it.
// The directory is only created once the stream has produced restoreChunk
// bytes or been verified whole, so a small corrupt stream costs no badger
// open.
func (b *Backend) build(name string, r io.Reader) (*handle, error) {
	dir := filepath.Join(b.dir, name)
	const version = 1
	var (
		db *badger.DB
		sw *badger.StreamWriter
	)
	start := func() error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clear %s: %w", dir, err)
		}
		var err error
		if db, err = badger.OpenManaged(badgerOptions(dir)); err != nil {
			return fmt.Errorf("open %s: %w", dir, err)
		}
		sw = db.NewStreamWriter()
		if err := sw.Prepare(); err != nil {
			return fmt.Errorf("prepare stream writer: %w", err)
		}
		return nil
	}
	applied, err := streamInto(r, version, func(buf *z.Buffer) error {
		if sw == nil {
			if err := start(); err != nil {
				return err
			}
		}
		return sw.Write(buf)
	})
	if err == nil && sw == nil {
		err = start() // an empty stream and one without records still need a database
	}
	if err == nil {
		err = sw.Flush() // writes the last tables, syncs them and the directory
	}
	if err == nil {
		err = writeSynced(dir, version)
	}
	if err != nil {
		if sw != nil {
			sw.Cancel()
		}
		if db != nil {
			if cerr := db.Close(); cerr != nil {
				logger().Warn("badger: closing abandoned restore", "dir", dir, "err", cerr)
			}
		}
		if rerr := os.RemoveAll(dir); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			logger().Warn("badger: removing abandoned restore", "dir", dir, "err", rerr)
		}
		return nil, err
	}
	db.SetDiscardTs(version)
	b.open.Add(1)
	return &handle{
		db: db, dir: dir, name: name,
		ts: version, applied: applied, synced: version, lastTs: version,
		readers: map[uint64]int{}, refs: 1,
	}, nil
}

// streamInto reads the stream, handing write batches of marshalled KVs at
// version (the applied index last: its key sorts after every data key).
// write must consume the buffer before returning.
func streamInto(r io.Reader, version uint64, write func(*z.Buffer) error) (uint64, error) {
	buf := z.NewBuffer(64<<10, "strata.badger.restore") // grows as needed
	defer buf.Release()
	kv := &pb.KV{Version: version}
	flush := func() error {
		if buf.LenNoPadding() == 0 {
			return nil
		}
		err := write(buf)
		buf.Reset()
		return err
	}
	var key []byte
	applied, err := backends.ReadSnapshot(r, func(k, v []byte) error {
		if len(k) > maxKeySize {
			return fmt.Errorf("key of %d bytes exceeds badger's limit of %d", len(k), maxKeySize)
		}
		key = append(append(key[:0], dataPrefix), k...)
		kv.Key, kv.Value = key, v
		badger.KVToBuffer(kv, buf) // copies: k and v may be reused
		if buf.LenNoPadding() >= restoreChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	kv.Key, kv.Value = metaApplied, putUint64(applied)
	badger.KVToBuffer(kv, buf)
	return applied, flush()
}
