package httpd

import (
	"net/http"
	"strings"

	"github.com/strata-kv/strata/auth"
)

// serveWatch answers wait=true. Headers go out as soon as the watch is
// registered (clients rely on that to order a watch before a write); the
// body is one event, or for stream=true one event per line until the
// client leaves or the hub ends a watcher that fell behind.
//
// At most Config.MaxWatchers watches are open at once; beyond, 429.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, kr *keyRequest) {
	if !s.acquireWatcher(w, r) {
		return
	}
	defer s.releaseWatcher()
	wa, err := s.store.Watch(kr.path, kr.recursive, kr.stream, kr.waitIndex)
	if err != nil {
		writeError(w, err)
		return
	}
	defer wa.Remove()
	s.setIndexHeaders(w.Header(), wa.StartIndex())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case ev, ok := <-wa.C:
			if !ok {
				return // fell behind or the store was replaced: client re-watches
			}
			if isUnder(ev.Node.Key, auth.Dir) {
				return // never reached (hidden, NUL refused): defence in depth
			}
			if _, err := w.Write(append(ev.AppendJSON(nil), '\n')); err != nil {
				return
			}
			if !kr.stream {
				return
			}
			rc.Flush()
		}
	}
}

// isUnder reports whether p is dir or lies below it.
func isUnder(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}
