package groupbench

import (
	"math"
	"slices"
)

// Hist is a latency histogram in log buckets 2% wide from 1 µs, the same
// buckets as the JGroups side (bench/jgroups/Bench.java), so that both
// report the same quantile of the same distribution to within a bucket.
// It is mergeable across members and bounded in size whatever the count.
type Hist struct {
	Counts [histBuckets]uint64
	Total  uint64
}

const (
	histBuckets = 1000
	histGrowth  = 1.02
)

var histLogGrowth = math.Log(histGrowth)

// Record adds one latency in nanoseconds (values below 1 µs count as 1 µs,
// values beyond the last bucket, several minutes, in the last).
func (h *Hist) Record(ns int64) {
	us := max(1.0, float64(ns)/1000)
	i := int(math.Log(us) / histLogGrowth)
	h.Counts[min(max(i, 0), histBuckets-1)]++
	h.Total++
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Total += o.Total
}

// QuantileMs is quantile q in milliseconds (the bucket's geometric
// middle), NaN when empty.
func (h *Hist) QuantileMs(q float64) float64 {
	if h.Total == 0 {
		return math.NaN()
	}
	rank := max(uint64(math.Ceil(q*float64(h.Total))), 1)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return math.Pow(histGrowth, float64(i)+0.5) / 1000
		}
	}
	return math.Pow(histGrowth, histBuckets) / 1000
}

// sparse is the wire form of a Hist: bucket index to count, non-zero only.
func (h *Hist) sparse() map[int]uint64 {
	m := make(map[int]uint64)
	for i, c := range h.Counts {
		if c != 0 {
			m[i] = c
		}
	}
	return m
}

// histFromSparse rebuilds a Hist, refusing indexes out of range.
func histFromSparse(m map[int]uint64) (*Hist, bool) {
	h := &Hist{}
	for i, c := range m {
		if i < 0 || i >= histBuckets {
			return nil, false
		}
		h.Counts[i] += c
		h.Total += c
	}
	return h, true
}

// exactQuantileMs is quantile q of ns (sorted in place), in milliseconds;
// NaN when empty. It uses the same rank rule as Hist (the ceil(q·n)-th
// smallest).
func exactQuantileMs(ns []int64, q float64) float64 {
	if len(ns) == 0 {
		return math.NaN()
	}
	slices.Sort(ns)
	rank := max(int(math.Ceil(q*float64(len(ns)))), 1)
	return float64(ns[rank-1]) / 1e6
}
