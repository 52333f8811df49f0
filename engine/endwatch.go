package engine

// EndWatches ends every open watch, as a snapshot restore does: each
// watcher's channel is closed, so its client sees the response end and
// re-watches from its last index. A member that loses its leader calls it
// rather than leave watches open that may no longer see new writes. It
// returns the number of watches ended.
func (e *Engine) EndWatches() int {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.count
	h.closeAll()
	return n
}
