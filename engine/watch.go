package engine

import (
	"strings"
	"sync"
)

// Watcher receives the events of one watch. A long-poll watcher receives
// at most one event; a stream watcher receives every matching event until
// it is removed. If a stream watcher's buffer fills (the client reads too
// slowly), the hub removes it and closes C, so the client sees its stream
// end and re-watches from its last index instead of silently missing events.
type Watcher struct {
	C          <-chan *Event
	c          chan *Event
	key        string
	recursive  bool
	stream     bool
	since      uint64 // deliver events with index >= since
	lastSent   uint64 // an event is delivered once even if it matches twice
	startIndex uint64
	hub        *hub
	registered bool
	err        *Error // why the hub ended the watch; set before c is closed
}

// StartIndex is the store index when the watch began (X-Etcd-Index).
func (w *Watcher) StartIndex() uint64 { return w.startIndex }

// Err says why the hub ended the watch, once C is closed: nil when it fell
// behind or the state was replaced (the client simply re-watches), else the
// etcd error to show the client (e.g. the member lost its leader).
func (w *Watcher) Err() *Error { return w.err }

// Remove unregisters the watcher; safe to call more than once.
func (w *Watcher) Remove() {
	h := w.hub
	h.mu.Lock()
	h.unregister(w)
	h.mu.Unlock()
}

// hub routes events to watchers and keeps the event history. It sits above
// the backend: one hub per engine, whatever stores the nodes.
type hub struct {
	mu       sync.Mutex
	watchers map[string]map[*Watcher]struct{}
	count    int
	current  uint64 // index of the last published event
	history  *history
	buffer   int // stream watchers' channel capacity
}

func newHub(historySize, buffer int, current uint64) *hub {
	if buffer < 1 {
		buffer = 100
	}
	return &hub{
		watchers: make(map[string]map[*Watcher]struct{}),
		current:  current,
		history:  newHistory(historySize),
		buffer:   buffer,
	}
}

func (h *hub) watch(key string, recursive, stream bool, waitIndex uint64) (*Watcher, *Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := waitIndex
	if since == 0 {
		since = h.current + 1
	}
	max := 1
	if stream {
		max = len(h.history.ring)
	}
	past, err := h.history.scan(key, recursive, since, h.current, max)
	if err != nil {
		return nil, err
	}
	capacity := 1
	if stream {
		capacity = h.buffer + len(past)
	}
	c := make(chan *Event, capacity)
	w := &Watcher{C: c, c: c, key: key, recursive: recursive, stream: stream, since: since, startIndex: h.current, hub: h}
	for _, e := range past {
		c <- e
		w.lastSent = e.Index()
	}
	if len(past) > 0 && !stream {
		return w, nil // answered from history; never registered
	}
	if len(past) > 0 {
		w.since = w.lastSent + 1
	}
	set := h.watchers[key]
	if set == nil {
		set = make(map[*Watcher]struct{})
		h.watchers[key] = set
	}
	set[w] = struct{}{}
	w.registered = true
	h.count++
	return w, nil
}

func (h *hub) unregister(w *Watcher) {
	if !w.registered {
		return
	}
	w.registered = false
	set := h.watchers[w.key]
	delete(set, w)
	if len(set) == 0 {
		delete(h.watchers, w.key)
	}
	h.count--
}

// publish records committed events in order and wakes their watchers.
func (h *hub) publish(events []*Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		h.history.add(e)
		h.current = e.Index()
		if !e.Refresh && h.count > 0 {
			h.notify(e)
		}
	}
}

// notify delivers e to the watchers on the paths it touches: watchers on
// every node a directory removal took with it, then watchers on the key
// and each of its ancestors (the latter only if recursive).
func (h *hub) notify(e *Event) {
	for _, p := range e.removed {
		h.notifyAt(e, p, true)
	}
	key := e.Node.Key
	h.notifyAt(e, "/", false)
	for i := 1; i < len(key); i++ {
		if key[i] == '/' {
			h.notifyAt(e, key[:i], false)
		}
	}
	if key != "/" {
		h.notifyAt(e, key, false)
	}
}

func (h *hub) notifyAt(e *Event, p string, deleted bool) {
	set := h.watchers[p]
	if len(set) == 0 {
		return
	}
	original := e.Node.Key == p
	// Recursive watchers above a hidden node do not see it.
	if !original && hiddenBelow(p, e.Node.Key) {
		return
	}
	idx := e.Index()
	for w := range set {
		if !(w.recursive || original || deleted) || idx < w.since || idx <= w.lastSent {
			continue
		}
		select {
		case w.c <- e:
			w.lastSent = idx
			if !w.stream {
				h.unregister(w)
			}
		default:
			// Too slow to keep up: end the stream rather than drop events.
			h.unregister(w)
			close(w.c)
		}
	}
}

// hiddenBelow reports whether key, seen from watchPath, passes through a
// hidden segment (one starting with '_').
func hiddenBelow(watchPath, key string) bool {
	if len(watchPath) > len(key) {
		return false
	}
	return strings.Contains("/"+strings.TrimLeft(key[len(watchPath):], "/"), "/_")
}

// closeAll ends every watch, e.g. when the state is replaced by a snapshot.
// A non-nil cause is what each watcher's Err reports.
func (h *hub) closeAll(cause *Error) {
	for _, set := range h.watchers {
		for w := range set {
			h.unregister(w)
			w.err = cause
			close(w.c)
		}
	}
}

func (h *hub) watcherCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}
