package engine

import (
	"fmt"

	"github.com/strata-kv/strata/backends"
)

// Cluster records are the replicated cluster metadata a member keeps next
// to the v2 key space (membership: each member's name and URLs, removed
// member IDs). They live under their own key prefix, so they are never
// visible to Get or watches and never change the v2 store index, but they
// are written in the same atomic update as the applied raft index and are
// carried by Snapshot and Restore like every other record: a member that
// restores a snapshot image gets the membership that image reflects.
//
//	'c' name -> value
const prefixCluster = 'c'

func clusterKey(name string) []byte { return append([]byte{prefixCluster}, name...) }

// ApplyCluster records cluster metadata for the raft entry at appliedIndex
// in one atomic backend update that also records appliedIndex: a nil value
// deletes its name. It must be called in log order, like ApplyBatch, and
// an error means the backend failed.
func (e *Engine) ApplyCluster(appliedIndex uint64, records map[string][]byte) error {
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		for name, v := range records {
			var err error
			if v == nil {
				err = w.Delete(clusterKey(name))
			} else {
				err = w.Put(clusterKey(name), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply cluster records at %d: %w", appliedIndex, err)
	}
	return nil
}

// ClusterRecords returns every cluster record whose name starts with
// prefix, by name.
func (e *Engine) ClusterRecords(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	start := clusterKey(prefix)
	err := e.be.View(func(r backends.Reader) error {
		return r.Ascend(start, prefixEnd(start), func(k, v []byte) bool {
			out[string(k[1:])] = append([]byte(nil), v...)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read cluster records: %w", err)
	}
	return out, nil
}
