package loadclient

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prev := -1
	for v := int64(0); v < 100000; v++ {
		idx := bucketIndex(v)
		if idx < prev {
			t.Fatalf("bucketIndex not monotonic at %d", v)
		}
		prev = idx
	}
	for i := 0; i < 200000; i++ {
		v := rng.Int64N(1 << 62)
		idx := bucketIndex(v)
		if idx < 0 || idx >= numBuckets {
			t.Fatalf("bucketIndex(%d) = %d out of range", v, idx)
		}
		up := bucketUpper(idx)
		if up < v {
			t.Fatalf("bucketUpper(%d) = %d < %d", idx, up, v)
		}
		if float64(up-v) > float64(v)/subCount {
			t.Fatalf("relative error too large: v=%d upper=%d", v, up)
		}
	}
	if idx := bucketIndex(1<<63 - 1); idx >= numBuckets {
		t.Fatalf("max int64 maps to %d >= %d", idx, numBuckets)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples func(h *Histogram)
		p       float64
		want    time.Duration
	}{
		{"empty", func(h *Histogram) {}, 50, 0},
		{"single", func(h *Histogram) { h.Record(7 * ms) }, 99, 7 * ms},
		{"exact small values", func(h *Histogram) {
			for i := 1; i <= 100; i++ {
				h.Record(time.Duration(i))
			}
		}, 90, 90},
		{"1..1000ms p50", func(h *Histogram) {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i) * ms)
			}
		}, 50, 500 * ms},
		{"1..1000ms p99", func(h *Histogram) {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i) * ms)
			}
		}, 99, 990 * ms},
		{"1..1000ms p99.9", func(h *Histogram) {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i) * ms)
			}
		}, 99.9, 999 * ms},
		{"1..1000ms p100 is max", func(h *Histogram) {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i) * ms)
			}
		}, 100, 1000 * ms},
		{"bimodal 99x1ms 1x100ms p99", func(h *Histogram) {
			for i := 0; i < 99; i++ {
				h.Record(ms)
			}
			h.Record(100 * ms)
		}, 99, ms},
		{"bimodal 98x1ms 2x100ms p99", func(h *Histogram) {
			for i := 0; i < 98; i++ {
				h.Record(ms)
			}
			h.Record(100 * ms)
			h.Record(100 * ms)
		}, 99, 100 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			tc.samples(&h)
			got := h.Percentile(tc.p)
			if got < tc.want || float64(got-tc.want) > float64(tc.want)/subCount {
				t.Fatalf("p%v = %v, want %v (+<0.8%%)", tc.p, got, tc.want)
			}
		})
	}
}

func TestHistogramMergeStats(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 500; i++ {
		d := time.Duration(i) * time.Microsecond
		a.Record(d)
		all.Record(d)
	}
	for i := 501; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		b.Record(d)
		all.Record(d)
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m != all {
		t.Fatal("merge of halves differs from recording all samples")
	}
	if m.Count() != 1000 || m.Min() != time.Microsecond || m.Max() != time.Millisecond {
		t.Fatalf("count/min/max = %d/%v/%v", m.Count(), m.Min(), m.Max())
	}
	if want := 500500 * time.Nanosecond; m.Mean() != want {
		t.Fatalf("mean = %v, want %v", m.Mean(), want)
	}
	m.Reset()
	if m.Count() != 0 || m.Percentile(50) != 0 {
		t.Fatal("reset did not clear")
	}
}
