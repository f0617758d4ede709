package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names.
const (
	WorkloadPut = "put"
	WorkloadGet = "get"
	WorkloadMix = "mix" // 50 % puts, 50 % gets
)

// Limits on a run's settings.
const (
	clientsMax    = 4096
	valueBytesMax = 1 << 20
	durationMax   = time.Hour
	// errorSamplesMax is how many distinct error messages a Result keeps.
	errorSamplesMax = 5
)

// Workload is one cell of the benchmark: a kind of operation, a number of
// closed-loop clients and how long to measure.
type Workload struct {
	Kind       string        // WorkloadPut, WorkloadGet or WorkloadMix
	Clients    int           // concurrent closed-loop workers
	Keys       Keys          // key space, chosen uniformly
	ValueBytes int           // size of every put's value
	Warmup     time.Duration // run but do not record
	Duration   time.Duration // measured window after the warm-up
	OpTimeout  time.Duration // deadline of one operation
	Seed       uint64        // seeds the workers' key choice and values
}

// Validate checks every field and names the bad one.
func (w Workload) Validate() error {
	switch w.Kind {
	case WorkloadPut, WorkloadGet, WorkloadMix:
	default:
		return fmt.Errorf("%w: workload %q (want put, get or mix)", ErrBadConfig, w.Kind)
	}
	if w.Clients < 1 || w.Clients > clientsMax {
		return fmt.Errorf("%w: clients %d not in [1, %d]", ErrBadConfig, w.Clients, clientsMax)
	}
	if w.Keys.N() < 1 {
		return fmt.Errorf("%w: keys: empty key space", ErrBadConfig)
	}
	if w.ValueBytes < 1 || w.ValueBytes > valueBytesMax {
		return fmt.Errorf("%w: value-bytes %d not in [1, %d]", ErrBadConfig, w.ValueBytes, valueBytesMax)
	}
	if w.Warmup < 0 || w.Warmup > durationMax {
		return fmt.Errorf("%w: warmup %v not in [0, %v]", ErrBadConfig, w.Warmup, durationMax)
	}
	if w.Duration <= 0 || w.Duration > durationMax {
		return fmt.Errorf("%w: duration %v not in (0, %v]", ErrBadConfig, w.Duration, durationMax)
	}
	if w.OpTimeout <= 0 {
		return fmt.Errorf("%w: op-timeout %v must be positive", ErrBadConfig, w.OpTimeout)
	}
	return nil
}

// Result is the measurement of one workload against one system.
type Result struct {
	System    string  `json:"system"`
	Workload  string  `json:"workload"`
	Clients   int     `json:"clients"`
	Ops       uint64  `json:"ops"`    // operations completed inside the window
	Errors    uint64  `json:"errors"` // failed operations inside the window
	DurationS float64 `json:"duration_s"`
	OpsPerSec float64 `json:"ops_per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	MeanMs    float64 `json:"mean_ms"`
	// Cores used on average over the cell (warm-up and window): the servers
	// summed, and the load generator; 0 when not measured.
	ServerCores  float64    `json:"server_cores,omitempty"`
	LoadgenCores float64    `json:"loadgen_cores,omitempty"`
	ErrorFirst   []string   `json:"error_samples,omitempty"`
	Hist         *Histogram `json:"-"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// worker is one closed-loop client's private state: no sharing on the hot path.
type worker struct {
	id    int
	rng   *rand.Rand
	key   []byte
	value []byte
	hist  Histogram
	errs  uint64
	first []string
}

// Run drives d with w: Clients workers each issue their next operation as
// soon as the previous one returns. An operation is recorded when it starts
// after the warm-up and ends before the window closes; the throughput is the
// recorded count over the window. Operations still running when the window
// closes finish (bounded by OpTimeout) but are not counted. Run returns an
// error only for a bad workload or a cancelled ctx; failed operations are
// counted in Result.Errors.
func Run(ctx context.Context, d Driver, w Workload) (Result, error) {
	if err := w.Validate(); err != nil {
		return Result{}, err
	}
	workers := make([]*worker, w.Clients)
	for i := range workers {
		rng := rand.New(rand.NewPCG(w.Seed, uint64(i)+1))
		workers[i] = &worker{id: i, rng: rng, value: Value(rng, w.ValueBytes)}
	}
	var stop atomic.Bool
	start := time.Now()
	windowStart := start.Add(w.Warmup)
	windowEnd := windowStart.Add(w.Duration)
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk.loop(ctx, d, w, &stop, windowStart, windowEnd)
		}()
	}
	timer := time.NewTimer(time.Until(windowEnd))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	stop.Store(true)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("bench: run %s/%s/%d: %w", d.Name(), w.Kind, w.Clients, err)
	}
	res := Result{System: d.Name(), Workload: w.Kind, Clients: w.Clients, Hist: &Histogram{}}
	for _, wk := range workers {
		res.Hist.Merge(&wk.hist)
		res.Errors += wk.errs
		for _, e := range wk.first {
			if len(res.ErrorFirst) < errorSamplesMax {
				res.ErrorFirst = append(res.ErrorFirst, e)
			}
		}
	}
	res.fill(w.Duration)
	return res, nil
}

