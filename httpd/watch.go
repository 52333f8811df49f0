package httpd

import "net/http"

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
