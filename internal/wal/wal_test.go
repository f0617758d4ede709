package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/chorus-project/chorus/internal/vfs"
)

// onBothFS runs f on the host file system and on a Mem.
func onBothFS(t *testing.T, f func(t *testing.T, fsys vfs.FS, dir string)) {
	t.Run("os", func(t *testing.T) { f(t, vfs.OS, t.TempDir()) })
	t.Run("mem", func(t *testing.T) { f(t, vfs.NewMem(), testDir) })
}

func TestAppendGetReopen(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		opts := Options{FS: fsys, Dir: dir}
		l, rec := mustOpen(t, opts)
		if rec.FirstIndex != 1 || rec.LastIndex != 0 || rec.Segments != 0 || rec.TornTail != nil {
			t.Fatalf("new log: %+v", rec)
		}
		checkContents(t, l, 1, nil, 0)
		want := map[uint64]Record{}
		for i := 1; i <= 50; i++ {
			if got := mustAppend(t, l, testRecord(i)); got != uint64(i) {
				t.Fatalf("Append #%d returned index %d", i, got)
			}
			want[uint64(i)] = testRecord(i)
		}
		// Several records in one call get consecutive indexes.
		if got := mustAppend(t, l, testRecord(51), testRecord(52), Record{Type: 9}); got != 53 {
			t.Fatalf("Append of three returned %d, want 53", got)
		}
		want[51], want[52], want[53] = testRecord(51), testRecord(52), Record{Type: 9, Data: []byte{}}
		checkContents(t, l, 1, want, 53)
		mustClose(t, l)

		l, rec = mustOpen(t, opts)
		if rec.FirstIndex != 1 || rec.LastIndex != 53 || rec.Segments != 1 || rec.TornTail != nil || len(rec.Removed) != 0 {
			t.Fatalf("reopen: %+v", rec)
		}
		checkContents(t, l, 1, want, 53)
		if got := mustAppend(t, l, testRecord(54)); got != 54 {
			t.Fatalf("append after reopen got %d", got)
		}
		mustClose(t, l)
	})
}

func TestRollOver(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		opts := smallOptions(fsys, dir)
		l, _ := mustOpen(t, opts)
		want := map[uint64]Record{}
		for i := 1; i <= 60; i++ {
			mustAppend(t, l, testRecord(i))
			want[uint64(i)] = testRecord(i)
		}
		segs := segmentFiles(t, fsys, dir)
		if len(segs) < 5 {
			t.Fatalf("%d segments after 60 records in 512-byte segments: %v", len(segs), segs)
		}
		for _, name := range segs {
			size, err := fsys.Size(dir + "/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if size > opts.SegmentBytesMax {
				t.Errorf("%s has %d bytes, over SegmentBytesMax %d", name, size, opts.SegmentBytesMax)
			}
		}
		checkContents(t, l, 1, want, 60)
		mustClose(t, l)
		l, rec := mustOpen(t, opts)
		if rec.Segments != len(segs) {
			t.Fatalf("reopen found %d segments, want %d", rec.Segments, len(segs))
		}
		checkContents(t, l, 1, want, 60)
		mustClose(t, l)
	})
}

func TestTruncateFront(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		opts := smallOptions(fsys, dir)
		l, _ := mustOpen(t, opts)
		want := map[uint64]Record{}
		for i := 1; i <= 40; i++ {
			mustAppend(t, l, testRecord(i))
			want[uint64(i)] = testRecord(i)
		}
		before := len(segmentFiles(t, fsys, dir))

		// Inside a segment: whole segments below go, the rest is hidden.
		if err := l.TruncateFront(17); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 17, want, 40)
		if after := len(segmentFiles(t, fsys, dir)); after >= before {
			t.Fatalf("%d segments before TruncateFront(17), %d after", before, after)
		}
		// At or below the first index: nothing changes.
		if err := l.TruncateFront(3); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 17, want, 40)
		mustClose(t, l)
		l, rec := mustOpen(t, opts)
		if rec.FirstIndex != 17 || rec.LastIndex != 40 {
			t.Fatalf("reopen after TruncateFront(17): %+v", rec)
		}
		checkContents(t, l, 17, want, 40)

		// Exactly one past the end: the log is empty and goes on at 41.
		if err := l.TruncateFront(41); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 41, want, 40)
		if segs := segmentFiles(t, fsys, dir); len(segs) != 0 {
			t.Fatalf("segments left after truncating everything: %v", segs)
		}
		// Past the end: the next Append gets the index, durably.
		if err := l.TruncateFront(100); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 100, want, 99)
		mustClose(t, l)
		l, rec = mustOpen(t, opts)
		if rec.FirstIndex != 100 || rec.LastIndex != 99 {
			t.Fatalf("reopen of empty log truncated to 100: %+v", rec)
		}
		if got := mustAppend(t, l, testRecord(100)); got != 100 {
			t.Fatalf("first append after TruncateFront(100) got %d", got)
		}
		want[100] = testRecord(100)
		checkContents(t, l, 100, want, 100)
		mustClose(t, l)
		l, _ = mustOpen(t, opts)
		checkContents(t, l, 100, want, 100)
		mustClose(t, l)
		names, _ := fsys.List(dir)
		fronts := 0
		for _, n := range names {
			if strings.HasSuffix(n, frontSuffix) {
				fronts++
			}
		}
		if fronts != 1 {
			t.Fatalf("%d front markers left: %v", fronts, names)
		}
	})
}

