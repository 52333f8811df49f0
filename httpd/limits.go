package httpd

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxWatchers is Config.MaxWatchers' default. An idle watch costs
// a handler goroutine, its watcher and, on HTTP/2, a stream: a few KiB.
const DefaultMaxWatchers = 100_000

// limitLogger writes at most one line per second for each kind of refusal
// and counts the lines it held back, so a client hammering a limit cannot
// flood the log.
type limitLogger struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether a line for kind may be written now, and how many
// were held back since the last one.
func (l *limitLogger) allow(kind string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	if t, ok := l.last[kind]; ok && now.Sub(t) < time.Second {
		l.held[kind]++
		return false, 0
	}
	n := l.held[kind]
	l.last[kind], l.held[kind] = now, 0
	return true, n
}

// refused logs, at Warn and rate-limited per reason, a request refused
// for crossing a limit. remote may be "".
func (s *Server) refused(remote, reason string, args ...any) {
	if !s.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	ok, held := s.limitLog.allow(reason, time.Now())
	if !ok {
		return
	}
	attrs := append([]any{"reason", reason}, args...)
	if remote != "" {
		attrs = append(attrs, "remote", remote)
	}
	if held > 0 {
		attrs = append(attrs, "similar_refusals_not_logged", held)
	}
	s.log.Warn("http: request refused", attrs...)
}

// acquireWatcher takes one of MaxWatchers slots; it answers 429 and
// returns false when none is left. Each true must be paired with
// releaseWatcher.
func (s *Server) acquireWatcher(w http.ResponseWriter, r *http.Request) bool {
	if n := s.watchers.Add(1); n > int64(s.cfg.MaxWatchers) {
		s.watchers.Add(-1)
		s.refused(r.RemoteAddr, "too many watchers", "limit", s.cfg.MaxWatchers)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{
			"message": "too many watchers: this member serves at most " + strconv.Itoa(s.cfg.MaxWatchers) + " at once (--max-watchers); retry later or on another member",
		})
		return false
	}
	return true
}

func (s *Server) releaseWatcher() { s.watchers.Add(-1) }

// Watchers is the number of watches open now.
func (s *Server) Watchers() int64 { return s.watchers.Load() }
