package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chorus-project/chorus/internal/vfs"
)

// benchDir returns a fresh directory on a real disk: under
// $CHORUS_BENCH_DIR if set, else the test's temporary directory, which must
// not be tmpfs (fsync there is free, so the numbers would mean nothing).
func benchDir(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	if env := os.Getenv("CHORUS_BENCH_DIR"); env != "" {
		var err error
		if root, err = os.MkdirTemp(env, "walbench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(root) })
	}
	if onTmpfs(root) {
		b.Skipf("%s is on tmpfs, where fsync is free; set CHORUS_BENCH_DIR to a directory on a real disk", root)
	}
	return filepath.Join(root, "wal")
}

var benchSizes = []struct {
	name  string
	bytes int
}{{"128B", 128}, {"4KB", 4 << 10}}

// BenchmarkAppend measures group commit on the host file system: appenders
// goroutines each append one record at a time and wait for it to be
// durable. It reports records/s, MB/s of record data, and records per
// fsync (the batching that group commit achieves).
func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		for _, appenders := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("size=%s/appenders=%d", size.name, appenders), func(b *testing.B) {
				l, _, err := Open(Options{FS: vfs.OS, Dir: benchDir(b)})
				if err != nil {
					b.Fatal(err)
				}
				data := make([]byte, size.bytes)
				var next atomic.Int64
				var wg sync.WaitGroup
				b.SetBytes(int64(size.bytes))
				b.ReportAllocs()
				b.ResetTimer()
				for range appenders {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := l.Append(context.Background(), Record{Type: 1, Data: data}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(b.N)/float64(l.batches), "records/fsync")
			})
		}
	}
}

// BenchmarkBaselineFsyncPerRecord is what group commit is measured
// against: the same framed record written and fsynced one at a time.
func BenchmarkBaselineFsyncPerRecord(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("size="+size.name, func(b *testing.B) {
			dir := benchDir(b)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			f, err := vfs.OS.Create(filepath.Join(dir, segmentName(1)))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			data := make([]byte, size.bytes)
			buf := make([]byte, 0, frameBytes(size.bytes))
			b.SetBytes(int64(size.bytes))
			b.ResetTimer()
			for i := range b.N {
				buf = appendFrame(buf[:0], 1, uint64(i+1), 0, data)
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