func TestTruncateBack(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		opts := smallOptions(fsys, dir)
		l, _ := mustOpen(t, opts)
		want := map[uint64]Record{}
		for i := 1; i <= 40; i++ {
			mustAppend(t, l, testRecord(i))
			want[uint64(i)] = testRecord(i)
		}
		// Within the last segment, then across several.
		for _, to := range []uint64{39, 22} {
			if err := l.TruncateBack(to); err != nil {
				t.Fatal(err)
			}
			checkContents(t, l, 1, want, to)
		}
		// The next record takes the freed index, with new content.
		want[23] = testRecord(1000)
		if got := mustAppend(t, l, want[23]); got != 23 {
			t.Fatalf("append after TruncateBack(22) got %d", got)
		}
		checkContents(t, l, 1, want, 23)
		// At or above the end: nothing happens.
		if err := l.TruncateBack(23); err != nil {
			t.Fatal(err)
		}
		if err := l.TruncateBack(500); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 1, want, 23)
		mustClose(t, l)
		l, _ = mustOpen(t, opts)
		checkContents(t, l, 1, want, 23)

		// Below the first index is refused; first-1 empties the log.
		if err := l.TruncateFront(10); err != nil {
			t.Fatal(err)
		}
		if err := l.TruncateBack(8); !errors.Is(err, ErrCompacted) {
			t.Fatalf("TruncateBack below first: %v, want ErrCompacted", err)
		}
		if err := l.TruncateBack(9); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, 10, want, 9)
		want[10] = testRecord(2000)
		if got := mustAppend(t, l, want[10]); got != 10 {
			t.Fatalf("append to emptied log got %d", got)
		}
		mustClose(t, l)
		l, _ = mustOpen(t, opts)
		checkContents(t, l, 10, want, 10)
		mustClose(t, l)
	})
}

func TestOptionsValidation(t *testing.T) {
	mem := vfs.NewMem()
	good := Options{FS: mem, Dir: testDir}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"nil FS", func(o *Options) { o.FS = nil }},
		{"no dir", func(o *Options) { o.Dir = "" }},
		{"segment too small", func(o *Options) { o.SegmentBytesMax = 30 }},
		{"segment over the format limit", func(o *Options) { o.SegmentBytesMax = 2 << 30 }},
		{"batch over segment", func(o *Options) { o.SegmentBytesMax = 4096; o.BatchBytesMax = 4096 }},
		{"record over batch", func(o *Options) { o.BatchBytesMax = 1000; o.RecordBytesMax = 1000 }},
		{"negative record", func(o *Options) { o.RecordBytesMax = -1 }},
		{"negative queue", func(o *Options) { o.QueueRecordsMax = -1 }},
		{"queue below batch", func(o *Options) { o.BatchBytesMax = 1 << 20; o.QueueBytesMax = 1 << 10 }},
	} {
		o := good
		tc.mod(&o)
		if l, _, err := Open(o); !errors.Is(err, ErrInvalid) {
			if l != nil {
				l.Close()
			}
			t.Errorf("%s: Open: %v, want ErrInvalid", tc.name, err)
		}
	}
	l, _ := mustOpen(t, good)
	if l.opts.SegmentBytesMax != DefaultSegmentBytesMax || l.opts.RecordBytesMax != DefaultRecordBytesMax ||
		l.opts.BatchBytesMax != DefaultBatchBytesMax || l.opts.QueueRecordsMax != DefaultQueueRecordsMax ||
		l.opts.QueueBytesMax != DefaultQueueBytesMax {
		t.Fatalf("defaults: %+v", l.opts)
	}
	mustClose(t, l)
}

