// Command loadgen runs the closed-loop benchmark against etcd, chorus, or
// both one after the other in one invocation, and prints a table and JSON.
//
//	loadgen --system etcd,chorus --clients 1,64,256 --workload put,get,mix --duration 10s
//	loadgen --system etcd --endpoints 127.0.0.1:23791 --clients 64 --workload put --duration 3s
//	loadgen --mode memory --system chorus --keys 1000000 --chorus-pid-dir /tmp/chorus-bench
//
// With several systems, every cell (workload, clients) runs on each system
// back to back, so the ratio compares runs a few seconds apart. Gets and the
// mix need the keys present: each system is preloaded once, before its first
// get or mix cell (--preload=false skips it when the keys are already there).
//
// Exit status: 0 when every cell ran without errors, 1 on a setup failure or
// when some operations failed (the table shows how many), 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chorus-project/chorus/bench"
)

type options struct {
	mode            string
	systems         []string
	endpoints       string
	etcdEndpoints   string
	chorusEndpoints string
	clients         []int
	workloads       []string
	duration        time.Duration
	warmup          time.Duration
	keys            int
	keyBytes        int
	valueBytes      int
	opTimeout       time.Duration
	etcdConns       int
	namespace       string
	preload         bool
	preloadParallel int
	pidDir          string
	etcdPIDDir      string
	chorusPIDDir    string
	jsonPath        string
	settle          time.Duration
	seed            uint64
	label           string
}

