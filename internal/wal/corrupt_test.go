package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/chorus-project/chorus/internal/vfs"
)

// location is where a record sits on disk.
type location struct {
	path string
	off  int64
	size int64
}

// buildLog writes n records (one batch each, or batches of batch records)
// with small segments on a new Mem, closes the log and returns the Mem,
// the records and where each one is.
func buildLog(t *testing.T, n, batch int) (*vfs.Mem, map[uint64]Record, map[uint64]location) {
	t.Helper()
	mem := vfs.NewMem()
	l, _ := mustOpen(t, smallOptions(mem, testDir))
	want := map[uint64]Record{}
	for i := 1; i <= n; i += batch {
		var recs []Record
		for k := i; k < i+batch && k <= n; k++ {
			recs = append(recs, testRecord(k))
			want[uint64(k)] = testRecord(k)
		}
		mustAppend(t, l, recs...)
	}
	locs := map[uint64]location{}
	l.mu.RLock()
	for _, s := range l.segs {
		for k, off := range s.offsets {
			end := s.size
			if k+1 < len(s.offsets) {
				end = int64(s.offsets[k+1])
			}
			locs[s.start+uint64(k)] = location{s.path, int64(off), end - int64(off)}
		}
	}
	l.mu.RUnlock()
	mustClose(t, l)
	return mem, want, locs
}

