package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Cell identifies one workload setting across systems.
type Cell struct {
	Workload string
	Clients  int
}

// Comparison is the ratio of two systems' results on one cell.
type Comparison struct {
	Workload    string  `json:"workload"`
	Clients     int     `json:"clients"`
	Base        string  `json:"base"`      // the denominator system, e.g. "etcd"
	Other       string  `json:"other"`     // the numerator system, e.g. "chorus"
	OpsRatio    float64 `json:"ops_ratio"` // other ops/s / base ops/s
	P50Ratio    float64 `json:"p50_ratio"` // other p50 / base p50 (below 1: other is faster)
	P99Ratio    float64 `json:"p99_ratio"` // other p99 / base p99
	BaseOpsPerS float64 `json:"base_ops_per_s"`
	OtherOpsPer float64 `json:"other_ops_per_s"`
}

// Report is everything one invocation measured.
type Report struct {
	Command     string         `json:"command"`
	Host        string         `json:"host,omitempty"`
	Label       string         `json:"label,omitempty"`
	Settings    map[string]any `json:"settings"`
	Results     []Result       `json:"results"`
	Comparisons []Comparison   `json:"comparisons,omitempty"`
	Memory      []MemoryResult `json:"memory,omitempty"`
}

// MemoryResult is the memory mode's measurement of one system.
type MemoryResult struct {
	System     string         `json:"system"`
	Keys       int            `json:"keys"`
	ValueBytes int            `json:"value_bytes"`
	LoadS      float64        `json:"load_s"`
	SettleS    float64        `json:"settle_s"`
	Before     []MemberMemory `json:"before"`     // right before the load
	AfterLoad  []MemberMemory `json:"after_load"` // right after the last key was acknowledged
	After      []MemberMemory `json:"after"`      // SettleS seconds later (idle)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Compare pairs the results of other with those of base on every cell both
// measured, in the order of results.
func Compare(results []Result, base, other string) []Comparison {
	byCell := map[Cell]map[string]Result{}
	var order []Cell
	for _, r := range results {
		c := Cell{r.Workload, r.Clients}
		if byCell[c] == nil {
			byCell[c] = map[string]Result{}
			order = append(order, c)
		}
		byCell[c][r.System] = r
	}
	var out []Comparison
	for _, c := range order {
		b, okB := byCell[c][base]
		o, okO := byCell[c][other]
		if !okB || !okO {
			continue
		}
		out = append(out, Comparison{
			Workload: c.Workload, Clients: c.Clients, Base: base, Other: other,
			OpsRatio:    ratio(o.OpsPerSec, b.OpsPerSec),
			P50Ratio:    ratio(o.P50Ms, b.P50Ms),
			P99Ratio:    ratio(o.P99Ms, b.P99Ms),
			BaseOpsPerS: b.OpsPerSec, OtherOpsPer: o.OpsPerSec,
		})
	}
	return out
}

// WriteResults prints one line per result.
func WriteResults(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tworkload\tclients\tops/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tops\terrors\tserver cores\tloadgen cores\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%.2f\t%.2f\t\n",
			r.System, r.Workload, r.Clients, r.OpsPerSec, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.Ops, r.Errors, r.ServerCores, r.LoadgenCores)
	}
	return tw.Flush()
}

// WriteComparisons prints the side-by-side table with the ratios.
func WriteComparisons(w io.Writer, cs []Comparison, results []Result) error {
	if len(cs) == 0 {
		return nil
	}
	get := func(sys string, c Comparison) Result {
		for _, r := range results {
			if r.System == sys && r.Workload == c.Workload && r.Clients == c.Clients {
				return r
			}
		}
		return Result{}
	}
	base, other := cs[0].Base, cs[0].Other
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tclients\t%[1]s ops/s\t%[1]s p50 ms\t%[1]s p99 ms\t%[2]s ops/s\t%[2]s p50 ms\t%[2]s p99 ms\tops/s ratio\tp50 ratio\tp99 ratio\t\n", base, other)
	for _, c := range cs {
		b, o := get(base, c), get(other, c)
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.2fx\t%.2fx\t%.2fx\t\n",
			c.Workload, c.Clients, b.OpsPerSec, b.P50Ms, b.P99Ms, o.OpsPerSec, o.P50Ms, o.P99Ms, c.OpsRatio, c.P50Ratio, c.P99Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "ratios are %s / %s: ops/s above 1 and latency below 1 favour %s\n", other, base, other)
	return err
}

// WriteMemory prints one line per member.
func WriteMemory(w io.Writer, ms []MemoryResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tkeys\tmember\tpid\tRSS before MiB\tRSS after load MiB\tRSS settled MiB\tpeak RSS MiB\tdata dir MiB\t")
	mib := func(ms []MemberMemory, i int) float64 {
		if i < len(ms) {
			return float64(ms[i].RSSKiB) / 1024
		}
		return 0
	}
	for _, m := range ms {
		for i, a := range m.After {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", m.System, m.Keys, a.Member, a.PID,
				mib(m.Before, i), mib(m.AfterLoad, i), float64(a.RSSKiB)/1024, float64(a.HWMKiB)/1024, float64(a.DataKiB)/1024)
		}
	}
	return tw.Flush()
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
