package groupbench

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chorus-project/chorus/group"
)

// TestHistQuantile checks the log-bucket quantile against the exact one:
// within one bucket (2%) for latencies from 10 µs to 1 s.
func TestHistQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Hist
	var ns []int64
	for range 10000 {
		v := int64(math.Exp(math.Log(1e4) + r.Float64()*math.Log(1e5)))
		h.Record(v)
		ns = append(ns, v)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
		got, want := h.QuantileMs(q), exactQuantileMs(slices.Clone(ns), q)
		if math.Abs(got-want)/want > 0.021 {
			t.Errorf("q%.2f: hist %.4f ms, exact %.4f ms: more than a bucket apart", q, got, want)
		}
	}
	if !math.IsNaN((&Hist{}).QuantileMs(0.5)) || !math.IsNaN(exactQuantileMs(nil, 0.5)) {
		t.Error("an empty histogram has a quantile")
	}
	// Merge and the sparse wire form lose nothing.
	back, ok := histFromSparse(h.sparse())
	if !ok || *back != h {
		t.Error("sparse round trip changed the histogram")
	}
	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.Total != 2*h.Total || m.QuantileMs(0.5) != h.QuantileMs(0.5) {
		t.Error("merging a histogram with itself changed its median")
	}
	if _, ok := histFromSparse(map[int]uint64{histBuckets: 1}); ok {
		t.Error("a bucket index out of range was accepted")
	}
}

// TestSummarize: msgs/s is the minimum over members, the all-member
// latency is the maximum over members of messages sampled at every member,
// and the own latency merges the senders' histograms.
func TestSummarize(t *testing.T) {
	second := int64(time.Second)
	own := func(ms ...int64) map[int]uint64 {
		var h Hist
		for _, v := range ms {
			h.Record(v * 1e6)
		}
		return h.sparse()
	}
	evs := []event{
		{ID: 1, Rank: 0, Delivered: 3000, WindowNs: second, Sent: 3000, OwnHist: own(1, 1, 1),
			Samples: [][2]int64{{0, 1e6}, {4, 2e6}, {8, 9e6}}},
		{ID: 2, Rank: 1, Delivered: 2000, WindowNs: second, OwnHist: own(),
			Samples: [][2]int64{{0, 5e6}, {4, 1e6}}}, // seq 8 not sampled here: left out
		{ID: 3, Rank: 2, Delivered: 4000, WindowNs: second, OwnHist: own(),
			Samples: [][2]int64{{0, 3e6}, {4, 7e6}, {8, 1e6}}},
	}
	r, err := summarize(evs, "total", 1000, "one")
	if err != nil {
		t.Fatal(err)
	}
	if r.MsgsPS != 2000 || r.MBPS != 2 {
		t.Errorf("msgs/s %v MB/s %v, want the minimum 2000 and 2", r.MsgsPS, r.MBPS)
	}
	if r.AllSamples != 2 || r.P50AllMs != 5 || r.P99AllMs != 7 {
		t.Errorf("all-member latency over %d samples p50 %v p99 %v, want 2 samples, 5 and 7 ms",
			r.AllSamples, r.P50AllMs, r.P99AllMs)
	}
	if math.Abs(r.P50Ms-1) > 0.02 || r.Sent != 3000 || !reflect.DeepEqual(r.Delivered, []uint64{3000, 2000, 4000}) {
		t.Errorf("own p50 %v sent %d delivered %v", r.P50Ms, r.Sent, r.Delivered)
	}
	evs[1].OwnHist = map[int]uint64{-1: 1}
	if _, err := summarize(evs, "total", 1000, "one"); !errors.Is(err, ErrMember) {
		t.Errorf("a bad histogram gave %v, want ErrMember", err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, 64)
	putHeader(b, kindData, 7, 2, 1<<40, 1234567890123)
	h, ok := parseHeader(b)
	if !ok || h != (header{kind: kindData, caseID: 7, rank: 2, seq: 1 << 40, sentUnixNs: 1234567890123}) {
		t.Errorf("header round trip gave %+v", h)
	}
	if _, ok := parseHeader(b[:headerBytes-1]); ok {
		t.Error("a short payload parsed")
	}
}

func TestMemberArgsRoundTrip(t *testing.T) {
	c := MemberConfig{ID: 3, Contacts: []group.Member{{ID: 1, Addr: "127.0.0.1:4000"}},
		Tuning: Tuning{Tick: 5 * time.Millisecond, SendWindowMax: 1024, StabilityTicks: 2}, CPUProfile: "/tmp/p"}
	got, err := ParseMemberArgs(c.Args())
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("round trip gave %+v, %v; want %+v", got, err, c)
	}
	for _, bad := range [][]string{
		{"--id", "0", "--bootstrap"},
		{"--id", "2"},
		{"--id", "2", "--bootstrap", "--contact", "1=a:1"},
		{"--id", "2", "--contact", "x"},
		{"--id", "2", "--bootstrap", "extra"},
		{"--id", "2", "--bootstrap", "--send-window", "-1"},
	} {
		if _, err := ParseMemberArgs(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("%q gave %v, want ErrConfig", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Sizes: []int{64}, Orders: []string{"total"}, Patterns: []string{"one"}, Duration: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"small size":  func(c *Config) { c.Sizes = []int{SizeBytesMin - 1} },
		"huge size":   func(c *Config) { c.Sizes = []int{SizeBytesMax + 1} },
		"order":       func(c *Config) { c.Orders = []string{"random"} },
		"pattern":     func(c *Config) { c.Patterns = []string{"two"} },
		"no duration": func(c *Config) { c.Duration = 0 },
		"no sizes":    func(c *Config) { c.Sizes = nil },
	} {
		c := ok
		mut(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
