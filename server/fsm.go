package server

import (
	"fmt"
	"io"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/engine"
)

// fsm adapts the engine to consensus.StateMachine: it decodes commands and
// applies each raft batch as one engine batch. It is a
// consensus.DurableStateMachine whose Durable is true on a backend that is
// (backends.IsDurable): raft snapshots then carry no image.
type fsm struct {
	eng     *engine.Engine
	durable bool
	cmds    []engine.Command
	pos     []int
}

func newFSM(eng *engine.Engine, be backends.Backend) *fsm {
	return &fsm{eng: eng, durable: backends.IsDurable(be)}
}

func (f *fsm) Apply(entries []consensus.Entry) []any {
	out := make([]any, len(entries))
	applied := f.eng.AppliedIndex()
	f.cmds, f.pos = f.cmds[:0], f.pos[:0]
	var last uint64
	for i, e := range entries {
		if e.Index <= applied {
			continue
		}
		last = e.Index
		if e.Data == nil {
			continue
		}
		c, err := engine.UnmarshalCommand(e.Data)
		if err != nil {
			out[i] = engine.Result{Err: fmt.Errorf("entry %d: %w", e.Index, err)}
			continue
		}
		f.cmds = append(f.cmds, c)
		f.pos = append(f.pos, i)
	}
	if last == 0 {
		return out
	}
	res, err := f.eng.ApplyBatch(last, f.cmds)
	if err != nil {
		// The backend failed under a committed entry: going on would
		// diverge from the other members. Stop hard, as etcd does.
		panic(fmt.Sprintf("strata: cannot apply committed entries up to %d: %v", last, err))
	}
	for j, r := range res {
		out[f.pos[j]] = r
	}
	return out
}

func (f *fsm) AppliedIndex() uint64 { return f.eng.AppliedIndex() }

func (f *fsm) Snapshot(w io.Writer) (uint64, error) { return f.eng.Snapshot(w) }

func (f *fsm) Restore(r io.Reader) error { return f.eng.Restore(r) }

func (f *fsm) Sync() error { return f.eng.Sync() }

// Durable implements consensus.DurableStateMachine.
func (f *fsm) Durable() bool { return f.durable }
