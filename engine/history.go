package engine

import (
	"fmt"
	"sort"
	"strings"
)

// history is a ring of the most recent events, answering watches whose
// waitIndex lies in the past. Every index increment is one event, so the
// ring covers a contiguous range of indexes.
type history struct {
	ring  []*Event
	first int // ring position of the oldest event
	n     int
}

func newHistory(size int) *history {
	if size < 1 {
		size = 1
	}
	return &history{ring: make([]*Event, size)}
}

func (h *history) add(e *Event) {
	if h.n < len(h.ring) {
		h.ring[(h.first+h.n)%len(h.ring)] = e
		h.n++
		return
	}
	h.ring[h.first] = e
	h.first = (h.first + 1) % len(h.ring)
}

func (h *history) at(i int) *Event { return h.ring[(h.first+i)%len(h.ring)] }

func (h *history) reset() {
	clear(h.ring)
	h.first, h.n = 0, 0
}

// startIndex is the oldest index the history can answer for. With no
// events (a fresh start or a restart) nothing before current+1 is known.
func (h *history) startIndex(current uint64) uint64 {
	if h.n == 0 {
		return current + 1
	}
	return h.at(0).Index()
}

// scan returns the events at or after index that a watch on key would
// see, at most max of them (max <= 0: one). It fails with 401 when index
// is older than the history.
func (h *history) scan(key string, recursive bool, index, current uint64, max int) ([]*Event, *Error) {
	start := h.startIndex(current)
	if index < start {
		return nil, NewError(EcodeEventIndexCleared,
			fmt.Sprintf("the requested history has been cleared [%v/%v]", start, index), current)
	}
	if max <= 0 {
		max = 1
	}
	i := sort.Search(h.n, func(i int) bool { return h.at(i).Index() >= index })
	var out []*Event
	prefix := key
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	for ; i < h.n && len(out) < max; i++ {
		e := h.at(i)
		if e.Refresh {
			continue
		}
		k := e.Node.Key
		// Unlike live events, history shows a recursive watch the hidden
		// ('_') nodes below its key: etcd 3.4's EventHistory.scan matches
		// by prefix alone (recorded: a watch on /dir from the index of
		// /dir/_h gets /dir/_h). Strata's own NUL-named nodes (auth) stay
		// out of sight of every watch that does not name them.
		ok := k == key || (recursive && strings.HasPrefix(k, prefix) && !internalBelow(key, k))
		// A deleted or expired directory takes the watched key with it.
		if !ok && (e.Action == ActionDelete || e.Action == ActionExpire) && e.PrevNode != nil && e.PrevNode.Dir {
			ok = isUnder(key, e.PrevNode.Key)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// internalBelow reports whether k is a Strata-internal node (its path has
// a NUL byte, which no request can send) that a watch on key must not see.
func internalBelow(key, k string) bool {
	return strings.IndexByte(k, 0) >= 0 && strings.IndexByte(key, 0) < 0
}

// isUnder reports whether p is dir or lies below it.
func isUnder(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}
