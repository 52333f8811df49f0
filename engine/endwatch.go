package engine

// EndWatches ends every open watch: each watcher's channel is closed and
// its Err reports cause, so its client is told why and re-watches from its
// last index. A member that loses its leader calls it rather than leave
// watches open that may no longer see new writes. It returns the number of
// watches ended.
func (e *Engine) EndWatches(cause *Error) int {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.count
	h.closeAll(cause)
	return n
}