// zeroRange overwrites [off, off+n) of name with zeros.
func zeroRange(t *testing.T, mem *vfs.Mem, name string, off, n int64) {
	t.Helper()
	f, err := mem.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i, c := range b {
		if c != 0 {
			if err := mem.Corrupt(name, off+int64(i), c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCorruptionOfSyncedData flips one bit in every field of a synced
// record (and of a segment header) that later synced records follow: Open
// must fail with ErrCorrupt naming the file and the offset.
func TestCorruptionOfSyncedData(t *testing.T) {
	const n = 40
	_, _, locs := buildLog(t, n, 1)
	lastSeg := locs[n].path
	// A record in a middle segment and one in the last segment with
	// records after it.
	var mid uint64 = 10
	var inLast uint64
	for i := uint64(n); locs[i].path == lastSeg; i-- {
		inLast = i
	}
	if locs[mid].path == lastSeg || inLast == n {
		t.Fatalf("layout: record %d in %s, last segment %s starts at %d", mid, locs[mid].path, lastSeg, inLast)
	}
	fields := []struct {
		name string
		off  int64 // within the frame
	}{
		{"crc", 1}, {"length", 6}, {"length-high", 4}, {"type", 8}, {"index", 16}, {"index-high", 9},
		{"batch-position", 20}, {"data", frameHeaderBytes}, {"data-end", -1},
	}
	for _, idx := range []uint64{mid, inLast} {
		for _, f := range fields {
			for _, mask := range []byte{0x01, 0x80} {
				t.Run(fmt.Sprintf("record%d/%s/%02x", idx, f.name, mask), func(t *testing.T) {
					mem, _, locs := buildLog(t, n, 1)
					loc := locs[idx]
					off := f.off
					if off < 0 {
						off = loc.size - 1
					}
					if err := mem.Corrupt(loc.path, loc.off+off, mask); err != nil {
						t.Fatal(err)
					}
					_, _, err := Open(smallOptions(mem, testDir))
					want := fmt.Sprintf("%s offset %d", loc.path, loc.off)
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
						t.Fatalf("Open: %v\nwant ErrCorrupt naming %q", err, want)
					}
				})
			}
		}
	}
	for _, hoff := range []int64{0, 7, 9, 11, 12, 19, 20, 23} {
		for _, seg := range []string{locs[mid].path, lastSeg} {
			t.Run(fmt.Sprintf("header%d/%s", hoff, seg[len(testDir)+1:]), func(t *testing.T) {
				mem, _, _ := buildLog(t, n, 1)
				if err := mem.Corrupt(seg, hoff, 0x02); err != nil {
					t.Fatal(err)
				}
				_, _, err := Open(smallOptions(mem, testDir))
				want := fmt.Sprintf("%s offset 0", seg)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Open: %v\nwant ErrCorrupt naming %q", err, want)
				}
			})
		}
	}
}

// TestCorruptionInBatchFollowedByLaterBatch: a bad record inside a batch
// of several, with a later batch after it, is corruption even though
// records of its own batch follow it too.
func TestCorruptionInBatchFollowedByLaterBatch(t *testing.T) {
	mem, _, locs := buildLog(t, 12, 3) // batches 1-3, 4-6, 7-9, 10-12
	last := locs[12].path
	var victim uint64
	for i := uint64(12); i >= 1 && locs[i].path == last; i-- {
		if i%3 == 1 && i+3 <= 12 { // first record of a batch that a later batch follows
			victim = i
		}
	}
	if victim == 0 {
		t.Fatal("layout put no followed batch in the last segment")
	}
	zeroRange(t, mem, locs[victim].path, locs[victim].off, locs[victim].size)
	_, _, err := Open(smallOptions(mem, testDir))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

// TestTornTails: damage after the last good record that no later write
// follows is cut off, reported, and nothing before it is lost.
func TestTornTails(t *testing.T) {
	const n = 30
	for _, tc := range []struct {
		name string
		// damage returns the index of the first record lost (n+1 if none).
		damage func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64
	}{
		{"half-written last record", func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64 {
			truncateFile(t, mem, locs[n].path, locs[n].off+locs[n].size/2)
			return n
		}},
		{"header of last record only", func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64 {
			truncateFile(t, mem, locs[n].path, locs[n].off+10)
			return n
		}},
		{"garbage after the last record", func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64 {
			appendBytes(t, mem, locs[n].path, []byte("\x17\x00garbage that is not a frame at all..."))
			return n + 1
		}},
		{"zeros after the last record", func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64 {
			appendBytes(t, mem, locs[n].path, make([]byte, 4096))
			return n + 1
		}},
		{"bit flip in the last synced record (indistinguishable from a tear)", func(t *testing.T, mem *vfs.Mem, locs map[uint64]location) uint64 {
			if err := mem.Corrupt(locs[n].path, locs[n].off+frameHeaderBytes, 0x01); err != nil {
				t.Fatal(err)
			}
			return n
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, want, locs := buildLog(t, n, 1)
			lost := tc.damage(t, mem, locs)
			l, rec := mustOpen(t, smallOptions(mem, testDir))
			if rec.TornTail == nil {
				t.Fatalf("no torn tail reported: %+v", rec)
			}
			if rec.TornTail.FirstIndex != lost || rec.TornTail.Segment != locs[n].path {
				t.Fatalf("torn tail %+v, want first index %d in %s", rec.TornTail, lost, locs[n].path)
			}
			checkContents(t, l, 1, want, lost-1)
			// The log goes on from the cut, and the cut is durable.
			want[lost] = testRecord(5000)
			if got := mustAppend(t, l, want[lost]); got != lost {
				t.Fatalf("append after the cut got %d, want %d", got, lost)
			}
			mustClose(t, l)
			l, rec = mustOpen(t, smallOptions(mem.CrashClone(vfs.CrashConfig{}), testDir))
			if rec.TornTail != nil {
				t.Fatalf("second recovery found a torn tail again: %+v", rec.TornTail)
			}
			checkContents(t, l, 1, want, lost)
			mustClose(t, l)
		})
	}
}

// TestTornBatchWithHole: a disk may persist the sectors of one write out of
// order, leaving a hole before whole records of the same batch. That is a
// torn tail, not corruption: the records after the hole began at or before
// the hole's index.
func TestTornBatchWithHole(t *testing.T) {
	mem, want, locs := buildLog(t, 9, 3)
	hole := uint64(8) // batch 7-9: keep 7, lose 8, 9 intact after it
	if locs[7].path != locs[9].path {
		t.Fatal("layout split the batch")
	}
	zeroRange(t, mem, locs[hole].path, locs[hole].off, locs[hole].size)
	l, rec := mustOpen(t, smallOptions(mem, testDir))
	if rec.TornTail == nil || rec.TornTail.FirstIndex != hole || rec.TornTail.Offset != locs[hole].off {
		t.Fatalf("torn tail %+v, want one at index %d offset %d", rec.TornTail, hole, locs[hole].off)
	}
	checkContents(t, l, 1, want, hole-1)
	mustClose(t, l)
}

// TestSegmentGaps: a missing segment, or one under the wrong name, is
// corruption.
func TestSegmentGaps(t *testing.T) {
	_, _, locs := buildLog(t, 40, 1)
	var segs []string
	for i := uint64(1); i <= 40; i++ {
		if len(segs) == 0 || segs[len(segs)-1] != locs[i].path {
			segs = append(segs, locs[i].path)
		}
	}
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, have %v", segs)
	}
	for _, tc := range []struct {
		name string
		do   func(mem *vfs.Mem) error
	}{
		{"middle segment missing", func(mem *vfs.Mem) error { return mem.Remove(segs[1]) }},
		{"first segment missing", func(mem *vfs.Mem) error { return mem.Remove(segs[0]) }},
		{"segment renamed", func(mem *vfs.Mem) error { return mem.Rename(segs[1], segPath(testDir, 1000)) }},
		{"bad segment name", func(mem *vfs.Mem) error { return mem.Rename(segs[1], testDir+"/zz.wal") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, _, _ := buildLog(t, 40, 1)
			if err := tc.do(mem); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Open(smallOptions(mem, testDir)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

func truncateFile(t *testing.T, mem *vfs.Mem, name string, size int64) {
	t.Helper()
	f, err := mem.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func appendBytes(t *testing.T, mem *vfs.Mem, name string, b []byte) {
	t.Helper()
	f, err := mem.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// faultCase runs appenders against a log on mem until the fault armed by
// arm fails the log, then checks the failed state, and that every crash of
// the disk at that moment recovers every acknowledged record.
func faultCase(t *testing.T, arm func(mem *vfs.Mem), wantCause error) {
	t.Helper()
	mem := vfs.NewMem()
	l, _ := mustOpen(t, smallOptions(mem, testDir))
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, testRecord(i))
	}
	arm(mem)
	var mu sync.Mutex
	acked := map[uint64]Record{1: testRecord(1), 2: testRecord(2), 3: testRecord(3), 4: testRecord(4), 5: testRecord(5)}
	var wg sync.WaitGroup
	var failures int
	for a := range 4 {
		wg.Go(func() {
			for k := range 30 {
				r := testRecord(100*a + k + 10)
				idx, err := l.Append(context.Background(), r)
				mu.Lock()
				if err == nil {
					acked[idx] = r
				} else {
					failures++
					if !errors.Is(err, ErrFailed) || !errors.Is(err, wantCause) {
						t.Errorf("append failed with %v, want ErrFailed wrapping %v", err, wantCause)
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if failures == 0 {
		t.Fatal("the fault never fired")
	}
	if _, err := l.Append(context.Background(), testRecord(9999)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after failure: %v", err)
	}
	if _, err := l.Get(1); !errors.Is(err, ErrFailed) {
		t.Fatalf("Get after failure: %v", err)
	}
	if err := l.TruncateBack(1); !errors.Is(err, ErrFailed) {
		t.Fatalf("TruncateBack after failure: %v", err)
	}
	crashes := []*vfs.Mem{mem.CrashClone(vfs.CrashConfig{})}
	for seed := range uint64(8) {
		crashes = append(crashes, mem.CrashClone(vfs.CrashConfig{Rand: rand.New(rand.NewPCG(seed, 7))}))
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close of a failed log: %v", err)
	}
	for i, c := range crashes {
		c.SetCapacityBytes(0)
		l, _ := mustOpen(t, smallOptions(c, testDir))
		for idx, r := range acked {
			got, err := l.Get(idx)
			if err != nil || !sameRecord(got, r) {
				t.Fatalf("crash %d: acknowledged record %d: %v, {%d %q}", i, idx, err, got.Type, got.Data)
			}
		}
		// Anything else recovered is a record some appender sent.
		for idx := l.FirstIndex(); idx <= l.LastIndex(); idx++ {
			if _, ok := acked[idx]; ok {
				continue
			}
			got, err := l.Get(idx)
			if err != nil || !strings.HasPrefix(string(got.Data), "r") {
				t.Fatalf("crash %d: unacknowledged record %d: %v %q", i, idx, err, got.Data)
			}
		}
		next := l.LastIndex() + 1
		if got := mustAppend(t, l, testRecord(7)); got != next {
			t.Fatalf("crash %d: append after recovery got %d, want %d", i, got, next)
		}
		mustClose(t, l)
	}
}

func TestSyncFailure(t *testing.T) {
	faultCase(t, func(mem *vfs.Mem) {
		mem.InjectFault(vfs.Fault{Op: vfs.OpSync, Path: segmentSuffix, After: 6, Times: 1})
	}, vfs.ErrInjected)
}

func TestSyncDirFailure(t *testing.T) {
	faultCase(t, func(mem *vfs.Mem) {
		mem.InjectFault(vfs.Fault{Op: vfs.OpSyncDir, Path: testDir, After: 2, Times: 1})
	}, vfs.ErrInjected)
}

func TestTornWriteFailure(t *testing.T) {
	faultCase(t, func(mem *vfs.Mem) {
		mem.InjectFault(vfs.Fault{Op: vfs.OpWrite, Path: segmentSuffix, After: 7, Times: 1, TornBytes: 30})
	}, vfs.ErrInjected)
}

func TestNoSpace(t *testing.T) {
	faultCase(t, func(mem *vfs.Mem) {
		mem.SetCapacityBytes(mem.UsedBytes() + 3000)
	}, vfs.ErrNoSpace)
}

// TestNoSpaceReopenInPlace: after ENOSPC the same disk (no crash) reopens
// with every acknowledged record, and takes appends once there is room.
func TestNoSpaceReopenInPlace(t *testing.T) {
	mem := vfs.NewMem()
	l, _ := mustOpen(t, smallOptions(mem, testDir))
	mem.SetCapacityBytes(2000)
	acked := map[uint64]Record{}
	var err error
	for i := 1; err == nil; i++ {
		var idx uint64
		if idx, err = l.Append(context.Background(), testRecord(i)); err == nil {
			acked[idx] = testRecord(i)
		}
	}
	if !errors.Is(err, vfs.ErrNoSpace) || !errors.Is(err, ErrFailed) {
		t.Fatalf("append on a full disk: %v", err)
	}
	l.Close()
	l, _ = mustOpen(t, smallOptions(mem, testDir))
	last := uint64(len(acked))
	checkContents(t, l, 1, acked, last)
	mem.SetCapacityBytes(0)
	acked[last+1] = testRecord(77)
	mustAppend(t, l, acked[last+1])
	checkContents(t, l, 1, acked, last+1)
	mustClose(t, l)
}

// TestLaterWriteBudget: data crafted so that every offset passes the cheap
// tests and claims a long length runs the scan out of budget, and the
// scan then says "later write" (refuse to open), not "torn".
func TestLaterWriteBudget(t *testing.T) {
	const size = 4 << 20
	b := make([]byte, size)
	const expect = 1
	// Every 21 bytes a header whose index is plausible and whose length
	// claims all that is left, with a wrong checksum: without a budget the
	// scan would checksum ~size/21 * size/2 bytes (about 400 GB).
	for p := 2 * frameHeaderBytes; p+frameHeaderBytes <= size; p += frameHeaderBytes {
		binary.BigEndian.PutUint32(b[p+4:], uint32(size-p-frameHeaderBytes))
		binary.BigEndian.PutUint64(b[p+9:], expect+1)
	}
	at, found := laterWrite(b, 0, expect)
	if !found {
		t.Fatal("a scan of crafted frames with wrong checksums finished within budget and found nothing; the budget is not bounding it")
	}
	if _, _, problem := decodeFrame(b[at:]); problem == frameOK {
		t.Fatalf("offset %d decodes; the test data was meant to have no valid frame", at)
	}
	if passes := float64(at) / float64(size); passes > 0.5 {
		t.Fatalf("budget ran out at %d of %d bytes; expected it much earlier", at, size)
	}
}
