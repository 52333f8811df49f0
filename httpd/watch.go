package httpd

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/strata-kv/strata/auth"
	"github.com/strata-kv/strata/engine"
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
				if e := wa.Err(); e != nil {
					endWatch(w, rc, e)
				}
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

// endWatch ends a watch the hub ended with a cause (the member lost its
// leader). The 200 went out when the watch began, as etcd sends it, so the
// status can no longer say so: the body carries etcd's error JSON for
// people and logs, and the response is then aborted (no final chunk) so
// that no client takes it for a complete answer. Each client then
// re-watches: the Go client (body read fails) and python-etcd (urllib3
// ProtocolError, allow_reconnect) retry on the next member; node-etcd
// emits 'reconnect' and retries with backoff. An empty complete 200 made
// python-etcd raise "not valid JSON" and node-etcd emit 'error'; a complete
// 200 with error JSON would crash the Go client (it reads resp.Node).
func endWatch(w http.ResponseWriter, rc *http.ResponseController, e *engine.Error) {
	b, _ := json.Marshal(e)
	w.Write(append(b, '\n'))
	rc.Flush()
	panic(http.ErrAbortHandler) // net/http closes the connection, logs nothing
}

// isUnder reports whether p is dir or lies below it.
func isUnder(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}