const (
	defaultEtcdEndpoints   = "127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793"
	defaultChorusEndpoints = "127.0.0.1:24791,127.0.0.1:24792,127.0.0.1:24793"
	exitUsage              = 2
)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, opts, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var systems, clients, workloads string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "bench", "bench (throughput and latency) or memory (load --keys keys, report each member's RSS)")
	fs.StringVar(&systems, "system", "etcd", "systems to drive, comma-separated: etcd, chorus (both: etcd,chorus; ratios are chorus/etcd)")
	fs.StringVar(&o.endpoints, "endpoints", "", "endpoints when one system is given (overrides --etcd-endpoints or --chorus-endpoints)")
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", defaultEtcdEndpoints, "etcd client endpoints (scripts/etcd-cluster.sh)")
	fs.StringVar(&o.chorusEndpoints, "chorus-endpoints", defaultChorusEndpoints, "chorus HTTP endpoints (scripts/chorus-cluster.sh)")
	fs.StringVar(&clients, "clients", "1,64,256", "concurrent closed-loop clients, comma-separated")
	fs.StringVar(&workloads, "workload", "put,get,mix", "workloads, comma-separated: put, get (linearizable), mix (50/50)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per cell")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each cell's window")
	fs.IntVar(&o.keys, "keys", 100000, "key space size (uniform random keys); in memory mode, keys loaded")
	fs.IntVar(&o.keyBytes, "key-bytes", 16, "bytes per key")
	fs.IntVar(&o.valueBytes, "value-bytes", 256, "bytes per value")
	fs.DurationVar(&o.opTimeout, "op-timeout", 10*time.Second, "deadline of one operation")
	fs.IntVar(&o.etcdConns, "etcd-conns", 4, "clientv3 clients shared by the etcd workers (worker i uses client i mod N)")
	fs.StringVar(&o.namespace, "namespace", "bench", "chorus namespace (created as paxos if absent)")
	fs.BoolVar(&o.preload, "preload", true, "write every key once before a system's first get or mix cell")
	fs.IntVar(&o.preloadParallel, "preload-parallel", 8, "concurrent batched requests while preloading")
	fs.StringVar(&o.pidDir, "pid-dir", "", "one system: the cluster script's DIR (holds m1.pid...); memory mode reads RSS there, bench mode CPU use")
	fs.StringVar(&o.etcdPIDDir, "etcd-pid-dir", "", "etcd cluster directory (etcd-cluster.sh DIR): RSS in memory mode, CPU use in bench mode")
	fs.StringVar(&o.chorusPIDDir, "chorus-pid-dir", "", "chorus cluster directory (chorus-cluster.sh DIR): RSS in memory mode, CPU use in bench mode")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "memory mode: idle wait after the load before the settled RSS reading")
	fs.StringVar(&o.jsonPath, "json", "", "write the JSON report to this file (default: print it after the table)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workers' key choice")
	fs.StringVar(&o.label, "label", "", "free text stored in the JSON report (compare.sh: versions and load average)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.mode != "bench" && o.mode != "memory" {
		return o, fmt.Errorf("--mode %q: want bench or memory", o.mode)
	}
	o.systems = bench.SplitList(systems)
	if len(o.systems) == 0 {
		return o, fmt.Errorf("--system: empty")
	}
	for _, s := range o.systems {
		if s != "etcd" && s != "chorus" {
			return o, fmt.Errorf("--system %q: want etcd or chorus", s)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(o.systems)))) != len(o.systems) {
		return o, fmt.Errorf("--system %q: a system is listed twice", systems)
	}
	if o.endpoints != "" {
		if len(o.systems) != 1 {
			return o, fmt.Errorf("--endpoints needs exactly one --system; use --etcd-endpoints and --chorus-endpoints")
		}
		if o.systems[0] == "etcd" {
			o.etcdEndpoints = o.endpoints
		} else {
			o.chorusEndpoints = o.endpoints
		}
	}
	if o.pidDir != "" {
		if len(o.systems) != 1 {
			return o, fmt.Errorf("--pid-dir needs exactly one --system; use --etcd-pid-dir and --chorus-pid-dir")
		}
		if o.systems[0] == "etcd" {
			o.etcdPIDDir = o.pidDir
		} else {
			o.chorusPIDDir = o.pidDir
		}
	}
	for _, c := range bench.SplitList(clients) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return o, fmt.Errorf("--clients %q: %q is not a positive integer", clients, c)
		}
		o.clients = append(o.clients, n)
	}
	if len(o.clients) == 0 {
		return o, fmt.Errorf("--clients: empty")
	}
	o.workloads = bench.SplitList(workloads)
	if len(o.workloads) == 0 {
		return o, fmt.Errorf("--workload: empty")
	}
	for _, w := range o.workloads {
		if w != bench.WorkloadPut && w != bench.WorkloadGet && w != bench.WorkloadMix {
			return o, fmt.Errorf("--workload %q: want put, get or mix", w)
		}
	}
	if _, err := bench.NewKeys(o.keys, o.keyBytes); err != nil {
		return o, fmt.Errorf("--keys/--key-bytes: %w", err)
	}
	if o.settle < 0 || o.settle > time.Hour {
		return o, fmt.Errorf("--settle %v not in [0, 1h]", o.settle)
	}
	if o.mode == "memory" {
		for _, s := range o.systems {
			if s == "etcd" && o.etcdPIDDir == "" || s == "chorus" && o.chorusPIDDir == "" {
				return o, fmt.Errorf("--mode memory: --%s-pid-dir (or --pid-dir) is required", s)
			}
		}
	}
	// The remaining fields are checked by bench.Workload.Validate with the
	// flag's name in the message; check them here too so a bad flag fails
	// before any connection is made.
	k, _ := bench.NewKeys(o.keys, o.keyBytes)
	for _, c := range o.clients {
		w := bench.Workload{Kind: bench.WorkloadPut, Clients: c, Keys: k, ValueBytes: o.valueBytes,
			Warmup: o.warmup, Duration: o.duration, OpTimeout: o.opTimeout}
		if err := w.Validate(); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o options) connect(ctx context.Context, system string) (bench.Driver, error) {
	switch system {
	case "etcd":
		return bench.NewEtcd(ctx, bench.EtcdConfig{Endpoints: bench.SplitList(o.etcdEndpoints), Conns: o.etcdConns})
	case "chorus":
		return bench.NewChorus(ctx, bench.ChorusConfig{Endpoints: bench.SplitList(o.chorusEndpoints),
			Namespace: o.namespace, Mode: "paxos", Timeout: o.opTimeout})
	}
	return nil, fmt.Errorf("%w: system %q", bench.ErrBadConfig, system)
}

