package httpd

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// serveWatch answers wait=true. Headers go out as soon as the watch is
// registered (clients rely on that to order a watch before a write); the
// body is one event, or for stream=true one event per line until the
// client leaves or the hub ends a watcher that fell behind.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, kr *keyRequest) {
	wa, err := s.store.Watch(kr.path, kr.recursive, kr.stream, kr.waitIndex)
	if err != nil {
		writeError(w, err)
		return
	}
	defer wa.Remove()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Etcd-Index", strconv.FormatUint(wa.StartIndex(), 10))
	ri, rt := s.store.RaftStatus()
	h.Set("X-Raft-Index", strconv.FormatUint(ri, 10))
	h.Set("X-Raft-Term", strconv.FormatUint(rt, 10))
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
			b, err := json.Marshal(ev)
			if err != nil {
				return
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return
			}
			if !kr.stream {
				return
			}
			rc.Flush()
		}
	}
}