// fill derives the summary figures from the histogram.
func (r *Result) fill(window time.Duration) {
	h := r.Hist
	r.Ops = h.Count()
	r.DurationS = window.Seconds()
	r.OpsPerSec = float64(r.Ops) / window.Seconds()
	r.P50Ms = ms(h.mustQuantile(0.50))
	r.P99Ms = ms(h.mustQuantile(0.99))
	r.P999Ms = ms(h.mustQuantile(0.999))
	r.MaxMs = ms(h.Max())
	r.MeanMs = ms(h.Mean())
}

func (wk *worker) loop(ctx context.Context, d Driver, w Workload, stop *atomic.Bool, windowStart, windowEnd time.Time) {
	for !stop.Load() && ctx.Err() == nil {
		i := wk.rng.IntN(w.Keys.N())
		wk.key = w.Keys.Key(wk.key, i)
		put := w.Kind == WorkloadPut || (w.Kind == WorkloadMix && wk.rng.IntN(2) == 0)
		opCtx, cancel := context.WithTimeout(ctx, w.OpTimeout)
		t0 := time.Now()
		var err error
		if put {
			// Vary the value a little so no system can skip an identical write.
			wk.value[0] = byte('a' + i%26)
			err = d.Put(opCtx, wk.id, wk.key, wk.value)
		} else {
			err = d.Get(opCtx, wk.id, wk.key)
		}
		t1 := time.Now()
		cancel()
		if t0.Before(windowStart) || t1.After(windowEnd) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return
			}
			wk.errs++
			if len(wk.first) < errorSamplesMax {
				wk.first = append(wk.first, err.Error())
			}
			continue
		}
		wk.hist.Record(t1.Sub(t0))
	}
}

// preloadBatchMax bounds one preload batch whatever the driver says.
const preloadBatchMax = 1024

// Preload writes every key of keys once, with `parallel` concurrent requests,
// using PutBatch when d offers it. progress, if not nil, is called with the
// number of keys written so far, once per batch, from several goroutines.
func Preload(ctx context.Context, d Driver, keys Keys, valueBytes, parallel int, progress func(done int)) error {
	if parallel < 1 || parallel > clientsMax {
		return fmt.Errorf("%w: preload parallelism %d not in [1, %d]", ErrBadConfig, parallel, clientsMax)
	}
	if valueBytes < 1 || valueBytes > valueBytesMax {
		return fmt.Errorf("%w: value-bytes %d not in [1, %d]", ErrBadConfig, valueBytes, valueBytesMax)
	}
	batch := 1
	bp, ok := d.(BatchPutter)
	if ok {
		batch = min(max(bp.BatchMax(), 1), preloadBatchMax)
	}
	var next, done atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, parallel)
	var wg sync.WaitGroup
	for p := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 0x5eed))
			value := Value(rng, valueBytes)
			for ctx.Err() == nil {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= keys.N() {
					return
				}
				hi := min(lo+batch, keys.N())
				var err error
				if ok {
					ks := make([][]byte, 0, hi-lo)
					vs := make([][]byte, 0, hi-lo)
					for i := lo; i < hi; i++ {
						ks = append(ks, keys.Key(nil, i))
						vs = append(vs, value)
					}
					err = bp.PutBatch(ctx, ks, vs)
				} else {
					err = d.Put(ctx, p, keys.Key(nil, lo), value)
				}
				if err != nil {
					errc <- fmt.Errorf("bench: preload %s keys [%d, %d): %w", d.Name(), lo, hi, err)
					cancel()
					return
				}
				n := done.Add(int64(hi - lo))
				if progress != nil {
					progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}
