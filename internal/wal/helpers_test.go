package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-project/chorus/internal/vfs"
)

const testDir = "/data/wal"

// testRecord is the record a test appends as number i: its type and length
// vary with i, and its data says who it is, so a record read back can be
// checked on its own.
func testRecord(i int) Record {
	n := 1 + (i*37)%97
	data := make([]byte, n)
	for k := range data {
		data[k] = byte(i*131 + k*7)
	}
	copy(data, fmt.Sprintf("r%d.", i))
	return Record{Type: uint8(i % 5), Data: data}
}

func sameRecord(a, b Record) bool { return a.Type == b.Type && bytes.Equal(a.Data, b.Data) }

// smallOptions gives segments of a few records, so tests roll often.
func smallOptions(fs vfs.FS, dir string) Options {
	return Options{FS: fs, Dir: dir, SegmentBytesMax: 512, RecordBytesMax: 200, BatchBytesMax: 400}
}

func mustOpen(t testing.TB, opts Options) (*Log, Recovery) {
	t.Helper()
	l, rec, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, rec
}

func mustAppend(t testing.TB, l *Log, recs ...Record) uint64 {
	t.Helper()
	last, err := l.Append(context.Background(), recs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return last
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// checkContents fails unless l holds exactly want[first..last] (by index).
func checkContents(t testing.TB, l *Log, first uint64, want map[uint64]Record, last uint64) {
	t.Helper()
	if got := l.FirstIndex(); got != first {
		t.Fatalf("FirstIndex %d, want %d", got, first)
	}
	if got := l.LastIndex(); got != last {
		t.Fatalf("LastIndex %d, want %d", got, last)
	}
	for i := first; i <= last; i++ {
		r, err := l.Get(i)
		if err != nil {
			t.Fatalf("Get(%d): %v", i, err)
		}
		if w, ok := want[i]; !ok || !sameRecord(r, w) {
			t.Fatalf("Get(%d) = {%d %q}, want {%d %q}", i, r.Type, r.Data, w.Type, w.Data)
		}
	}
	if _, err := l.Get(last + 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Get(last+1=%d): %v, want ErrOutOfRange", last+1, err)
	}
	if first > 1 {
		if _, err := l.Get(first - 1); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Get(first-1=%d): %v, want ErrCompacted", first-1, err)
		}
	}
}

// segmentFiles lists the segment file names in dir.
func segmentFiles(t testing.TB, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if strings.HasSuffix(n, segmentSuffix) {
			segs = append(segs, n)
		}
	}
	return segs
}

func segPath(dir string, first uint64) string { return filepath.Join(dir, segmentName(first)) }