func TestAppendLimits(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{FS: mem, Dir: testDir, SegmentBytesMax: 4096, RecordBytesMax: 100, BatchBytesMax: 900, QueueRecordsMax: 8}
	l, _ := mustOpen(t, opts)
	defer mustClose(t, l)
	ctx := context.Background()
	if _, err := l.Append(ctx); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty Append: %v, want ErrInvalid", err)
	}
	if _, err := l.Append(ctx, Record{Data: make([]byte, 101)}); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("101-byte record: %v, want ErrRecordTooLarge", err)
	}
	if _, err := l.Append(ctx, Record{Data: make([]byte, 100)}); err != nil {
		t.Errorf("100-byte record: %v", err)
	}
	nine := make([]Record, 9)
	if _, err := l.Append(ctx, nine...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("9 records with QueueRecordsMax 8: %v, want ErrTooLarge", err)
	}
	big := make([]Record, 8)
	for i := range big {
		big[i].Data = make([]byte, 100) // 8 * 121 bytes > 900
	}
	if _, err := l.Append(ctx, big...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("968 bytes with BatchBytesMax 900: %v, want ErrTooLarge", err)
	}
	if l.LastIndex() != 1 {
		t.Fatalf("refused appends changed the log: last %d", l.LastIndex())
	}
}

func TestClosed(t *testing.T) {
	mem := vfs.NewMem()
	l, _ := mustOpen(t, Options{FS: mem, Dir: testDir})
	mustAppend(t, l, testRecord(1))
	mustClose(t, l)
	if _, err := l.Append(context.Background(), testRecord(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Get(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := l.TruncateFront(2); !errors.Is(err, ErrClosed) {
		t.Errorf("TruncateFront after Close: %v", err)
	}
	if err := l.TruncateBack(0); !errors.Is(err, ErrClosed) {
		t.Errorf("TruncateBack after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestLockExcludesSecondOpen(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l, _ := mustOpen(t, Options{FS: fsys, Dir: dir})
		if l2, _, err := Open(Options{FS: fsys, Dir: dir}); err == nil {
			l2.Close()
			t.Fatal("second Open of a locked directory succeeded")
		}
		mustClose(t, l)
		l, _ = mustOpen(t, Options{FS: fsys, Dir: dir})
		mustClose(t, l)
	})
}

// TestConcurrentAppends: appenders on many goroutines each see their own
// records get increasing indexes, no index is handed out twice, and the log
// holds exactly what was acknowledged, before and after a reopen.
func TestConcurrentAppends(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		opts := Options{FS: fsys, Dir: dir, SegmentBytesMax: 8192, RecordBytesMax: 200, BatchBytesMax: 2048, QueueRecordsMax: 16}
		l, _ := mustOpen(t, opts)
		const appenders, each = 8, 40
		var mu sync.Mutex
		got := map[uint64]Record{}
		var wg sync.WaitGroup
		for a := range appenders {
			wg.Go(func() {
				prev := uint64(0)
				for k := range each {
					r := testRecord(a*1000 + k)
					idx, err := l.Append(context.Background(), r)
					if err != nil {
						t.Error(err)
						return
					}
					if idx <= prev {
						t.Errorf("appender %d: index %d after %d", a, idx, prev)
					}
					prev = idx
					mu.Lock()
					if _, dup := got[idx]; dup {
						t.Errorf("index %d handed out twice", idx)
					}
					got[idx] = r
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		checkContents(t, l, 1, got, appenders*each)
		mustClose(t, l)
		l, _ = mustOpen(t, opts)
		checkContents(t, l, 1, got, appenders*each)
		mustClose(t, l)
	})
}

// blockSyncs makes every Sync of a segment on m wait until release is
// closed, and reports on started each time one begins to wait.
func blockSyncs(m *vfs.Mem) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 100), make(chan struct{})
	m.SetHook(func(op vfs.Op, path string) {
		if op == vfs.OpSync && strings.HasSuffix(path, segmentSuffix) {
			started <- struct{}{}
			<-release
		}
	})
	return started, release
}

// TestCancelWhileWaitingForSync: cancelling stops the wait, and the record,
// already queued, still becomes durable at the index it was given.
func TestCancelWhileWaitingForSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		l, _ := mustOpen(t, Options{FS: mem, Dir: testDir})
		mustAppend(t, l, testRecord(1))
		started, release := blockSyncs(mem)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := l.Append(ctx, testRecord(2))
			errc <- err
		}()
		<-started
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Append: %v", err)
		}
		if l.LastIndex() != 1 {
			t.Fatalf("record 2 visible before its sync: last %d", l.LastIndex())
		}
		close(release)
		// The next append waits behind record 2's batch: once it is back,
		// record 2 is durable.
		if got := mustAppend(t, l, testRecord(3)); got != 3 {
			t.Fatalf("append after the cancelled one got %d, want 3", got)
		}
		mem.SetHook(nil)
		checkContents(t, l, 1, map[uint64]Record{1: testRecord(1), 2: testRecord(2), 3: testRecord(3)}, 3)
		mustClose(t, l)
	})
}

