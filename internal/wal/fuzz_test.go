package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chorus-project/chorus/internal/vfs"
)

// Fuzz input modes: how FuzzRecover lays the bytes out.
const (
	fuzzWholeSegment  = iota // the bytes are the whole of segment 1
	fuzzTail                 // the bytes follow a valid segment of three records
	fuzzSecondSegment        // the bytes are segment 4, after a valid segment 1-3
	fuzzModes
)

// fuzzPrefix is a valid segment holding records 1-3 (one batch of two, one
// of one).
func fuzzPrefix() []byte {
	b := appendSegmentHeader(nil, 1)
	b = appendFrame(b, 1, 1, 0, []byte("one"))
	b = appendFrame(b, 2, 2, 1, []byte("two, in the same batch"))
	return appendFrame(b, 3, 3, 0, nil)
}

// fuzzSeed is a seed input and what Open must make of it: "ok", "torn" or
// "corrupt".
type fuzzSeed struct {
	mode uint8
	data []byte
	want string
}

func fuzzSeeds() []fuzzSeed {
	valid := fuzzPrefix()
	torn := append(fuzzPrefix(), appendFrame(nil, 4, 4, 0, []byte("torn record"))[:15]...)
	corrupt := append([]byte{}, valid...)
	corrupt[segmentHeaderBytes+frameHeaderBytes] ^= 0x20 // record 1's data, records 2 and 3 after it
	// Record 4 damaged, then record 5 from a later batch (corruption) or
	// from the same batch (a torn write that left a hole).
	laterBatch := appendFrame(nil, 7, 4, 0, []byte("damaged"))
	laterBatch[0] ^= 0x01
	sameBatch := append(make([]byte, len(laterBatch)), appendFrame(nil, 7, 5, 1, []byte("same batch"))...)
	laterBatch = appendFrame(laterBatch, 7, 5, 0, []byte("later batch"))
	second := appendFrame(appendSegmentHeader(nil, 4), 0, 4, 0, []byte("four"))
	return []fuzzSeed{
		{fuzzWholeSegment, valid, "ok"},
		{fuzzWholeSegment, torn, "torn"},
		{fuzzWholeSegment, corrupt, "corrupt"},
		{fuzzWholeSegment, nil, "corrupt"},
		{fuzzWholeSegment, valid[:segmentHeaderBytes], "ok"},
		{fuzzTail, appendFrame(nil, 0, 4, 0, []byte("four")), "ok"},
		{fuzzTail, []byte("\x00\x00\x00\x00\x00\x00\x00\x05 junk that is no frame"), "torn"},
		{fuzzTail, make([]byte, 64), "torn"},
		{fuzzTail, laterBatch, "corrupt"},
		{fuzzTail, sameBatch, "torn"},
		{fuzzSecondSegment, second, "ok"},
		{fuzzSecondSegment, second[:segmentHeaderBytes+3], "torn"},
	}
}

// FuzzRecover opens a log whose segment file (or tail, or second segment)
// is arbitrary bytes. Open must not panic, must allocate no more than a
// small multiple of the input, and if it succeeds every record it serves
// must check out on disk independently of the package's decoder, the valid
// records before the fuzzed bytes must be intact, and a second Open must
// find the same log with nothing left to repair.
func FuzzRecover(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.mode, s.data)
	}
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		mode %= fuzzModes
		mem := vfs.NewMem()
		if err := mem.MkdirAll(testDir); err != nil {
			t.Fatal(err)
		}
		var intact uint64 // records 1..intact must survive
		switch mode {
		case fuzzWholeSegment:
			writeFile(t, mem, segPath(testDir, 1), data)
		case fuzzTail:
			writeFile(t, mem, segPath(testDir, 1), append(fuzzPrefix(), data...))
			intact = 3
		case fuzzSecondSegment:
			writeFile(t, mem, segPath(testDir, 1), fuzzPrefix())
			writeFile(t, mem, segPath(testDir, 4), data)
			intact = 3
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		opts := Options{FS: mem, Dir: testDir, SegmentBytesMax: 1 << 20, RecordBytesMax: 1 << 10, BatchBytesMax: 4 << 10}
		l, rec, err := Open(opts)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(16*len(data))+4<<20 {
			t.Fatalf("Open allocated %d bytes for %d bytes of input", alloc, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open failed with %v, not ErrCorrupt", err)
			}
			return
		}
		if rec.LastIndex < intact {
			l.Close()
			t.Fatalf("Open kept up to %d, the valid prefix goes to %d (%+v)", rec.LastIndex, intact, rec.TornTail)
		}
		got := checkServedRecords(t, mem, l)
		for i := uint64(1); i <= intact; i++ {
			want := []Record{{1, []byte("one")}, {2, []byte("two, in the same batch")}, {3, []byte{}}}[i-1]
			if !sameRecord(got[i], want) {
				t.Fatalf("valid record %d came back as {%d %q}", i, got[i].Type, got[i].Data)
			}
		}
		first, last := l.FirstIndex(), l.LastIndex()
		if _, err := l.Append(context.Background(), Record{Type: 1, Data: []byte("after")}); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, rec, err = Open(opts)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer l.Close()
		if rec.TornTail != nil || len(rec.Removed) != 0 || rec.FirstIndex != first || rec.LastIndex != last+1 {
			t.Fatalf("second Open found [%d, %d] and repaired %+v %v; the first left [%d, %d]",
				rec.FirstIndex, rec.LastIndex, rec.TornTail, rec.Removed, first, last)
		}
		checkServedRecords(t, mem, l)
	})
}

