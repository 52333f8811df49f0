package server

import (
	"fmt"
	"io"
	"slices"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/internal/failpoint"
)

// replica is this member's raft replica: its proposals are answered with
// the engine's result for their command, typed end to end.
type replica = consensus.Replica[engine.Result]

// fsm adapts the engine to consensus.StateMachine: it decodes commands and
// applies each raft batch as one engine batch. It is a
// consensus.DurableStateMachine whose Durable is true on a backend that is
// (backends.IsDurable): raft snapshots then carry no image.
type fsm struct {
	eng     *engine.Engine
	durable bool
	where   string // "backend NAME in DIR", for errors
	cmds    []engine.Command
	pos     []int
	out     []engine.Result // TryApply's results, reused: the Replica reads them before the next call
	// onMembers is called after the replicated membership changed (a conf
	// change or attributes applied, a snapshot restored); see members.go.
	onMembers func()
}

// The Replica finds these by type assertion: a signature that drifted
// would silently drop the behaviour, so the compiler checks them here.
var (
	_ consensus.FallibleStateMachine[engine.Result]   = (*fsm)(nil)
	_ consensus.DurableStateMachine[engine.Result]    = (*fsm)(nil)
	_ consensus.MembershipStateMachine[engine.Result] = (*fsm)(nil)
)

func newFSM(eng *engine.Engine, be backends.Backend) *fsm {
	return &fsm{eng: eng, durable: backends.IsDurable(be)}
}

// Apply implements consensus.StateMachine; the Replica calls TryApply instead.
func (f *fsm) Apply(entries []consensus.Entry) []engine.Result {
	out, err := f.TryApply(entries)
	if err != nil {
		panic(fmt.Sprintf("strata: %v", err)) // unreachable from consensus.Replica
	}
	return out
}

// TryApply implements consensus.FallibleStateMachine: a backend failure
// (a full disk) fails the batch, which the Replica retries or stops on.
// Engine batches committed before the failure stay applied and are
// skipped on the retry (AppliedIndex moved past them): their entries get
// the zero Result, which Server.Propose reports as lost.
func (f *fsm) TryApply(entries []consensus.Entry) ([]engine.Result, error) {
	out := slices.Grow(f.out[:0], len(entries))[:len(entries)]
	clear(out) // no result of the previous batch may leak into this one
	f.out = out
	applied := f.eng.AppliedIndex()
	f.cmds, f.pos = f.cmds[:0], f.pos[:0]
	var last uint64
	for i, e := range entries {
		if e.Index <= applied {
			continue
		}
		last = e.Index
		if len(e.Data) == 0 {
			continue
		}
		if e.Data[0] == attrsPrefix {
			// A member's published attributes: flush what came before,
			// then record them at their own index.
			if err := f.flush(e.Index-1, out); err != nil {
				return nil, err
			}
			f.applyAttributes(e.Index, e.Data[1:])
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
	if last == 0 || last <= f.eng.AppliedIndex() {
		return out, nil
	}
	if err := f.flush(last, out); err != nil {
		return nil, err
	}
	return out, nil
}

// flush applies the commands collected so far as one engine batch that
// records appliedIndex, and puts their results in out.
func (f *fsm) flush(appliedIndex uint64, out []engine.Result) error {
	if len(f.cmds) == 0 && appliedIndex <= f.eng.AppliedIndex() {
		return nil
	}
	err := failpoint.Inject("backend-commit") // tests only
	var res []engine.Result
	if err == nil {
		res, err = f.eng.ApplyBatch(appliedIndex, f.cmds)
	}
	if err != nil {
		// The backend failed under a committed entry: it must not be
		// skipped (that would diverge from the other members); the Replica
		// retries the batch if the disk is full, else stops the member.
		f.cmds, f.pos = f.cmds[:0], f.pos[:0]
		return fmt.Errorf("%s: apply entries up to %d: %w", f.where, appliedIndex, err)
	}
	for j, r := range res {
		out[f.pos[j]] = r
	}
	f.cmds, f.pos = f.cmds[:0], f.pos[:0]
	return nil
}

func (f *fsm) AppliedIndex() uint64 { return f.eng.AppliedIndex() }

func (f *fsm) Snapshot(w io.Writer) (uint64, error) { return f.eng.Snapshot(w) }

func (f *fsm) Restore(r io.Reader) error {
	if err := f.eng.Restore(r); err != nil {
		return err
	}
	if f.onMembers != nil {
		f.onMembers() // the image carries the membership records
	}
	return nil
}

func (f *fsm) Sync() error { return f.eng.Sync() }

// Durable implements consensus.DurableStateMachine.
func (f *fsm) Durable() bool { return f.durable }
