package engine

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// latency is a lock-free histogram of durations with log-linear buckets
// (8 per power of two of microseconds: under 12.5% relative error).
type latency struct {
	buckets [64 * 8]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Int64
}

func latencyBucket(us uint64) int {
	if us < 8 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1))
	return e*8 + int((us>>(e-3))&7)
}

func bucketLow(i int) uint64 {
	if i < 8 {
		return uint64(i)
	}
	e := i / 8
	return (8 + uint64(i%8)) << (e - 3)
}

func (l *latency) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	l.buckets[latencyBucket(uint64(d/time.Microsecond))].Add(1)
	l.count.Add(1)
	for {
		m := l.max.Load()
		if int64(d) <= m || l.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// LatencySummary summarises a latency histogram.
type LatencySummary struct {
	Count              uint64
	P50, P90, P99, Max time.Duration
}

func (l *latency) summary() LatencySummary {
	s := LatencySummary{Count: l.count.Load(), Max: time.Duration(l.max.Load())}
	if s.Count == 0 {
		return s
	}
	q := func(f float64) time.Duration {
		want := uint64(f * float64(s.Count))
		var seen uint64
		for i := range l.buckets {
			seen += l.buckets[i].Load()
			if seen > want {
				return min(time.Duration(bucketLow(i+1))*time.Microsecond, s.Max)
			}
		}
		return s.Max
	}
	s.P50, s.P90, s.P99 = q(0.50), q(0.90), q(0.99)
	return s
}

// ExpiryLateness reports how long after their deadline expired nodes
// were removed on this member (measured when the removal was applied).
func (e *Engine) ExpiryLateness() LatencySummary { return e.lateness.summary() }
