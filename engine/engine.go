// Package engine implements the etcd v2 key space: hierarchical nodes,
// directories, TTLs, compare-and-swap/delete, in-order keys, the watch hub
// with its event history, the expiry index and the store statistics.
//
// The engine is deterministic: applying the same sequence of commands
// gives the same state everywhere. It knows nothing of HTTP or raft; it
// reads and writes through a backends.Backend, and mutations reach it only
// through ApplyBatch, in log order.
package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/backends"
)

// Options tune an Engine. Zero values give etcd's defaults.
type Options struct {
	// HistorySize is how many recent events answer past waitIndexes (1000).
	HistorySize int
	// WatchBuffer is a stream watcher's channel capacity (100).
	WatchBuffer int
	// Now is the clock used to report remaining TTLs (time.Now).
	Now func() time.Time
}

// Engine is the v2 store over one backend.
type Engine struct {
	be    backends.Backend
	hub   *hub
	stats counters
	now   func() time.Time
	// expiryWake is signalled when an applied batch may have moved the
	// earliest TTL deadline.
	expiryWake chan struct{}
	index      atomic.Uint64
	lateness   latency
	// trackers count changes below chosen directories (track.go).
	trackers atomic.Pointer[[]*Tracker]
	trackMu  sync.Mutex
	// count keeps the number of nodes (count.go); events counts the
	// events applied (Events).
	count  nodeCount
	events atomic.Uint64
}

