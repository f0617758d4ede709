package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketsContiguous checks that every value maps to a bucket whose upper
// edge is at least the value, that edges grow, and that a bucket is at most
// 1/128 of its value wide.
func TestBucketsContiguous(t *testing.T) {
	prev := -1
	for _, v := range sampleValues() {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d, below the previous value's %d", v, b, prev)
		}
		prev = b
		hi := bucketHigh(b)
		if hi < v {
			t.Fatalf("value %d in bucket %d whose upper edge is %d", v, b, hi)
		}
		if b > 0 {
			lo := bucketHigh(b-1) + 1
			if v < lo {
				t.Fatalf("value %d in bucket %d, which starts at %d", v, b, lo)
			}
			if width := hi - lo + 1; v >= histSubBuckets && float64(width) > float64(v)/histSubBuckets*1.0001 {
				t.Fatalf("bucket %d of value %d is %d wide (more than 1/%d)", b, v, width, histSubBuckets)
			}
		}
		if b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, beyond %d buckets", v, b, histBuckets)
		}
	}
}

// sampleValues returns increasing values around every power of two up to the maximum.
func sampleValues() []uint64 {
	var vs []uint64
	for v := uint64(0); v < 1024; v++ {
		vs = append(vs, v)
	}
	for s := 10; s < histValueBits; s++ {
		base := uint64(1) << s
		for _, d := range []uint64{0, 1, base / 3, base/2 - 1, base / 2, base - 1} {
			vs = append(vs, base+d)
		}
	}
	vs = append(vs, histValueMax)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// TestQuantileAgainstExact compares Quantile with the exact order statistic
// of random latency samples: it must never be below it and at most one
// bucket (0.8 %) above.
func TestQuantileAgainstExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-50ms": func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) },
		"lognormal":      func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 14)) },
		"bimodal": func() time.Duration {
			if rng.IntN(100) < 3 {
				return 200*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 2*time.Millisecond + time.Duration(rng.Int64N(int64(100*time.Microsecond)))
		},
		"tiny": func() time.Duration { return time.Duration(rng.Int64N(300)) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			n := 20011 // prime: q*n is not an integer, so rounding matters
			vals := make([]time.Duration, n)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				got, err := h.Quantile(q)
				if err != nil {
					t.Fatal(err)
				}
				rank := max(int(math.Ceil(q*float64(n))), 1)
				want := vals[rank-1]
				if got < want || float64(got) > float64(want)*(1+1.0/histSubBuckets)+1 {
					t.Errorf("q%v = %v, exact %v (allowed [exact, exact*1.008])", q, got, want)
				}
			}
			if h.Count() != uint64(n) || h.Min() != vals[0] || h.Max() != vals[n-1] {
				t.Errorf("count/min/max = %d/%v/%v, want %d/%v/%v", h.Count(), h.Min(), h.Max(), n, vals[0], vals[n-1])
			}
		})
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, a, b Histogram
	for i := range 5000 {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.counts != all.counts || m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatalf("merged histogram differs from the one that recorded everything")
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if q, err := h.Quantile(0.5); err != nil || q != 0 {
		t.Fatalf("empty: Quantile = %v, %v; want 0, nil", q, err)
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if _, err := h.Quantile(q); err == nil {
			t.Errorf("Quantile(%v) accepted", q)
		}
	}
	h.Record(-time.Second)
	h.Record(time.Duration(histValueMax) * 4)
	if h.Min() != 0 || h.Max() != time.Duration(histValueMax) || h.Clamped() != 1 {
		t.Fatalf("min/max/clamped = %v/%v/%d, want 0/%v/1", h.Min(), h.Max(), h.Clamped(), time.Duration(histValueMax))
	}
}