func (o options) settings() map[string]any {
	return map[string]any{
		"mode": o.mode, "systems": o.systems, "clients": o.clients, "workloads": o.workloads,
		"duration_s": o.duration.Seconds(), "warmup_s": o.warmup.Seconds(), "keys": o.keys,
		"key_bytes": o.keyBytes, "value_bytes": o.valueBytes, "etcd_conns": o.etcdConns,
		"etcd_endpoints": o.etcdEndpoints, "chorus_endpoints": o.chorusEndpoints, "seed": o.seed,
	}
}

// run executes the invocation; ok is false when some operations failed.
func run(ctx context.Context, o options, stdout, stderr io.Writer) (ok bool, err error) {
	rep := bench.Report{Command: "loadgen " + strings.Join(os.Args[1:], " "), Label: o.label, Settings: o.settings()}
	rep.Host, _ = os.Hostname()
	drivers := map[string]bench.Driver{}
	defer func() {
		for _, d := range drivers {
			d.Close()
		}
	}()
	for _, s := range o.systems {
		d, err := o.connect(ctx, s)
		if err != nil {
			return false, err
		}
		drivers[s] = d
	}
	keys, err := bench.NewKeys(o.keys, o.keyBytes)
	if err != nil {
		return false, err
	}
	ok = true
	if o.mode == "memory" {
		for _, s := range o.systems {
			dir := o.etcdPIDDir
			if s == "chorus" {
				dir = o.chorusPIDDir
			}
			m, err := memory(ctx, o, drivers[s], keys, dir, stderr)
			if err != nil {
				return false, err
			}
			rep.Memory = append(rep.Memory, m)
		}
		if err := bench.WriteMemory(stdout, rep.Memory); err != nil {
			return false, err
		}
		return ok, writeJSON(o, rep, stdout)
	}
	// CPU meters, for the systems whose pid directory was given.
	meters := map[string]*bench.CPUMeter{}
	for _, s := range o.systems {
		dir := o.etcdPIDDir
		if s == "chorus" {
			dir = o.chorusPIDDir
		}
		if dir == "" {
			meters[s] = bench.NewCPUMeter(nil)
			continue
		}
		ms, err := bench.PIDFiles(dir)
		if err != nil {
			return false, err
		}
		var pids []int
		for _, m := range ms {
			pids = append(pids, m.PID)
		}
		meters[s] = bench.NewCPUMeter(pids)
	}
	preloaded := map[string]bool{}
	for _, wl := range o.workloads {
		for _, c := range o.clients {
			for _, s := range o.systems {
				d := drivers[s]
				if wl != bench.WorkloadPut && o.preload && !preloaded[s] {
					if err := preload(ctx, o, d, keys, stderr); err != nil {
						return false, err
					}
					preloaded[s] = true
				}
				w := bench.Workload{Kind: wl, Clients: c, Keys: keys, ValueBytes: o.valueBytes,
					Warmup: o.warmup, Duration: o.duration, OpTimeout: o.opTimeout, Seed: o.seed}
				fmt.Fprintf(stderr, "loadgen: %s %s clients=%d: %v warm-up, %v measured\n", s, wl, c, o.warmup, o.duration)
				if err := meters[s].Start(); err != nil {
					return false, err
				}
				r, err := bench.Run(ctx, d, w)
				if err != nil {
					return false, err
				}
				if r.ServerCores, r.LoadgenCores, err = meters[s].Stop(); err != nil {
					return false, err
				}
				fmt.Fprintf(stderr, "loadgen: %s %s clients=%d: %.0f ops/s p50 %.2f ms p99 %.2f ms errors %d\n",
					s, wl, c, r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors)
				for _, e := range r.ErrorFirst {
					fmt.Fprintf(stderr, "loadgen:   error: %s\n", e)
				}
				if r.Errors > 0 {
					ok = false
				}
				rep.Results = append(rep.Results, r)
			}
		}
	}
	if err := bench.WriteResults(stdout, rep.Results); err != nil {
		return false, err
	}
	if slices.Contains(o.systems, "etcd") && slices.Contains(o.systems, "chorus") {
		rep.Comparisons = bench.Compare(rep.Results, "etcd", "chorus")
		fmt.Fprintln(stdout)
		if err := bench.WriteComparisons(stdout, rep.Comparisons, rep.Results); err != nil {
			return false, err
		}
	}
	return ok, writeJSON(o, rep, stdout)
}

