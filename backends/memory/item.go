package memory

import (
	"bytes"

	"github.com/tidwall/btree"
)

// item is one key/value pair. Key and value share a single allocation
// (kv = key ++ value) and the item is 32 bytes rather than the 48 of two
// slices: nodes are copied wholesale on every copy-on-write Update, so item
// size is paid on each write, and one allocation per Put halves the garbage.
type item struct {
	kv   []byte
	klen int
}

func (it item) key() []byte { return it.kv[:it.klen:it.klen] }
func (it item) val() []byte { return it.kv[it.klen:] }

// probe wraps a caller's key for a lookup without copying it.
func probe(key []byte) item { return item{kv: key, klen: len(key)} }

// newItem copies key and value into one fresh allocation.
func newItem(key, value []byte) item {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return item{kv: kv, klen: len(key)}
}

func less(a, b item) bool { return bytes.Compare(a.key(), b.key()) < 0 }

// degree is the B-tree degree (nodes hold up to 2*degree-1 items). Every
// Update copies each node on the path it touches, so a write costs about
// height*node-size bytes of copying (with GC write barriers: items hold
// pointers), while reads want shallow, wide nodes. BenchmarkDegree, 100k
// keys, single-key Update -> bytes allocated/op: 8: 2.7K, 16: 4.0K, 32: 5.5K,
// 64: 8.2K; Get and Ascend1000 are equal within noise for 16..64, and 8
// loses ~35% on Ascend. 16 is the cheapest write without a read penalty.
const degree = 16

type tree = btree.BTreeG[item]

// newTree returns an empty tree without internal locking: published trees
// are immutable and the one being written is owned by a single Update.
func newTree(deg int) *tree {
	return btree.NewBTreeGOptions(less, btree.Options{Degree: deg, NoLocks: true})
}

// get looks key up in t.
func get(t *tree, key []byte) ([]byte, bool) {
	it, ok := t.Get(probe(key))
	if !ok {
		return nil, false
	}
	return it.val(), true
}

// ascend calls fn for the keys of t in [start, end) until fn returns false.
func ascend(t *tree, start, end []byte, fn func(key, value []byte) bool) {
	t.Ascend(probe(start), func(it item) bool {
		k := it.key()
		if end != nil && bytes.Compare(k, end) >= 0 {
			return false
		}
		return fn(k, it.val())
	})
}
