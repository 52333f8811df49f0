package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/strata-kv/strata/backends"
)

// An imported store (an etcd data dir) arrives with its event history, so
// a client resuming a watch with a waitIndex inside that window gets the
// same event it would have from etcd. The history is kept in the backend
// under metaHistoryKey and loaded by Open only while it still ends at the
// store index: once Strata has applied writes of its own and restarted,
// the in-memory history it had is gone (as after any restart) and the
// saved one would have a gap, so it is ignored.
var metaHistoryKey = []byte("mhistory")

type savedEvent struct {
	Action   string `json:"action"`
	Node     *Node  `json:"node,omitempty"`
	PrevNode *Node  `json:"prevNode,omitempty"`
	Refresh  bool   `json:"refresh,omitempty"`
}

// savedHistory is the saved form: the events and the store index they
// bring the history up to (later than the last event's when the store
// was advanced past writes no watch shows).
type savedHistory struct {
	Index  uint64       `json:"index"`
	Events []savedEvent `json:"events"`
}

// SeedHistory puts events (oldest first, at most one per index, ending at
// or before the store index) into the watch history, as if this engine had
// applied them.
func (e *Engine) SeedHistory(events []*Event) error {
	for i, ev := range events {
		if ev.Node == nil {
			return fmt.Errorf("engine: seeded event %d has no node", i)
		}
		if i > 0 && ev.Index() <= events[i-1].Index() {
			return fmt.Errorf("engine: seeded events out of order at %d (index %d after %d)", i, ev.Index(), events[i-1].Index())
		}
	}
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(events); n > 0 && events[n-1].Index() > h.current {
		return fmt.Errorf("engine: seeded history ends at %d, after the store's index %d", events[n-1].Index(), h.current)
	}
	h.history.reset()
	for _, ev := range events {
		h.history.add(ev)
	}
	return nil
}

// SaveHistory writes the current watch history to the backend, at
// appliedIndex, for Open to load (see metaHistoryKey).
func (e *Engine) SaveHistory(appliedIndex uint64) error {
	h := e.hub
	h.mu.Lock()
	saved := savedHistory{Index: h.current, Events: make([]savedEvent, h.history.n)}
	for i := range saved.Events {
		ev := h.history.at(i)
		saved.Events[i] = savedEvent{Action: ev.Action, Node: ev.Node, PrevNode: ev.PrevNode, Refresh: ev.Refresh}
	}
	h.mu.Unlock()
	b, err := json.Marshal(saved)
	if err != nil {
		return fmt.Errorf("save history: %w", err)
	}
	return e.be.Update(appliedIndex, func(w backends.Writer) error { return w.Put(metaHistoryKey, b) })
}

// loadHistory fills the hub from a saved history that ends at index.
func (e *Engine) loadHistory(index uint64) error {
	var b []byte
	err := e.be.View(func(r backends.Reader) error {
		v, err := r.Get(metaHistoryKey)
		if errors.Is(err, backends.ErrNotFound) {
			return nil
		}
		b = append([]byte(nil), v...)
		return err
	})
	if err != nil || b == nil {
		return err
	}
	var saved savedHistory
	if len(b) > 0 && b[0] == '[' { // the first imports saved the events alone, ending at the store index
		err = json.Unmarshal(b, &saved.Events)
		if n := len(saved.Events); n > 0 && saved.Events[n-1].Node != nil {
			saved.Index = saved.Events[n-1].Node.ModifiedIndex
		}
	} else {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		return fmt.Errorf("engine: corrupt saved history: %w", err)
	}
	if len(saved.Events) == 0 || saved.Index != index {
		return nil // stale: Strata has moved on since the import
	}
	events := make([]*Event, len(saved.Events))
	for i, s := range saved.Events {
		if s.Node == nil {
			return fmt.Errorf("engine: corrupt saved history: event %d has no node", i)
		}
		events[i] = &Event{Action: s.Action, Node: s.Node, PrevNode: s.PrevNode, Refresh: s.Refresh, EtcdIndex: s.Node.ModifiedIndex}
	}
	return e.SeedHistory(events)
}
