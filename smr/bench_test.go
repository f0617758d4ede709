package smr

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/vfs"
)

// countingFS is the OS file system, counting File.Sync and SyncDir calls so
// the benchmark can report fsyncs per committed command.
type countingFS struct {
	vfs.FS
	syncs *atomic.Int64
}

type countingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f countingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}

func (c countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{File: f, syncs: c.syncs}, nil
}

func (c countingFS) Create(name string) (vfs.File, error)     { return c.wrap(c.FS.Create(name)) }
func (c countingFS) OpenAppend(name string) (vfs.File, error) { return c.wrap(c.FS.OpenAppend(name)) }
func (c countingFS) SyncDir(dir string) error {
	c.syncs.Add(1)
	return c.FS.SyncDir(dir)
}

// BenchmarkPropose measures a three-member cluster in this process, on
// loopback TCP, with every member's WAL fsynced on the real disk (the
// benchmark's temp dir; check that it is not a tmpfs with
// `stat -f -c %T /tmp`). 256-byte commands, P concurrent proposers, each
// waiting for its command to be applied on the leader before the next.
// Reported: proposals/s, latency p50 and p99, and fsyncs (File.Sync and
// SyncDir, all three members together) per committed command.
func BenchmarkPropose(b *testing.B) {
	for _, proposers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			benchPropose(b, proposers)
		})
	}
}

func benchPropose(b *testing.B, proposers int) {
	var syncs atomic.Int64
	fsys := countingFS{FS: vfs.OS, syncs: &syncs}
	c := newCluster(b, 3, b.TempDir(), func(cfg *Config) {
		cfg.fs = fsys
		cfg.TickInterval = 10 * time.Millisecond
		cfg.SnapshotEntries = 0 // measure the log path alone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := c.propose(ctx, NewRequestID(), []byte("warm-up")); err != nil {
		b.Fatal(err)
	}
	cmd := make([]byte, 256)
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		wg        sync.WaitGroup
	)
	syncs.Store(0)
	b.ResetTimer()
	start := time.Now()
	for range proposers {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := c.propose(ctx, NewRequestID(), cmd); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "proposals/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(syncs.Load())/float64(len(latencies)), "fsyncs/cmd")
	b.ReportMetric(0, "ns/op") // proposals/s says it; ns/op of concurrent work misleads
}