// TestCancelWhileQueueFull: an appender waiting for queue space gives up
// when its ctx is done, and its record is never written.
func TestCancelWhileQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		l, _ := mustOpen(t, Options{FS: mem, Dir: testDir, QueueRecordsMax: 1})
		mustAppend(t, l, testRecord(1))
		started, release := blockSyncs(mem)
		done := make(chan error, 2)
		go func() { _, err := l.Append(context.Background(), testRecord(2)); done <- err }()
		<-started // record 2 is in the flusher, stuck in Sync
		go func() { _, err := l.Append(context.Background(), testRecord(3)); done <- err }()
		synctest.Wait() // record 3 fills the queue
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := l.Append(ctx, testRecord(99))
			errc <- err
		}()
		synctest.Wait() // record 99 waits for queue space
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Append waiting for space: %v", err)
		}
		close(release)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		mem.SetHook(nil)
		checkContents(t, l, 1, map[uint64]Record{1: testRecord(1), 2: testRecord(2), 3: testRecord(3)}, 3)
		mustClose(t, l)
	})
}

// TestCloseFlushesQueue: appends queued when Close is called are written
// and acknowledged, not dropped.
func TestCloseFlushesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		l, _ := mustOpen(t, Options{FS: mem, Dir: testDir})
		started, release := blockSyncs(mem)
		errs := make(chan error, 10)
		for i := 1; i <= 10; i++ {
			go func() { _, err := l.Append(context.Background(), testRecord(i)); errs <- err }()
		}
		<-started
		synctest.Wait()
		closed := make(chan error)
		go func() { closed <- l.Close() }()
		synctest.Wait()
		close(release)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := <-errs; err != nil {
				t.Fatalf("queued append failed at Close: %v", err)
			}
		}
		mem.SetHook(nil)
		l, _ = mustOpen(t, Options{FS: mem.CrashClone(vfs.CrashConfig{}), Dir: testDir})
		if l.LastIndex() != 10 {
			t.Fatalf("after Close and crash: last %d, want 10", l.LastIndex())
		}
		mustClose(t, l)
	})
}

// TestOpenSyncsWhatItFinds: records a crashed process left in the page cache
// (written, never synced) are served by Open only once they are durable.
func TestOpenSyncsWhatItFinds(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll(testDir); err != nil {
		t.Fatal(err)
	}
	b := appendSegmentHeader(nil, 1)
	for i := 1; i <= 3; i++ {
		r := testRecord(i)
		b = appendFrame(b, r.Type, uint64(i), uint32(i-1), r.Data)
	}
	f, err := mem.Create(segPath(testDir, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close() // no Sync, no SyncDir: a process that died here
	l, rec := mustOpen(t, Options{FS: mem, Dir: testDir})
	if rec.LastIndex != 3 {
		t.Fatalf("Open found %+v", rec)
	}
	mustClose(t, l)
	l, _ = mustOpen(t, Options{FS: mem.CrashClone(vfs.CrashConfig{}), Dir: testDir})
	checkContents(t, l, 1, map[uint64]Record{1: testRecord(1), 2: testRecord(2), 3: testRecord(3)}, 3)
	mustClose(t, l)
}

// TestGetDetectsRot: a record damaged after Open is an error, not data.
func TestGetDetectsRot(t *testing.T) {
	mem := vfs.NewMem()
	l, _ := mustOpen(t, Options{FS: mem, Dir: testDir})
	for i := 1; i <= 3; i++ {
		mustAppend(t, l, testRecord(i))
	}
	off := int64(l.segs[0].offsets[1]) + frameHeaderBytes + 2
	if err := mem.Corrupt(segPath(testDir, 1), off, 0x10); err != nil {
		t.Fatal(err)
	}
	if r, err := l.Get(2); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), segmentName(1)) {
		t.Fatalf("Get of a rotted record: %v (data %q), want ErrCorrupt naming the segment", err, r.Data)
	}
	if _, err := l.Get(3); err != nil {
		t.Fatalf("Get(3): %v", err)
	}
	mustClose(t, l)
}

