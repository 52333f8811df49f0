package memory

import (
	"fmt"
	"io"

	"github.com/strata-kv/strata/backends"
)

// Snapshot streams the version current at the call in the portable format
// of backends.WriteSnapshot. It takes no lock: writers proceed meanwhile
// and are not included.
func (b *Backend) Snapshot(w io.Writer) error {
	v := b.cur.Load()
	if v == nil {
		return backends.ErrClosed
	}
	err := backends.WriteSnapshot(w, v.applied, func(fn func(k, v []byte) error) error {
		var err error
		v.tree.Scan(func(it item) bool {
			err = fn(it.key(), it.val())
			return err == nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("memory: snapshot: %w", err)
	}
	return nil
}

// Restore builds a new tree from a backends.WriteSnapshot stream and
// publishes it, with the stream's applied index, only once the whole stream
// has been verified. On any error the previous content and applied index
// are left untouched. Readers keep seeing the old content until then.
func (b *Backend) Restore(r io.Reader) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur.Load() == nil {
		return backends.ErrClosed
	}
	t := newTree(b.deg)
	applied, err := backends.ReadSnapshot(r, func(k, v []byte) error {
		t.Load(newItem(k, v)) // keys arrive strictly ascending: append fast path
		return nil
	})
	if err != nil {
		return fmt.Errorf("memory: restore: %w", err)
	}
	b.publish(t, applied)
	return nil
}
