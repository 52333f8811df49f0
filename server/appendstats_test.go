package server

import (
	"testing"
	"time"
)

// TestRateQueue: etcd's statsQueue.Rate arithmetic — samples between the
// oldest and newest held (at most 200), zero once the newest is over a
// second old.
func TestRateQueue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		samples   int           // one every step, 100 bytes each
		step      time.Duration // between samples
		at        time.Duration // after the first sample
		count     uint64
		pkg, band float64
	}{
		{"none", 0, 0, 0, 0, 0, 0},
		{"one sample: no span", 1, 0, 0, 1, 0, 0},
		{"11 over 100ms", 11, 10 * time.Millisecond, 150 * time.Millisecond, 11, 110, 11000},
		{"stale", 11, 10 * time.Millisecond, 1101 * time.Millisecond, 11, 0, 0},
		{"only the last 200 of 300", 300, 10 * time.Millisecond, 3 * time.Second, 300, 200 / 1.99, 20000 / 1.99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q rateQueue
			for i := 0; i < tc.samples; i++ {
				q.add(100, t0.Add(time.Duration(i)*tc.step))
			}
			count, pkg, band := q.rates(t0.Add(tc.at))
			if count != tc.count || !near(pkg, tc.pkg) || !near(band, tc.band) {
				t.Fatalf("rates = %d, %v, %v; want %d, %v, %v", count, pkg, band, tc.count, tc.pkg, tc.band)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
