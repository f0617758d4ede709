package bench

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram bucketing: values (nanoseconds) below histSubBuckets are exact; above,
// each power of two is split into histSubBuckets linear buckets, so a bucket is
// at most 1/histSubBuckets (0.8 %) wide relative to its value, the same idea as
// HdrHistogram with two significant decimal digits.
const (
	histSubBits    = 7
	histSubBuckets = 1 << histSubBits // 128
	// histValueMax is the largest recordable value; larger ones are clamped
	// (and counted in Clamped): 2^40 ns is about 18 minutes.
	histValueBits = 40
	histValueMax  = uint64(1)<<histValueBits - 1
	histBuckets   = (histValueBits-histSubBits+1)*histSubBuckets + histSubBuckets
)

// Histogram records latencies into log-linear buckets. The zero value is
// ready to use. It is not safe for concurrent use: give each worker its own
// and Merge them.
type Histogram struct {
	counts  [histBuckets]uint64
	total   uint64
	sumNs   float64
	minNs   uint64
	maxNs   uint64
	clamped uint64
}

// bucketOf returns the bucket index of v (v <= histValueMax).
func bucketOf(v uint64) int {
	if v < histSubBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [128, 256)
	return (shift+1)*histSubBuckets + int(v>>shift) - histSubBuckets
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < histSubBuckets {
		return uint64(i)
	}
	shift := i/histSubBuckets - 1
	mant := uint64(i%histSubBuckets + histSubBuckets)
	return (mant+1)<<shift - 1
}

// Record adds one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	if v > histValueMax {
		v = histValueMax
		h.clamped++
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.minNs {
		h.minNs = v
	}
	if v > h.maxNs {
		h.maxNs = v
	}
	h.total++
	h.sumNs += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.minNs < h.minNs {
		h.minNs = o.minNs
	}
	if o.maxNs > h.maxNs {
		h.maxNs = o.maxNs
	}
	h.total += o.total
	h.sumNs += o.sumNs
	h.clamped += o.clamped
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Clamped returns how many values exceeded the recordable maximum (about 18
// minutes) and were recorded as that maximum.
func (h *Histogram) Clamped() uint64 { return h.clamped }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.minNs) }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.maxNs) }

// Mean returns the exact mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sumNs / float64(h.total))
}

// Quantile returns the value at quantile q in [0, 1]: the upper edge of the
// bucket holding the ceil(q*count)-th smallest value, capped at the exact Max,
// so it overstates the true value by less than one bucket (0.8 %). It returns
// 0 when the histogram is empty and an error for q outside [0, 1].
func (h *Histogram) Quantile(q float64) (time.Duration, error) {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return 0, fmt.Errorf("%w: quantile %v not in [0, 1]", ErrBadConfig, q)
	}
	if h.total == 0 {
		return 0, nil
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.maxNs {
				v = h.maxNs
			}
			if v < h.minNs {
				v = h.minNs
			}
			return time.Duration(v), nil
		}
	}
	return time.Duration(h.maxNs), nil
}

// mustQuantile is Quantile for the fixed, valid quantiles the reports use.
func (h *Histogram) mustQuantile(q float64) time.Duration {
	d, err := h.Quantile(q)
	if err != nil {
		return 0
	}
	return d
}
