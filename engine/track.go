package engine

import "sync/atomic"

// Tracker counts the applied changes at or below one directory, so a
// reader can cache what it derived from that subtree and notice at once
// when it is stale.
//
// Guarantee: Version is increased after the backend holds a change and
// before ApplyBatch returns (so before the proposer of the change is
// answered and before watchers are woken). A reader that loads Version,
// then reads the subtree, therefore sees every change counted up to the
// version it loaded (possibly more); tagging its cache with that version
// is safe. A Restore counts as a change to every tracked subtree.
type Tracker struct {
	dir string
	n   atomic.Uint64
}

// Version is the number of changes counted so far; it only grows.
func (t *Tracker) Version() uint64 { return t.n.Load() }

// Track starts counting changes at or below dir (a clean absolute path).
// Trackers are never removed; callers keep the one they were given.
func (e *Engine) Track(dir string) *Tracker {
	t := &Tracker{dir: dir}
	e.trackMu.Lock()
	defer e.trackMu.Unlock()
	var ts []*Tracker
	if old := e.trackers.Load(); old != nil {
		ts = append(ts, *old...)
	}
	ts = append(ts, t)
	e.trackers.Store(&ts)
	return t
}

// countTracked bumps the trackers whose subtree an applied event touched.
func (e *Engine) countTracked(events []*Event) {
	ts := e.trackers.Load()
	if ts == nil {
		return
	}
	for _, t := range *ts {
		for _, ev := range events {
			if k := ev.Node.Key; isUnder(k, t.dir) || isUnder(t.dir, k) {
				t.n.Add(1)
				break
			}
		}
	}
}

// countAllTracked bumps every tracker (the whole state was replaced).
func (e *Engine) countAllTracked() {
	if ts := e.trackers.Load(); ts != nil {
		for _, t := range *ts {
			t.n.Add(1)
		}
	}
}