// Open starts an engine over be, resuming from the state be holds.
func Open(be backends.Backend, opts Options) (*Engine, error) {
	if opts.HistorySize <= 0 {
		opts.HistorySize = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{be: be, now: opts.Now, expiryWake: make(chan struct{}, 1)}
	idx, err := e.readIndex()
	if err != nil {
		return nil, err
	}
	e.index.Store(idx)
	e.hub = newHub(opts.HistorySize, opts.WatchBuffer, idx)
	if err := e.loadHistory(idx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Engine) readIndex() (uint64, error) {
	var idx uint64
	err := e.be.View(func(r backends.Reader) error {
		var err error
		idx, err = metaIndex(r)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read store index: %w", err)
	}
	return idx, nil
}

func metaIndex(r backends.Reader) (uint64, error) {
	v, err := r.Get(metaIndexKey)
	if errors.Is(err, backends.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, errors.New("engine: corrupt store index")
	}
	return binary.BigEndian.Uint64(v), nil
}

// Index is the current store index (X-Etcd-Index).
func (e *Engine) Index() uint64 { return e.index.Load() }

// AppliedIndex is the raft index of the last applied batch.
func (e *Engine) AppliedIndex() uint64 { return e.be.AppliedIndex() }

// Events is the number of events (changes, expirations included) this
// engine applied since Open: it counts what watchers may be sent, whether
// or not any watches.
func (e *Engine) Events() uint64 { return e.events.Load() }

// Stats returns the store counters.
func (e *Engine) Stats() StoreStats {
	s := e.stats.snapshot()
	s.Watchers = uint64(e.hub.watcherCount())
	return s
}

// Get reads the node at p (a clean absolute path). A directory lists its
// children, all levels of them if recursive; hidden nodes are not listed.
// Children are always in key order, so sorted needs no extra work.
func (e *Engine) Get(p string, recursive, sorted bool) (*Event, error) {
	var ev *Event
	err := e.be.View(func(r backends.Reader) error {
		cur, err := metaIndex(r)
		if err != nil {
			return err
		}
		rd := newReader(r)
		rec, verr := rd.lookup(p, cur)
		if verr != nil {
			return verr
		}
		now := e.now()
		var n *Node
		if p == "/" {
			n = &Node{Dir: true}
		} else {
			n = rec.repr(p, now)
		}
		if rec.dir {
			if n.Nodes, err = rd.children(p, recursive, now); err != nil {
				return err
			}
		}
		ev = &Event{Action: ActionGet, Node: n, EtcdIndex: cur}
		return nil
	})
	if err != nil {
		e.stats.getErr.Add(1)
		return nil, err
	}
	e.stats.getOK.Add(1)
	return ev, nil
}

// Watch waits for changes to key (and below it if recursive) from
// waitIndex on (0: the next change). A past waitIndex is answered from the
// history or fails with error 401 when it is older than the history.
func (e *Engine) Watch(key string, recursive, stream bool, waitIndex uint64) (*Watcher, error) {
	w, err := e.hub.watch(key, recursive, stream, waitIndex)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// ApplyBatch applies commands in order and records appliedIndex with their
// writes in one atomic backend update. Request failures (a missing key, a
// failed comparison) are results, not errors; an error means the backend
// failed and the state machine cannot go on.
func (e *Engine) ApplyBatch(appliedIndex uint64, cmds []Command) ([]Result, error) {
	results := make([]Result, len(cmds))
	var events []*Event
	var ttlTouched bool
	var files, dirs int64
	err := e.be.Update(appliedIndex, func(w backends.Writer) error {
		events = events[:0]
		cur, err := metaIndex(w)
		if err != nil {
			return err
		}
		t := &txn{reader: newReader(w), w: w, index: cur, now: e.now()}
		for i := range cmds {
			ev, err := t.apply(&cmds[i])
			if err != nil {
				var verr *Error
				if !errors.As(err, &verr) {
					return err // backend failure: abort the whole batch
				}
				results[i] = Result{Err: verr}
				continue
			}
			if ev != nil {
				results[i] = Result{Event: ev}
				events = append(events, ev)
			}
			events = append(events, t.expired...)
			t.expired = t.expired[:0]
		}
		if t.index != cur {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], t.index)
			if err := w.Put(metaIndexKey, b[:]); err != nil {
				return err
			}
		}
		ttlTouched = t.ttlTouched
		files, dirs = t.files, t.dirs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply batch at %d: %w", appliedIndex, err)
	}
	for i := range cmds {
		if cmds[i].Op == OpExpire {
			continue // counted per expired node
		}
		e.stats.op(cmds[i].Op, results[i].Err != nil)
	}
	if len(events) > 0 {
		now := time.Now()
		for _, ev := range events {
			if ev.Action == ActionExpire {
				e.stats.op(OpExpire, false)
				e.lateness.record(now.Sub(*ev.PrevNode.Expiration))
			}
		}
		e.index.Store(events[len(events)-1].Index())
		e.count.add(events[len(events)-1].Index(), files, dirs)
		e.events.Add(uint64(len(events)))
		e.countTracked(events)
		e.hub.publish(events)
	}
	if ttlTouched {
		e.wakeExpiry()
	}
	return results, nil
}

// wakeExpiry tells the expiry scheduler that the earliest deadline may
// have changed.
func (e *Engine) wakeExpiry() {
	select {
	case e.expiryWake <- struct{}{}:
	default:
	}
}

// NextExpiry is the earliest TTL deadline in the store (unix ns), if any.
func (e *Engine) NextExpiry() (int64, bool, error) {
	var at int64
	var ok bool
	err := e.be.View(func(r backends.Reader) error {
		return r.Ascend(ttlStart, ttlEnd, func(k, _ []byte) bool {
			at, _ = parseTTLKey(k)
			ok = true
			return false
		})
	})
	return at, ok, err
}

// ExpiryChanged is signalled after a batch that added, moved or removed a
// TTL, so a scheduler can re-read NextExpiry.
func (e *Engine) ExpiryChanged() <-chan struct{} { return e.expiryWake }

// Snapshot writes the whole store in the backends' portable format and
// returns the raft index it reflects.
func (e *Engine) Snapshot(w io.Writer) (uint64, error) {
	iw := &backends.SnapshotIndexWriter{W: w}
	if err := e.be.Snapshot(iw); err != nil {
		return 0, err
	}
	return iw.AppliedIndex()
}

// Restore replaces the whole store with a snapshot. Watches in progress
// are ended (their clients re-watch) and the event history restarts.
func (e *Engine) Restore(r io.Reader) error {
	if err := e.be.Restore(r); err != nil {
		return err
	}
	idx, err := e.readIndex()
	if err != nil {
		return err
	}
	e.index.Store(idx)
	h := e.hub
	h.mu.Lock()
	h.closeAll(nil)
	h.history.reset()
	h.current = idx
	h.mu.Unlock()
	if err := e.loadHistory(idx); err != nil {
		return err
	}
	e.count.reset()
	e.countAllTracked()
	e.wakeExpiry()
	return nil
}

// Sync flushes the backend so the raft log before AppliedIndex may go.
func (e *Engine) Sync() error { return e.be.Sync() }