func TestSnapshotRoundTrip(t *testing.T) {
	onBothFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		if err := fsys.MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		payload := []byte(strings.Repeat("snapshot payload ", 10000))
		err := WriteSnapshot(fsys, dir, "snap-1", func(w io.Writer) error {
			for p := payload; len(p) > 0; p = p[min(len(p), 777):] {
				if _, err := w.Write(p[:min(len(p), 777)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := ReadSnapshot(fsys, dir, "snap-1", func(r io.Reader) (err error) {
			got, err = io.ReadAll(r)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(payload) {
			t.Fatalf("read back %d bytes, wrote %d", len(got), len(payload))
		}
		// Empty payload.
		if err := WriteSnapshot(fsys, dir, "empty", func(io.Writer) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := ReadSnapshot(fsys, dir, "empty", func(r io.Reader) error {
			b, err := io.ReadAll(r)
			if len(b) != 0 {
				return fmt.Errorf("%d bytes from an empty snapshot", len(b))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// A failing writer leaves nothing behind.
		boom := errors.New("boom")
		if err := WriteSnapshot(fsys, dir, "failed", func(io.Writer) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("WriteSnapshot with a failing writer: %v", err)
		}
		if err := ReadSnapshot(fsys, dir, "failed", func(io.Reader) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("snapshot whose writer failed: %v, want ErrNotExist", err)
		}
		names, _ := fsys.List(dir)
		for _, n := range names {
			if strings.HasSuffix(n, snapshotTempSuffix) {
				t.Fatalf("temp file %s left", n)
			}
		}
		if err := WriteSnapshot(fsys, dir, "x"+snapshotTempSuffix, func(io.Writer) error { return nil }); !errors.Is(err, ErrInvalid) {
			t.Fatalf("snapshot named like a temp file: %v", err)
		}
	})
}

// TestSnapshotCorrupt: a flip in any byte of a snapshot is caught before the
// reader sees anything.
func TestSnapshotCorrupt(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll(testDir); err != nil {
		t.Fatal(err)
	}
	payload := []byte("0123456789abcdef")
	if err := WriteSnapshot(mem, testDir, "s", func(w io.Writer) error { _, err := w.Write(payload); return err }); err != nil {
		t.Fatal(err)
	}
	path := testDir + "/s"
	size, _ := mem.Size(path)
	for off := range size {
		if err := mem.Corrupt(path, off, 0x04); err != nil {
			t.Fatal(err)
		}
		called := false
		err := ReadSnapshot(mem, testDir, "s", func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, ErrCorrupt) || called {
			t.Fatalf("flip at offset %d: err %v, reader called %v", off, err, called)
		}
		if err := mem.Corrupt(path, off, 0x04); err != nil {
			t.Fatal(err)
		}
	}
	// Truncated file.
	f, _ := mem.OpenAppend(path)
	if err := f.Truncate(size - 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := ReadSnapshot(mem, testDir, "s", func(io.Reader) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated snapshot: %v", err)
	}
}

// TestSnapshotCrash crashes WriteSnapshot at every step: the name holds the
// old snapshot or the new one, whole, and the temp files go.
func TestSnapshotCrash(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll(testDir); err != nil {
		t.Fatal(err)
	}
	oldPayload, newPayload := []byte("old state"), []byte(strings.Repeat("new state ", 50))
	write := func(p []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(p); return err }
	}
	if err := WriteSnapshot(mem, testDir, "s", write(oldPayload)); err != nil {
		t.Fatal(err)
	}
	var clones []*vfs.Mem
	mem.SetHook(func(op vfs.Op, path string) {
		if op != vfs.OpRead {
			clones = append(clones, mem.CrashClone(vfs.CrashConfig{}))
		}
	})
	if err := WriteSnapshot(mem, testDir, "s", write(newPayload)); err != nil {
		t.Fatal(err)
	}
	mem.SetHook(nil)
	clones = append(clones, mem.CrashClone(vfs.CrashConfig{}))
	sawNew := false
	for i, c := range clones {
		if _, err := RemoveSnapshotTemps(c, testDir); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := ReadSnapshot(c, testDir, "s", func(r io.Reader) (err error) { got, err = io.ReadAll(r); return err }); err != nil {
			t.Fatalf("crash point %d: %v", i, err)
		}
		switch string(got) {
		case string(oldPayload):
		case string(newPayload):
			sawNew = true
		default:
			t.Fatalf("crash point %d: snapshot holds %q", i, got)
		}
		names, _ := c.List(testDir)
		for _, n := range names {
			if strings.HasSuffix(n, snapshotTempSuffix) {
				t.Fatalf("crash point %d: temp %s survived RemoveSnapshotTemps", i, n)
			}
		}
	}
	if !sawNew {
		t.Fatal("no crash point kept the new snapshot, not even the last")
	}
}

// TestQueueIsFirstComeFirstServed: an append too big for the room left
// waits, and later small appends queue behind it instead of starving it.
func TestQueueIsFirstComeFirstServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		l, _ := mustOpen(t, Options{FS: mem, Dir: testDir, QueueRecordsMax: 4})
		mustAppend(t, l, testRecord(1))
		started, release := blockSyncs(mem)
		type result struct {
			name string
			last uint64
		}
		results := make(chan result, 10)
		app := func(name string, recs ...Record) {
			go func() {
				last, err := l.Append(context.Background(), recs...)
				if err != nil {
					t.Error(err)
				}
				results <- result{name, last}
			}()
		}
		app("a", testRecord(2))
		<-started // a is in the flusher, stuck in Sync; the queue is empty
		for _, n := range []string{"q1", "q2", "q3"} {
			app(n, testRecord(3))
			synctest.Wait()
		}
		app("big", testRecord(4), testRecord(5), testRecord(6), testRecord(7)) // 3 queued + 4 > 4
		synctest.Wait()
		app("small", testRecord(8)) // would fit (3 + 1), but big came first
		synctest.Wait()
		close(release)
		got := map[string]uint64{}
		for range 6 {
			r := <-results
			got[r.name] = r.last
		}
		if got["small"] <= got["big"] {
			t.Errorf("small append got index %d, before the big one waiting ahead of it (%d): %v", got["small"], got["big"], got)
		}
		mem.SetHook(nil)
		mustClose(t, l)
	})
}

// TestOpenRemovesLeftovers: what an interrupted roll-over or TruncateFront
// leaves is removed, reported, and does not change the log.
func TestOpenRemovesLeftovers(t *testing.T) {
	mem := vfs.NewMem()
	opts := smallOptions(mem, testDir)
	l, _ := mustOpen(t, opts)
	want := map[uint64]Record{}
	for i := 1; i <= 30; i++ {
		mustAppend(t, l, testRecord(i))
		want[uint64(i)] = testRecord(i)
	}
	segs := segmentFiles(t, mem, testDir)
	mustClose(t, l)
	// A roll-over that died before its rename, and a TruncateFront(20)
	// that died after its marker was durable, before any removal, with an
	// older marker still there.
	for _, name := range []string{segmentName(31) + tempSuffix, frontName(20), frontName(5)} {
		f, err := mem.Create(testDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := mem.SyncDir(testDir); err != nil {
		t.Fatal(err)
	}
	l, rec := mustOpen(t, opts)
	if rec.FirstIndex != 20 || rec.LastIndex != 30 {
		t.Fatalf("recovered %+v, want [20, 30]", rec)
	}
	removed := strings.Join(rec.Removed, " ")
	for _, name := range []string{segmentName(31) + tempSuffix, frontName(5), segs[0]} {
		if !strings.Contains(removed, name) {
			t.Errorf("Removed %v lacks %s", rec.Removed, name)
		}
		if _, err := mem.Size(testDir + "/" + name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", name, err)
		}
	}
	checkContents(t, l, 20, want, 30)
	mustClose(t, l)
	// Nothing left to repair.
	l, rec = mustOpen(t, opts)
	if len(rec.Removed) != 0 || rec.TornTail != nil {
		t.Fatalf("second Open repaired again: %+v", rec)
	}
	mustClose(t, l)
}
