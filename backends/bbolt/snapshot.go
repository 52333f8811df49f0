package bbolt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/internal/fsutil"
)

// Snapshot streams one read-only transaction in the portable format of
// backends.WriteSnapshot: the applied index is read in the same transaction
// as the data, and bbolt's cursor order is the byte order the stream wants.
// Writers are not blocked, but for as long as the stream runs bbolt cannot
// reuse the pages freed since it started, so the file may grow meanwhile.
func (b *Backend) Snapshot(w io.Writer) error {
	t, err := b.viewTxn()
	if err != nil {
		return err
	}
	defer t.tx.Rollback()
	applied, err := decodeApplied(t.metaB().Get(appliedName))
	if err != nil {
		return fmt.Errorf("bbolt: snapshot: %w", err)
	}
	err = backends.WriteSnapshot(w, applied, func(fn func(k, v []byte) error) error {
		if v := t.metaB().Get(emptyKeyName); v != nil {
			if err := fn([]byte{}, v); err != nil { // "" sorts first
				return err
			}
		}
		c := t.data.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bbolt: snapshot: %w", err)
	}
	return nil
}

// Restore chunking: a bbolt write transaction keeps every node it dirties
// (and, here, a copy of every value) in memory until commit, so a snapshot
// of millions of keys is written as a series of transactions. The sizes
// amortize the commit cost (a few page writes, no fsync) while bounding
// the heap to a few tens of MiB.
const (
	restoreChunkKeys  = 32 << 10
	restoreChunkBytes = 16 << 20
)

// Restore replaces the whole store with a backends.WriteSnapshot stream.
//
// The stream is written into a new bbolt file in the same directory and
// verified to its checksum; only then is that file fdatasync'd, renamed
// over the live one and the directory synced, and the backend switched to
// it. Any failure before the rename (a corrupt or truncated stream, a read
// error, a full disk) removes the new file and leaves the live content and
// applied index untouched. Views keep reading the old file until the
// switch; Restore then waits for those still running before closing it.
//
// A restored store is fully durable when Restore returns, whatever was
// unsynced before. If syncing the directory after the rename fails, the
// backend already serves the new content and Restore returns the error:
// the rename may not survive a power loss.
func (b *Backend) Restore(r io.Reader) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db.Load() == nil {
		return backends.ErrClosed
	}
	db, tmp, applied, err := b.build(r)
	if err != nil {
		return fmt.Errorf("bbolt: restore: %w", err)
	}
	// The rename is the commit point: the flock and the open file follow
	// the inode, so db stays valid under its new name, and the old file
	// stays readable by running Views until it is closed.
	if err := os.Rename(tmp, b.path); err != nil {
		db.Close()
		os.Remove(tmp)
		return fmt.Errorf("bbolt: restore: %w", err)
	}
	db.NoSync = b.noSync
	old := b.db.Swap(db)
	b.applied.Store(applied)
	err = fsutil.SyncDir(b.dir)
	if err == nil {
		// Everything in the live file is now durable; whatever the old file
		// had unsynced is gone with it.
		err = b.markClean()
	}
	// Closing waits for Views on the old file. Its error is not Restore's:
	// the file is already unlinked and nothing depends on it any more.
	_ = old.Close()
	if err != nil {
		return fmt.Errorf("bbolt: restore: %w", err)
	}
	return nil
}

// build writes the stream into a new bbolt file and returns it open,
// fdatasync'd, with its name and applied index. On error the file is gone.
func (b *Backend) build(r io.Reader) (db *bolt.DB, tmp string, applied uint64, err error) {
	f, err := os.CreateTemp(b.dir, restorePrefix+"*")
	if err != nil {
		return nil, "", 0, err
	}
	tmp = f.Name()
	f.Close() // bbolt opens it itself; an empty file is initialized
	defer func() {
		if err != nil {
			if db != nil {
				db.Close()
			}
			os.Remove(tmp)
			db = nil
		}
	}()
	// The new file is fdatasync'd once, after the last chunk, whatever the
	// backend's mode; Restore switches it to that mode before the swap.
	if db, err = openDB(tmp, true); err != nil {
		return db, tmp, 0, err
	}

	l := &loader{db: db, arena: &b.arena}
	defer l.rollback()
	if err := l.begin(); err != nil {
		return db, tmp, 0, err
	}
	if err := createBuckets(l.tx); err != nil {
		return db, tmp, 0, err
	}
	if err := l.next(); err != nil {
		return db, tmp, 0, err
	}
	applied, err = backends.ReadSnapshot(r, l.put)
	if err != nil {
		return db, tmp, 0, err
	}
	if err := l.meta.Put(appliedName, encodeApplied(applied)); err != nil {
		return db, tmp, 0, err
	}
	if err := l.commit(); err != nil {
		return db, tmp, 0, err
	}
	if err := db.Sync(); err != nil {
		return db, tmp, 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	return db, tmp, applied, nil
}

// loader writes ascending records into a fresh file, one chunk per
// transaction.
type loader struct {
	db         *bolt.DB
	tx         *bolt.Tx // nil between transactions
	data, meta *bolt.Bucket
	arena      *arena
	keys, size int // in the current transaction
}

func (l *loader) begin() error {
	tx, err := l.db.Begin(true)
	if err != nil {
		return fmt.Errorf("begin restore chunk: %w", err)
	}
	l.tx, l.keys, l.size = tx, 0, 0
	return nil
}

// next commits the current chunk and begins the next one.
func (l *loader) next() error {
	if err := l.commit(); err != nil {
		return err
	}
	if err := l.begin(); err != nil {
		return err
	}
	l.data, l.meta = l.tx.Bucket(dataBucket), l.tx.Bucket(metaBucket)
	if l.data == nil || l.meta == nil {
		return errors.New("restore: buckets missing")
	}
	// Keys arrive in ascending order, so every insert appends to the last
	// leaf: split full pages rather than half-full ones (bbolt's default
	// of 0.5 is for random inserts), which halves the file.
	l.data.FillPercent = 1.0
	return nil
}

func (l *loader) commit() error {
	tx := l.tx
	l.tx = nil
	err := tx.Commit()
	l.arena.reset()
	if err != nil {
		return fmt.Errorf("commit restore chunk: %w", err)
	}
	return nil
}

// rollback discards an unfinished chunk (after an error).
func (l *loader) rollback() {
	if l.tx != nil {
		l.tx.Rollback()
		l.tx = nil
		l.arena.reset()
	}
}

// put is the ReadSnapshot callback. k and v are only valid during the
// call: bbolt copies k, and v goes to the arena until the chunk commits.
func (l *loader) put(k, v []byte) error {
	if l.keys >= restoreChunkKeys || l.size >= restoreChunkBytes {
		if err := l.next(); err != nil {
			return err
		}
	}
	l.keys++
	l.size += len(k) + len(v)
	if len(k) == 0 {
		return l.meta.Put(emptyKeyName, l.arena.copy(v))
	}
	if err := l.data.Put(k, l.arena.copy(v)); err != nil {
		return fmt.Errorf("put %q: %w", k[:min(len(k), 64)], err)
	}
	return nil
}

// removeStaleRestores deletes the temporary files of Restores that a crash
// interrupted. The caller holds the file's flock.
func removeStaleRestores(dir string) error {
	stale, err := filepath.Glob(filepath.Join(dir, restorePrefix+"*"))
	if err != nil {
		return err
	}
	for _, name := range stale {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove stale restore file: %w", err)
		}
	}
	return nil
}
