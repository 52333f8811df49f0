package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/strata-kv/strata/backends"
)

// SeedNode is one node of a key space imported from elsewhere (an etcd v2
// store), carried with its own indexes and deadline rather than through
// commands, which would give it new ones.
type SeedNode struct {
	Path     string // clean absolute path, not "/"
	Dir      bool
	Created  uint64
	Modified uint64
	Expiry   int64 // unix nanoseconds; 0 = permanent
	Value    string
}

// Seed writes nodes and the store index into an engine whose store is
// empty, as one backend update recorded at appliedIndex. Commands applied
// afterwards continue from index exactly as they would have in the store
// the nodes came from. Parents must be listed before their children.
func (e *Engine) Seed(appliedIndex, index uint64, nodes []SeedNode) error {
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		cur, err := metaIndex(w)
		if err != nil {
			return err
		}
		if cur != 0 {
			return fmt.Errorf("engine: seed into a store at index %d", cur)
		}
		rd := newReader(w)
		for i := range nodes {
			if err := putSeed(w, rd, &nodes[i], index); err != nil {
				return err
			}
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], index)
		return w.Put(metaIndexKey, b[:])
	})
	if err != nil {
		return fmt.Errorf("seed %d nodes at index %d: %w", len(nodes), index, err)
	}
	e.index.Store(index)
	h := e.hub
	h.mu.Lock()
	h.history.reset()
	h.current = index
	h.mu.Unlock()
	e.count.reset()
	return nil
}

// putSeed writes n's record (and its TTL entry) as given, over any record
// already at its path; a directory keeps its children.
func putSeed(w backends.Writer, rd reader, n *SeedNode, index uint64) error {
	if n.Path == "/" || n.Path == "" || n.Path[0] != '/' || depth(n.Path) > MaxDepth {
		return fmt.Errorf("engine: seed node with bad path %q", n.Path)
	}
	if n.Modified > index || n.Created > n.Modified {
		return fmt.Errorf("engine: seed node %q has indexes %d/%d beyond store index %d", n.Path, n.Created, n.Modified, index)
	}
	old, ok, err := rd.get(n.Path)
	if err != nil {
		return err
	}
	if ok && old.expiry != 0 {
		if err := w.Delete(ttlKey(old.expiry, n.Path)); err != nil {
			return err
		}
	}
	rec := record{dir: n.Dir, created: n.Created, modified: n.Modified, value: n.Value}
	if n.Expiry >= minExpiry {
		rec.expiry = n.Expiry
		if err := w.Put(ttlKey(n.Expiry, n.Path), nil); err != nil {
			return err
		}
	}
	return w.Put(rd.nodeKey(n.Path), rec.marshal())
}

// Patch overwrites nodes with the records given, without an event or a new
// index: for a mirror of another store that learns of a change it could
// not watch (etcd does not notify a TTL refresh). Parents must exist or
// come first; a node that changes between file and directory must be
// dropped first.
func (e *Engine) Patch(appliedIndex uint64, nodes []SeedNode) error {
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		rd := newReader(w)
		index, err := metaIndex(w)
		if err != nil {
			return err
		}
		for i := range nodes {
			if err := putSeed(w, rd, &nodes[i], index); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("patch %d nodes: %w", len(nodes), err)
	}
	e.count.reset()
	e.wakeExpiry()
	return nil
}

// Advance moves the store index forward to index without an event: the
// store being mirrored spent those indexes on writes outside the key space
// carried over (membership, auth) or that no watch shows.
func (e *Engine) Advance(appliedIndex, index uint64) error {
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		cur, err := metaIndex(w)
		if err != nil {
			return err
		}
		if index < cur {
			return fmt.Errorf("engine: advance to %d, store is at %d", index, cur)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], index)
		return w.Put(metaIndexKey, b[:])
	})
	if err != nil {
		return fmt.Errorf("advance to %d: %w", index, err)
	}
	e.index.Store(index)
	h := e.hub
	h.mu.Lock()
	h.current = index
	h.mu.Unlock()
	return nil
}

// DropTree removes the node at p and everything below it without an
// event or a new index: for imported records that belong to the old
// system (etcd's membership), not to the key space being carried over.
func (e *Engine) DropTree(appliedIndex uint64, p string) error {
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		rd := newReader(w)
		rec, ok, err := rd.get(p)
		if err != nil || !ok {
			return err
		}
		t := &txn{reader: rd, w: w, index: 0}
		return t.dropTree(p, &rec)
	})
	if err != nil {
		return fmt.Errorf("drop %s: %w", p, err)
	}
	e.count.reset()
	return nil
}

func (t *txn) dropTree(p string, rec *record) error {
	if rec.dir {
		start, end := childRange(p)
		type kid struct {
			p   string
			rec record
		}
		var kids []kid
		var derr error
		if err := t.w.Ascend(start, end, func(k, v []byte) bool {
			r, err := unmarshalRecord(v)
			if err != nil {
				derr = err
				return false
			}
			kids = append(kids, kid{pathOfNodeKey(k), r})
			return true
		}); err != nil {
			return err
		}
		if derr != nil {
			return derr
		}
		for i := range kids {
			if err := t.dropTree(kids[i].p, &kids[i].rec); err != nil {
				return err
			}
		}
	}
	if rec.expiry != 0 {
		if err := t.w.Delete(ttlKey(rec.expiry, p)); err != nil {
			return err
		}
	}
	return t.w.Delete(t.nodeKey(p))
}
