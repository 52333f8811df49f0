package server

import (
	"strings"
	"testing"

	"github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/engine"
)

// TestFSMResults checks the typed result the fsm gives each entry of a
// batch, and that entries met again (a batch retried after the backend
// failed part-way) get the zero Result, not the previous batch's.
func TestFSMResults(t *testing.T) {
	be := memory.New()
	eng, err := engine.Open(be, engine.Options{})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	defer be.Close()
	f := newFSM(eng, be)
	set := engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"}
	create := engine.Command{Op: engine.OpCreate, Path: "/a", Value: "2"}
	ents := []consensus.Entry{
		{Index: 1, Term: 1, Data: set.Marshal()},
		{Index: 2, Term: 1},                             // raft-internal
		{Index: 3, Term: 1, Data: []byte{entryCommand}}, // truncated command
		{Index: 4, Term: 1, Data: create.Marshal()},     // /a exists: a v2 error, not a failure
	}
	check := func(t *testing.T, got engine.Result, value string, code int, errHas string) {
		t.Helper()
		switch {
		case value != "":
			if got.Err != nil || got.Event == nil || got.Event.Node == nil || got.Event.Node.Value == nil || *got.Event.Node.Value != value {
				t.Fatalf("result %+v, want an event with value %q", got, value)
			}
		case code != 0:
			if got.Event != nil || !engine.IsCode(got.Err, code) {
				t.Fatalf("result %+v, want error code %d", got, code)
			}
		case errHas != "":
			if got.Event != nil || got.Err == nil || !strings.Contains(got.Err.Error(), errHas) {
				t.Fatalf("result %+v, want an error containing %q", got, errHas)
			}
		default:
			if got != (engine.Result{}) {
				t.Fatalf("result %+v, want the zero Result", got)
			}
		}
	}
	out, err := f.TryApply(ents)
	if err != nil || len(out) != len(ents) {
		t.Fatalf("TryApply: %d results, %v", len(out), err)
	}
	for i, want := range []struct {
		value  string
		code   int
		errHas string
	}{{value: "1"}, {}, {errHas: "entry 3"}, {code: engine.EcodeNodeExist}} {
		check(t, out[i], want.value, want.code, want.errHas)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Fatalf("applied index %d, want 4", got)
	}
	out, err = f.TryApply(ents)
	if err != nil || len(out) != len(ents) {
		t.Fatalf("TryApply again: %d results, %v", len(out), err)
	}
	for i := range out {
		check(t, out[i], "", 0, "")
	}
}
