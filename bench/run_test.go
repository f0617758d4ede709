package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDriver is an in-memory system with a fixed service time per operation.
type fakeDriver struct {
	latency  time.Duration
	failEach int // every failEach-th operation fails (0: none)

	mu      sync.Mutex
	data    map[string][]byte
	writes  map[string]int // puts per key
	ops     atomic.Int64
	puts    atomic.Int64
	gets    atomic.Int64
	batches atomic.Int64
	batch   int // BatchMax
}

func newFake(latency time.Duration) *fakeDriver {
	return &fakeDriver{latency: latency, data: map[string][]byte{}, writes: map[string]int{}, batch: 50}
}

func (f *fakeDriver) Name() string { return "fake" }

func (f *fakeDriver) serve(ctx context.Context) error {
	n := f.ops.Add(1)
	// The service time stands in for a round trip; it is the system being
	// simulated, not a test waiting for a condition.
	t := time.NewTimer(f.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.failEach > 0 && n%int64(f.failEach) == 0 {
		return errors.New("fake: planned failure")
	}
	return nil
}

func (f *fakeDriver) Put(ctx context.Context, _ int, key, value []byte) error {
	if err := f.serve(ctx); err != nil {
		return err
	}
	f.puts.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[string(key)] = bytes.Clone(value)
	f.writes[string(key)]++
	return nil
}

func (f *fakeDriver) Get(ctx context.Context, _ int, key []byte) error {
	if err := f.serve(ctx); err != nil {
		return err
	}
	f.gets.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.data[string(key)]; !ok {
		return fmt.Errorf("fake get %q: %w", key, ErrNotFound)
	}
	return nil
}

func (f *fakeDriver) PutBatch(ctx context.Context, keys, values [][]byte) error {
	if len(keys) > f.batch {
		return fmt.Errorf("fake: batch of %d over %d", len(keys), f.batch)
	}
	f.batches.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range keys {
		f.data[string(keys[i])] = bytes.Clone(values[i])
		f.writes[string(keys[i])]++
	}
	return nil
}

func (f *fakeDriver) BatchMax() int { return f.batch }
func (f *fakeDriver) Close() error  { return nil }

// onlyDriver hides PutBatch, so Preload must fall back to single puts.
type onlyDriver struct{ d Driver }

func (o onlyDriver) Name() string { return o.d.Name() }
func (o onlyDriver) Put(ctx context.Context, w int, k, v []byte) error {
	return o.d.Put(ctx, w, k, v)
}
func (o onlyDriver) Get(ctx context.Context, w int, k []byte) error { return o.d.Get(ctx, w, k) }
func (o onlyDriver) Close() error                                   { return o.d.Close() }

func testWorkload(t *testing.T, kind string, clients int) Workload {
	t.Helper()
	keys, err := NewKeys(1000, 16)
	if err != nil {
		t.Fatal(err)
	}
	return Workload{Kind: kind, Clients: clients, Keys: keys, ValueBytes: 64,
		Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, OpTimeout: time.Second, Seed: 7}
}

// TestRunClosedLoop checks the closed loop's arithmetic against a system
// whose service time is known: N workers at latency L give about N/L ops/s
// with p50 near L, and only the measured window is counted.
func TestRunClosedLoop(t *testing.T) {
	f := newFake(2 * time.Millisecond)
	w := testWorkload(t, WorkloadPut, 8)
	r, err := Run(context.Background(), f, w)
	if err != nil {
		t.Fatal(err)
	}
	// Ideal: 8 / 2ms = 4000 ops/s. Timers oversleep on a loaded machine, so
	// allow down to a quarter; more than ideal would mean counting the warm-up.
	ideal := float64(w.Clients) / f.latency.Seconds()
	if r.OpsPerSec > ideal*1.05 || r.OpsPerSec < ideal/4 {
		t.Errorf("ops/s = %.0f, want about %.0f (never above)", r.OpsPerSec, ideal)
	}
	if r.P50Ms < 2 {
		t.Errorf("p50 = %.2f ms, below the 2 ms service time", r.P50Ms)
	}
	if total := f.ops.Load(); uint64(total) <= r.Ops {
		t.Errorf("recorded %d of %d operations: the warm-up was counted", r.Ops, total)
	}
	if r.Errors != 0 || r.System != "fake" || r.Workload != WorkloadPut || r.Clients != 8 {
		t.Errorf("result = %+v", r)
	}
	if f.gets.Load() != 0 {
		t.Errorf("put workload issued %d gets", f.gets.Load())
	}
}

func TestRunMixAndErrors(t *testing.T) {
	f := newFake(200 * time.Microsecond)
	w := testWorkload(t, WorkloadMix, 4)
	if err := Preload(context.Background(), f, w.Keys, w.ValueBytes, 3, nil); err != nil {
		t.Fatal(err)
	}
	f.failEach = 10
	r, err := Run(context.Background(), f, w)
	if err != nil {
		t.Fatal(err)
	}
	puts, gets := f.puts.Load(), f.gets.Load()
	if frac := float64(puts) / float64(puts+gets); frac < 0.4 || frac > 0.6 {
		t.Errorf("mix: %d puts and %d gets (put fraction %.2f, want about 0.5)", puts, gets, frac)
	}
	if r.Errors == 0 || len(r.ErrorFirst) == 0 || !strings.Contains(r.ErrorFirst[0], "planned failure") {
		t.Errorf("errors = %d %q, want the planned failures counted", r.Errors, r.ErrorFirst)
	}
	if frac := float64(r.Errors) / float64(r.Errors+r.Ops); frac < 0.05 || frac > 0.15 {
		t.Errorf("error fraction %.3f, want about 0.1", frac)
	}
}

// TestRunGetsMissWithoutPreload: a get of a key never written is an error,
// so an unpreloaded get run cannot pass as fast.
func TestRunGetsMissWithoutPreload(t *testing.T) {
	f := newFake(100 * time.Microsecond)
	r, err := Run(context.Background(), f, testWorkload(t, WorkloadGet, 2))
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 0 || r.Errors == 0 || !strings.Contains(r.ErrorFirst[0], ErrNotFound.Error()) {
		t.Fatalf("ops %d errors %d %q: want every get to miss", r.Ops, r.Errors, r.ErrorFirst)
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, newFake(time.Millisecond), testWorkload(t, WorkloadPut, 2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestPreloadWritesEveryKeyOnce(t *testing.T) {
	keys, err := NewKeys(1234, 16)
	if err != nil {
		t.Fatal(err)
	}
	for name, mk := range map[string]func(*fakeDriver) Driver{
		"batched": func(f *fakeDriver) Driver { return f },
		"single":  func(f *fakeDriver) Driver { return onlyDriver{f} },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(0)
			if err := Preload(context.Background(), mk(f), keys, 32, 5, nil); err != nil {
				t.Fatal(err)
			}
			if len(f.writes) != keys.N() {
				t.Fatalf("%d distinct keys written, want %d", len(f.writes), keys.N())
			}
			for k, n := range f.writes {
				if n != 1 || len(k) != 16 || len(f.data[k]) != 32 {
					t.Fatalf("key %q written %d times with %d bytes", k, n, len(f.data[k]))
				}
			}
			if name == "batched" && f.batches.Load() != int64((keys.N()+f.batch-1)/f.batch) {
				t.Errorf("%d batches, want %d", f.batches.Load(), (keys.N()+f.batch-1)/f.batch)
			}
		})
	}
}

func TestPreloadStopsOnError(t *testing.T) {
	keys, _ := NewKeys(500, 16)
	f := newFake(0)
	f.failEach = 3
	err := Preload(context.Background(), onlyDriver{f}, keys, 8, 2, nil)
	if err == nil || !strings.Contains(err.Error(), "planned failure") {
		t.Fatalf("Preload = %v, want the planned failure", err)
	}
}

func TestKeys(t *testing.T) {
	k, err := NewKeys(100000, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i    int
		want string
	}{{0, "k000000000000000"}, {7, "k000000000000007"}, {99999, "k000000000099999"}} {
		if got := string(k.Key(nil, c.i)); got != c.want {
			t.Errorf("Key(%d) = %q, want %q", c.i, got, c.want)
		}
	}
	for _, bad := range []struct{ n, bytes int }{{0, 16}, {1, 1}, {1001, 4}} {
		if _, err := NewKeys(bad.n, bad.bytes); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewKeys(%d, %d) = %v, want ErrBadConfig", bad.n, bad.bytes, err)
		}
	}
	if _, err := NewKeys(1000, 4); err != nil {
		t.Errorf("NewKeys(1000, 4) = %v: keys k000..k999 fit", err)
	}
}

func TestWorkloadValidate(t *testing.T) {
	good := testWorkload(t, WorkloadPut, 1)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Workload){
		"workload":    func(w *Workload) { w.Kind = "scan" },
		"clients":     func(w *Workload) { w.Clients = 0 },
		"value-bytes": func(w *Workload) { w.ValueBytes = 0 },
		"duration":    func(w *Workload) { w.Duration = 0 },
		"warmup":      func(w *Workload) { w.Warmup = -1 },
		"op-timeout":  func(w *Workload) { w.OpTimeout = 0 },
	} {
		w := good
		mut(&w)
		err := w.Validate()
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Validate = %v, want ErrBadConfig naming %q", name, err, name)
		}
	}
}

func TestCompare(t *testing.T) {
	rs := []Result{
		{System: "etcd", Workload: "put", Clients: 64, OpsPerSec: 1000, P50Ms: 10, P99Ms: 40},
		{System: "chorus", Workload: "put", Clients: 64, OpsPerSec: 5000, P50Ms: 2, P99Ms: 10},
		{System: "etcd", Workload: "get", Clients: 1, OpsPerSec: 100, P50Ms: 1, P99Ms: 2},
	}
	cs := Compare(rs, "etcd", "chorus")
	if len(cs) != 1 || cs[0].OpsRatio != 5 || cs[0].P50Ratio != 0.2 || cs[0].P99Ratio != 0.25 {
		t.Fatalf("Compare = %+v", cs)
	}
	var b bytes.Buffer
	if err := WriteComparisons(&b, cs, rs); err != nil || !strings.Contains(b.String(), "5.00x") {
		t.Fatalf("table %q, err %v", b.String(), err)
	}
}
