package load

import (
	"slices"
	"time"
)

// Median is the middle of xs (the mean of the two middle values for an
// even count; 0 for none). xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Medians summarises the rounds of one scenario.
type Medians struct {
	N                   int     // rounds
	RPS, RPSMin, RPSMax float64 // median, lowest and highest req/s
	P50ms, P99ms        float64 // median latencies, ms
	Failed              int64   // failed requests, summed over the rounds
}

// Rounds collects the rounds of one scenario; the zero value holds none.
type Rounds struct {
	rps, p50, p99 []float64
	failed        int64
}

// Add records one round: its req/s, latencies and failed requests.
func (r *Rounds) Add(rps float64, p50, p99 time.Duration, failed int64) {
	r.rps = append(r.rps, rps)
	r.p50 = append(r.p50, float64(p50)/float64(time.Millisecond))
	r.p99 = append(r.p99, float64(p99)/float64(time.Millisecond))
	r.failed += failed
}

// Medians returns the summary of the rounds, false if there were none.
func (r *Rounds) Medians() (Medians, bool) {
	if len(r.rps) == 0 {
		return Medians{}, false
	}
	return Medians{N: len(r.rps), RPS: Median(r.rps), RPSMin: slices.Min(r.rps), RPSMax: slices.Max(r.rps),
		P50ms: Median(r.p50), P99ms: Median(r.p99), Failed: r.failed}, true
}
