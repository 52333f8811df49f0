package memory

import (
	"errors"

	"github.com/strata-kv/strata/backends"
)

// errTxDone is returned by a Writer used after its Update returned.
var errTxDone = errors.New("memory: transaction already finished")

// txn is the Writer of one Update: a private copy-on-write clone of the
// tree, so its reads see its own writes and readers see none of them until
// publication. Writing from inside an Ascend callback is not supported.
type txn struct {
	tree *tree // nil once the Update has returned
}

func (t *txn) Get(key []byte) ([]byte, error) {
	if t.tree == nil {
		return nil, errTxDone
	}
	if val, ok := get(t.tree, key); ok {
		return val, nil
	}
	return nil, backends.ErrNotFound
}

func (t *txn) Ascend(start, end []byte, fn func(key, value []byte) bool) error {
	if t.tree == nil {
		return errTxDone
	}
	ascend(t.tree, start, end, fn)
	return nil
}

// Put copies key and value (into one allocation) and stores them.
func (t *txn) Put(key, value []byte) error {
	if t.tree == nil {
		return errTxDone
	}
	t.tree.Set(newItem(key, value))
	return nil
}

func (t *txn) Delete(key []byte) error {
	if t.tree == nil {
		return errTxDone
	}
	t.tree.Delete(probe(key))
	return nil
}
