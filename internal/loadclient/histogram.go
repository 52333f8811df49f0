package loadclient

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values (nanoseconds) below 2*subCount are stored exactly;
// above that, every power-of-two range is split into subCount linear buckets.
// The relative error of any recorded value is therefore below 1/subCount
// (< 0.8%), and the memory footprint is fixed regardless of sample count.
const (
	subBits    = 7
	subCount   = 1 << subBits // 128
	maxShift   = 63 - subBits // largest shift needed for int64 values
	numBuckets = (maxShift + 2) * subCount
)

// Histogram records durations in fixed log-linear buckets (HDR-style).
//
// Guarantees: constant memory (about 60 KiB) independent of the number of
// samples; Count, Min, Max and Mean are exact; Percentile is never below the
// true value and at most 1/128 (< 0.8%) above it. The zero value is ready to
// use. A Histogram is not safe for concurrent use; record into one histogram
// per goroutine and Merge them.
type Histogram struct {
	counts [numBuckets]int64
	count  int64
	sum    float64 // nanoseconds, float to avoid overflow on very long runs
	min    int64
	max    int64
}

func bucketIndex(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1)
	return (shift+1)*subCount + int(v>>uint(shift)) - subCount
}

// bucketUpper returns the largest value that maps to bucket idx.
func bucketUpper(idx int) int64 {
	if idx < 2*subCount {
		return int64(idx)
	}
	shift := idx/subCount - 1
	sub := int64(idx%subCount + subCount)
	upper := (sub+1)<<uint(shift) - 1
	if upper < 0 { // top bucket overflows int64
		return math.MaxInt64
	}
	return upper
}

// Record adds one sample. Negative durations are recorded as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketIndex(v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += float64(v)
}

// Merge adds all samples of o into h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Reset discards all samples.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of recorded samples.
func (h *Histogram) Count() int64 { return h.count }

// Min returns the smallest sample, or 0 if empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest sample, or 0 if empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean of the samples, or 0 if empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Percentile returns the value below or at which p percent (0 < p <= 100) of
// the samples fall: the smallest recorded bucket whose cumulative count
// reaches ceil(p/100 * Count), reported as that bucket's upper bound clamped
// to Max. It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if p <= 0 {
		return time.Duration(h.min)
	}
	rank := int64(math.Ceil(p / 100 * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.count {
		rank = h.count
	}
	var cum int64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := bucketUpper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// CountAtMost returns how many samples fall in the buckets at or below the
// one that holds d: every sample <= d is counted, and samples up to 1/128
// above d may be too (the bucket's width).
func (h *Histogram) CountAtMost(d time.Duration) int64 {
	v := int64(d)
	if v < 0 {
		return 0
	}
	last := bucketIndex(v)
	var n int64
	for i := 0; i <= last && i < len(h.counts); i++ {
		n += h.counts[i]
	}
	return n
}
