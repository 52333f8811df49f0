package server

import (
	"context"
	"time"

	"github.com/strata-kv/strata/engine"
)

// expireBatch bounds the nodes one expiry entry removes, so a mass expiry
// is spread over several entries and never stalls the log.
const expireBatch = 2000

// runExpiry is the expiry scheduler: on the leader, when the earliest TTL
// deadline is reached it proposes an OpExpire carrying the leader's clock,
// and every member removes exactly what was due at that time. Deadlines
// live in the backend's TTL index, so nothing scans the key space.
func (s *Server) runExpiry() {
	defer close(s.expiryDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var backlog expiryBacklog
	for {
		wait := time.Hour
		if s.replica.IsLeader() {
			if at, ok, err := s.eng.NextExpiry(); err != nil {
				s.log.Error("read next expiry", "err", err)
				wait = time.Second
			} else if ok {
				wait = time.Until(time.Unix(0, at))
			}
		} else {
			wait = 200 * time.Millisecond // re-check: we may become leader
		}
		if wait <= 0 {
			backlog.check(s.log, -wait)
			s.proposeExpire()
			continue
		}
		timer.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.eng.ExpiryChanged():
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (s *Server) proposeExpire() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := engine.Command{Op: engine.OpExpire, Time: time.Now().UnixNano(), Limit: expireBatch}
	if _, err := s.replica.Propose(ctx, c.Marshal()); err != nil {
		s.log.Warn("propose expiry", "err", err)
		select {
		case <-s.stop:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// expiryBacklogWarn is how far past its deadline the earliest TTL may be
// when the scheduler gets to it before the scheduler is said to fall
// behind (a mass expiry, a slow backend, a leader starved of CPU).
const expiryBacklogWarn = time.Second

// expiryBacklog logs, at most every 10 s, that the expiry scheduler is
// behind: due keys are being removed later than expiryBacklogWarn after
// their deadline. strata_store_expiry_overdue_seconds shows the same.
type expiryBacklog struct{ last time.Time }

func (b *expiryBacklog) check(log interface {
	Warn(msg string, args ...any)
}, overdue time.Duration) {
	if overdue < expiryBacklogWarn || time.Since(b.last) < 10*time.Second {
		return
	}
	b.last = time.Now()
	log.Warn("expiry is behind: the earliest due key is overdue", "overdue", overdue.Round(time.Millisecond))
}
