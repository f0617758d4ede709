package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vfs"
)

// benchDataDir returns a directory on a real disk ($CHORUS_BENCH_DIR, or the
// test's temporary directory), skipping on tmpfs where fsync is free.
func benchDataDir(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	if env := os.Getenv("CHORUS_BENCH_DIR"); env != "" {
		var err error
		if root, err = os.MkdirTemp(env, "nodebench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(root) })
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err == nil && st.Type == 0x01021994 {
		b.Skipf("%s is on tmpfs; set CHORUS_BENCH_DIR to a directory on a real disk", root)
	}
	return filepath.Join(root, "member")
}

// BenchmarkRecover measures the start-up of a member whose log holds
// entries entries of 256 bytes and no snapshot: OpenDisk (WAL recovery and
// replay) and paxos.New, the time a restarted member is down before it can
// take part again. Run with -benchtime=3x: the fill alone writes ~300 MB.
func BenchmarkRecover(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := benchDataDir(b)
			opts := DiskOptions{FS: vfs.OS, Dir: dir, Identity: testID}
			fill(b, opts, n)
			b.ResetTimer()
			var took time.Duration
			for range b.N {
				start := time.Now()
				d, rec, err := OpenDisk(opts)
				if err != nil {
					b.Fatal(err)
				}
				cfg := paxos.DefaultConfig(1, peer.MustSet(1, 2, 3), rand.New(rand.NewPCG(1, 2)))
				cfg.Snapshots = d
				if _, err := paxos.New(cfg, rec.Restored); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				if got := len(rec.Restored.Entries); got != n {
					b.Fatalf("recovered %d entries, want %d", got, n)
				}
				d.Close()
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/recovery")
			b.ReportMetric(float64(n)*float64(b.N)/took.Seconds(), "entries/s")
		})
	}
}

// fill writes n entries in Readys of 4096, as a busy leader would.
func fill(b *testing.B, opts DiskOptions, n int) {
	b.Helper()
	d, _, err := OpenDisk(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	data := make([]byte, 256)
	ballot := paxos.Ballot{Round: 1, Leader: 1}
	const perReady = 4096
	for from := 1; from <= n; from += perReady {
		to := min(n, from+perReady-1)
		es := make([]paxos.Entry, 0, to-from+1)
		for s := from; s <= to; s++ {
			es = append(es, paxos.Entry{Slot: uint64(s), Ballot: ballot, Type: paxos.EntryNormal, Data: data})
		}
		hs := paxos.HardState{Promised: ballot, Commit: uint64(to)}
		if err := d.Save(context.Background(), paxos.Ready{HardState: &hs, EntriesFrom: uint64(from), Entries: es}); err != nil {
			b.Fatal(fmt.Errorf("fill at slot %d: %w", from, err))
		}
	}
}
