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
	sum     atomic.Int64 // nanoseconds
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
	l.sum.Add(int64(d))
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

// LatencyHistogram is a latency histogram in cumulative form, as
// Prometheus exposes one: Cumulative[i] counts the samples below
// Bounds[i]; Count and Sum cover every sample.
type LatencyHistogram struct {
	Count      uint64
	Sum        time.Duration
	Bounds     []time.Duration
	Cumulative []uint64
}

// ExpiryLatenessBounds are the bounds of ExpiryLatenessHistogram: powers
// of two of microseconds from 128 µs to about 33.5 s, which are bucket
// boundaries of the engine's histogram, so its counts are exact.
var ExpiryLatenessBounds = func() []time.Duration {
	var b []time.Duration
	for k := 7; k <= 25; k++ {
		b = append(b, time.Duration(1<<k)*time.Microsecond)
	}
	return b
}()

// ExpiryLatenessHistogram returns the expiry lateness samples (see
// ExpiryLateness) counted below each of ExpiryLatenessBounds. Read while
// expirations are applied, the counts may be off by the samples being
// recorded.
func (e *Engine) ExpiryLatenessHistogram() LatencyHistogram {
	l := &e.lateness
	h := LatencyHistogram{Count: l.count.Load(), Sum: time.Duration(l.sum.Load()), Bounds: ExpiryLatenessBounds}
	h.Cumulative = make([]uint64, len(h.Bounds))
	var seen uint64
	j := 0
	for i := range l.buckets {
		if i >= 8 && i < 24 {
			continue // never used: 8 µs and up start at bucket 24
		}
		// Bucket i holds samples in [bucketLow(i), bucketLow(next)) µs.
		for j < len(h.Bounds) && time.Duration(bucketLow(i))*time.Microsecond >= h.Bounds[j] {
			h.Cumulative[j] = seen
			j++
		}
		if j == len(h.Bounds) {
			break
		}
		seen += l.buckets[i].Load()
	}
	for ; j < len(h.Bounds); j++ {
		h.Cumulative[j] = seen
	}
	return h
}