// checkServedRecords reads every record l serves, finds its frame in the
// file and checks the frame with a checksum computed here, not by the
// package's decoder.
func checkServedRecords(t *testing.T, mem *vfs.Mem, l *Log) map[uint64]Record {
	t.Helper()
	got := map[uint64]Record{}
	for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
		r, err := l.Get(i)
		if err != nil {
			t.Fatalf("Get(%d) in [%d, %d]: %v", i, l.FirstIndex(), l.LastIndex(), err)
		}
		got[i] = r
		l.mu.RLock()
		var path string
		var off int64
		for _, s := range l.segs {
			if s.start <= i && i <= s.lastIndex() {
				path, off = s.path, int64(s.offsets[i-s.start])
			}
		}
		l.mu.RUnlock()
		raw := readFile(t, mem, path)[off:]
		n := int(binary.BigEndian.Uint32(raw[4:]))
		crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		crc.Write(raw[21 : 21+n])
		crc.Write(raw[4:21])
		if crc.Sum32() != binary.BigEndian.Uint32(raw) || binary.BigEndian.Uint64(raw[9:]) != i ||
			raw[8] != r.Type || !bytes.Equal(raw[21:21+n], r.Data) {
			t.Fatalf("record %d served as {%d %q} does not check out on disk", i, r.Type, r.Data)
		}
	}
	return got
}

func writeFile(t *testing.T, mem *vfs.Mem, name string, data []byte) {
	t.Helper()
	f, err := mem.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := mem.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, mem *vfs.Mem, name string) []byte {
	t.Helper()
	f, err := mem.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && size > 0 {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeRecord feeds arbitrary bytes to the frame decoder and to the
// scan for a later write: no panic, and whatever decodes re-encodes to the
// same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendFrame(nil, 3, 42, 1, []byte("data")), uint64(41))
	f.Add(make([]byte, frameHeaderBytes), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(1))
	f.Fuzz(func(t *testing.T, data []byte, expect uint64) {
		fr, n, problem := decodeFrame(data)
		if problem == frameOK {
			if n > len(data) || n != frameHeaderBytes+len(fr.data) {
				t.Fatalf("decoded a %d-byte frame from %d bytes", n, len(data))
			}
			if out := appendFrame(nil, fr.typ, fr.index, fr.batchPos, fr.data); !bytes.Equal(out, data[:n]) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", data[:n], out)
			}
		}
		// Inputs are too small to exhaust the budget, so whatever the
		// scan reports must be a real frame.
		if p, ok := laterWrite(data, 0, expect); ok {
			if _, _, problem := decodeFrame(data[p:]); problem != frameOK || p == 0 {
				t.Fatalf("laterWrite found a frame at %d that does not decode", p)
			}
		}
	})
}

// TestRecoverSeeds: each seed recovers as its comment says, so the corpus
// covers the three outcomes.
func TestRecoverSeeds(t *testing.T) {
	for i, s := range fuzzSeeds() {
		mem := vfs.NewMem()
		if err := mem.MkdirAll(testDir); err != nil {
			t.Fatal(err)
		}
		switch s.mode {
		case fuzzWholeSegment:
			writeFile(t, mem, segPath(testDir, 1), s.data)
		case fuzzTail:
			writeFile(t, mem, segPath(testDir, 1), append(fuzzPrefix(), s.data...))
		case fuzzSecondSegment:
			writeFile(t, mem, segPath(testDir, 1), fuzzPrefix())
			writeFile(t, mem, segPath(testDir, 4), s.data)
		}
		l, rec, err := Open(Options{FS: mem, Dir: testDir})
		got := "ok"
		switch {
		case errors.Is(err, ErrCorrupt):
			got = "corrupt"
		case err != nil:
			t.Fatalf("seed %d: %v", i, err)
		case rec.TornTail != nil:
			got = "torn"
		}
		if l != nil {
			l.Close()
		}
		if got != s.want {
			t.Errorf("seed %d: %s, want %s (%v)", i, got, s.want, err)
		}
	}
}

var writeSeeds = flag.Bool("wal.writeseeds", false, "rewrite testdata/fuzz/FuzzRecover from fuzzSeeds")

// TestFuzzSeedCorpus writes (with -wal.writeseeds) or checks the committed
// seed corpus: it must hold exactly the seeds fuzzSeeds builds.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRecover")
	names := []string{"valid", "torn", "corrupt", "empty", "header-only", "tail-record", "tail-junk", "tail-zeros", "tail-later-batch", "tail-hole-same-batch", "second-segment", "second-segment-torn"}
	seeds := fuzzSeeds()
	if len(names) != len(seeds) {
		t.Fatalf("%d names for %d seeds", len(names), len(seeds))
	}
	for i, s := range seeds {
		content := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", rune(s.mode), s.data)
		path := filepath.Join(dir, names[i])
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("seed %s is missing or stale (%v); run go test -run TestFuzzSeedCorpus -wal.writeseeds", path, err)
		}
	}
}
