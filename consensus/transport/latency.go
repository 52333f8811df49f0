package transport

import (
	"math"
	"sync"
	"time"
)

// LatencyStats summarizes round trips in seconds, as etcd's leader stats.
type LatencyStats struct {
	Current, Average, StandardDeviation, Minimum, Maximum float64
	Samples                                               uint64
}

// latency accumulates round-trip samples (Welford's running variance).
type latency struct {
	mu       sync.Mutex
	n        uint64
	cur      float64
	mean, m2 float64
	min, max float64
}

func (l *latency) add(d time.Duration) {
	s := d.Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	l.cur = s
	delta := s - l.mean
	l.mean += delta / float64(l.n)
	l.m2 += delta * (s - l.mean)
	if l.n == 1 || s < l.min {
		l.min = s
	}
	if s > l.max {
		l.max = s
	}
}

func (l *latency) stats() LatencyStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LatencyStats{Current: l.cur, Average: l.mean, Minimum: l.min, Maximum: l.max, Samples: l.n}
	if l.n > 0 {
		st.StandardDeviation = math.Sqrt(l.m2 / float64(l.n))
	}
	return st
}