func preload(ctx context.Context, o options, d bench.Driver, keys bench.Keys, stderr io.Writer) error {
	t0 := time.Now()
	fmt.Fprintf(stderr, "loadgen: %s: preloading %d keys of %d bytes\n", d.Name(), keys.N(), o.valueBytes)
	if err := bench.Preload(ctx, d, keys, o.valueBytes, o.preloadParallel, nil); err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(stderr, "loadgen: %s: preloaded in %.1f s (%.0f keys/s)\n", d.Name(), el.Seconds(), float64(keys.N())/el.Seconds())
	return nil
}

func memory(ctx context.Context, o options, d bench.Driver, keys bench.Keys, dir string, stderr io.Writer) (bench.MemoryResult, error) {
	m := bench.MemoryResult{System: d.Name(), Keys: keys.N(), ValueBytes: o.valueBytes}
	before, err := bench.PIDFiles(dir)
	if err != nil {
		return m, err
	}
	if err := bench.ReadRSS(before); err != nil {
		return m, err
	}
	t0 := time.Now()
	fmt.Fprintf(stderr, "loadgen: %s: loading %d keys of %d bytes\n", d.Name(), keys.N(), o.valueBytes)
	step := max(keys.N()/10, 1)
	err = bench.Preload(ctx, d, keys, o.valueBytes, o.preloadParallel, func(done int) {
		// Called once per batch (at most 128 keys) from several goroutines:
		// print when a batch ends within the first 128 keys past a 10 % step.
		if done%step < 128 {
			fmt.Fprintf(stderr, "loadgen: %s: %d keys after %.0f s\n", d.Name(), done, time.Since(t0).Seconds())
		}
	})
	if err != nil {
		return m, err
	}
	m.LoadS = time.Since(t0).Seconds()
	afterLoad, err := bench.PIDFiles(dir)
	if err != nil {
		return m, err
	}
	if err := bench.ReadRSS(afterLoad); err != nil {
		return m, err
	}
	// Both systems are Go programs: right after a load their heaps hold
	// garbage and freed spans not yet returned to the OS. Wait idle so the
	// settled figure is the steady state an operator would see.
	fmt.Fprintf(stderr, "loadgen: %s: loaded in %.1f s; settling %v before reading RSS again\n", d.Name(), m.LoadS, o.settle)
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	m.SettleS = o.settle.Seconds()
	after, err := bench.PIDFiles(dir)
	if err != nil {
		return m, err
	}
	if err := bench.ReadRSS(after); err != nil {
		return m, err
	}
	for i := range after {
		after[i].DataKiB = bench.DirKiB(filepath.Join(dir, after[i].Member))
	}
	m.Before, m.AfterLoad, m.After = before, afterLoad, after
	return m, nil
}

func writeJSON(o options, rep bench.Report, stdout io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	b = append(b, '\n')
	if o.jsonPath == "" {
		fmt.Fprintln(stdout)
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
		return fmt.Errorf("write --json: %w", err)
	}
	return nil
}
