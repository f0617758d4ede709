package group

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/chorus-project/chorus/internal/vsync"
)

// Work split by rank (issue 4): a replicated data set, a query delivered in
// total order, each member evaluating the items of its rank (i % N ==
// rank) and the querier merging the parts. The members of a group are N
// Hosts in this one process, on loopback: the CPU-bound case therefore
// shares this machine's cores among them (2 here, which caps its
// speed-up at about 2), and the I/O-bound case shares one disk.

type splitKind uint8

const (
	splitCPU splitKind = iota // splitCPURounds SHA-256 rounds per item
	splitIO                   // one 4 KiB O_DIRECT read per item
)

func (k splitKind) String() string {
	if k == splitCPU {
		return "cpu"
	}
	return "io"
}

const (
	// splitCPUItems is the CPU-bound data set: about 0.2 s of SHA-256 for
	// one member on this machine.
	splitCPUItems  = 50_000
	splitCPURounds = 16
	// splitIOItems is smaller than the CPU set: a 4 KiB O_DIRECT read
	// costs about 45 µs here, so 50,000 would take over 2 s per query at
	// N=1 and the benchmark minutes.
	splitIOItems = 10_000
	// splitFileBytes is the file the I/O-bound items read from: large
	// enough that the random pages are spread over the disk.
	splitFileBytes = 256 << 20
	splitPageBytes = 4096
	// splitBatchItems is how many items one Total message carries while
	// the data set is loaded.
	splitBatchItems = 1024
	// splitReplyBytes: rank, size, items held, items evaluated, result.
	splitReplyBytes = 5 * 8
)

// splitFile is the file of the I/O-bound query, opened by every member.
type splitFile struct {
	path   string
	direct bool // O_DIRECT accepted; otherwise reads may hit the page cache
}

// newSplitFile writes splitFileBytes of pseudo-random data (real blocks,
// not a sparse file whose holes would read without I/O) and syncs it.
func newSplitFile(tb testing.TB) *splitFile {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "split.dat")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for range splitFileBytes / len(buf) {
		for j := 0; j < len(buf); j += 8 {
			binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
		}
		if _, err := f.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
	sf := &splitFile{path: p, direct: true}
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		// tmpfs and some other file systems refuse O_DIRECT: fall back to
		// buffered reads, which the page cache serves (the file was just
		// written), so the figures are then memory-bound, not disk-bound.
		sf.direct = false
		tb.Logf("split: O_DIRECT refused on %s (%v): buffered reads, served by the page cache", p, err)
	} else {
		syscall.Close(fd)
	}
	return sf
}

// reader is one member's handle on the file, with an aligned buffer (O_DIRECT
// needs the buffer, offset and length aligned to the logical block size).
type splitReader struct {
	fd  int
	buf []byte
}

func (sf *splitFile) open() (*splitReader, error) {
	flags := syscall.O_RDONLY
	if sf.direct {
		flags |= syscall.O_DIRECT
	}
	fd, err := syscall.Open(sf.path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("split: open %s: %w", sf.path, err)
	}
	return &splitReader{fd: fd, buf: alignedBuffer(splitPageBytes)}, nil
}

func (r *splitReader) close() { syscall.Close(r.fd) }

func alignedBuffer(n int) []byte {
	b := make([]byte, n+splitPageBytes)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (splitPageBytes - 1))
	if off != 0 {
		off = splitPageBytes - off
	}
	return b[off : off+n]
}

// readPage reads the page item names and returns its CRC-32C.
func (r *splitReader) readPage(item uint64) (uint64, error) {
	off := int64(item%(splitFileBytes/splitPageBytes)) * splitPageBytes
	n, err := syscall.Pread(r.fd, r.buf, off)
	if err != nil {
		return 0, fmt.Errorf("split: pread at %d: %w", off, err)
	}
	if n != len(r.buf) {
		return 0, fmt.Errorf("split: pread at %d: %d bytes", off, n)
	}
	return uint64(crc32.Checksum(r.buf, castagnoli)), nil
}

func cpuItem(x uint64) uint64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], x)
	h := sha256.Sum256(b[:])
	for range splitCPURounds - 1 {
		h = sha256.Sum256(h[:])
	}
	return binary.BigEndian.Uint64(h[:8])
}

// evalShare evaluates the items of rank's share (i % size == rank) and
// returns the sum of their values (wrapping: the merge of the parts is
// their sum, whatever the split) and how many it evaluated.
func evalShare(kind splitKind, rd *splitReader, items []uint64, rank, size int) (sum uint64, n int, err error) {
	for i := rank; i < len(items); i += size {
		var v uint64
		if kind == splitCPU {
			v = cpuItem(items[i])
		} else if v, err = rd.readPage(items[i]); err != nil {
			return 0, 0, err
		}
		sum += v
		n++
	}
	return sum, n, nil
}

// splitApp holds the replicated data set: a list of uint64 items, appended
// by Total messages (each a batch of big-endian items). A query's reply is
// this member's part.
type splitApp struct {
	kind splitKind
	rd   *splitReader // splitIO only

	mu    sync.Mutex
	items []uint64
	rank  int
	size  int
	// plantRankZero is a planted bug: every member evaluates rank 0's
	// share, so the merge counts that share N times and misses the rest.
	plantRankZero bool
	// evalStart and evalEnd bound the last query's evaluation here.
	evalStart, evalEnd time.Time
}

func (a *splitApp) Deliver(m Message) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !m.Query {
		for p := m.Payload; len(p) >= 8; p = p[8:] {
			a.items = append(a.items, binary.BigEndian.Uint64(p))
		}
		return nil
	}
	rank := a.rank
	if a.plantRankZero {
		rank = 0
	}
	a.evalStart = time.Now()
	sum, n, err := evalShare(a.kind, a.rd, a.items, rank, a.size)
	a.evalEnd = time.Now()
	if err != nil {
		// An empty reply: the merge refuses it.
		return nil
	}
	out := make([]byte, 0, splitReplyBytes)
	for _, v := range []uint64{uint64(a.rank), uint64(a.size), uint64(len(a.items)), uint64(n), sum} {
		out = binary.BigEndian.AppendUint64(out, v)
	}
	return out
}

// ViewChange comes before every delivery of its view: a query delivered in
// view v is split by v's ranks and size at every member.
func (a *splitApp) ViewChange(v View) {
	a.mu.Lock()
	a.rank, a.size = v.Rank, len(v.Members)
	a.mu.Unlock()
}

func (a *splitApp) Snapshot(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, uint64(len(a.items)))
	for _, x := range a.items {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	_, err := w.Write(b)
	return err
}

func (a *splitApp) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(b) < 8 || uint64(len(b)-8) != 8*binary.BigEndian.Uint64(b) {
		return fmt.Errorf("split: bad snapshot of %d bytes", len(b))
	}
	items := make([]uint64, 0, (len(b)-8)/8)
	for i := 8; i < len(b); i += 8 {
		items = append(items, binary.BigEndian.Uint64(b[i:]))
	}
	a.mu.Lock()
	a.items = items
	a.mu.Unlock()
	return nil
}

var errSplitMerge = errors.New("split: parts do not merge")

// mergeParts checks that the replies are one part per rank of one view of
// len(replies) members, each over the same data set of itemsWant items,
// covering every item once, and returns the merged result.
func mergeParts(replies []Reply, itemsWant int) (uint64, error) {
	seen := make([]bool, len(replies))
	var sum uint64
	evaluated := 0
	for _, r := range replies {
		if len(r.Payload) != splitReplyBytes {
			return 0, fmt.Errorf("%w: member %d replied %d bytes", errSplitMerge, r.From, len(r.Payload))
		}
		f := func(i int) uint64 { return binary.BigEndian.Uint64(r.Payload[8*i:]) }
		rank, size, held, n := f(0), f(1), f(2), f(3)
		switch {
		case size != uint64(len(replies)) || rank >= size || seen[rank]:
			return 0, fmt.Errorf("%w: member %d: rank %d of %d, with %d replies", errSplitMerge, r.From, rank, size, len(replies))
		case held != uint64(itemsWant):
			return 0, fmt.Errorf("%w: member %d held %d items, want %d", errSplitMerge, r.From, held, itemsWant)
		}
		seen[rank] = true
		evaluated += int(n)
		sum += f(4)
	}
	if evaluated != itemsWant {
		return 0, fmt.Errorf("%w: %d items evaluated, want %d", errSplitMerge, evaluated, itemsWant)
	}
	return sum, nil
}

// splitItems is the data set of a kind: deterministic, so that a whole
// evaluation outside the group can be compared with the merge.
func splitItems(kind splitKind) []uint64 {
	n := splitCPUItems
	if kind == splitIO {
		n = splitIOItems
	}
	r := rand.New(rand.NewPCG(3, uint64(kind)))
	items := make([]uint64, n)
	for i := range items {
		items[i] = r.Uint64()
	}
	return items
}

// splitVSync is fastVSync with a failure detector that tolerates a member
// busy in Deliver: a query evaluation runs on the group's goroutine and
// stops its heartbeats (half a second for the I/O-bound query at N=1).
func splitVSync() vsync.Config {
	c := fastVSync()
	c.Liveness.SuspectTicks = 600 // 3 s at 5 ms ticks
	return c
}

type splitCluster struct {
	kind  splitKind
	items []uint64
	apps  []*splitApp
	gs    []*Group
}

// startSplit starts n members (Hosts in this process), loads the data set
// through member 1 in Total order, and waits until every member holds all
// of it in a view of n.
func startSplit(tb testing.TB, kind splitKind, n int, sf *splitFile) *splitCluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &splitCluster{kind: kind, items: splitItems(kind)}
	var first Member
	for i := range n {
		h := newHost(tb, MemberID(i+1))
		app := &splitApp{kind: kind}
		if kind == splitIO {
			rd, err := sf.open()
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(rd.close)
			app.rd = rd
		}
		cfg := Config{Host: h, GroupID: 1, Bootstrap: i == 0, TickInterval: 5 * time.Millisecond, VSync: splitVSync()}
		if i == 0 {
			first = Member{ID: 1, Addr: h.Addr()}
		} else {
			cfg.Contacts = []Member{first}
		}
		g, err := Join(ctx, cfg, app)
		if err != nil {
			tb.Fatalf("join of %d: %v", i+1, err)
		}
		// Registered after the reader's close, so it runs before it.
		tb.Cleanup(func() { g.Close() })
		c.apps = append(c.apps, app)
		c.gs = append(c.gs, g)
	}
	for i := 0; i < len(c.items); i += splitBatchItems {
		var p []byte
		for _, x := range c.items[i:min(i+splitBatchItems, len(c.items))] {
			p = binary.BigEndian.AppendUint64(p, x)
		}
		if err := c.gs[0].Send(ctx, p, Total); err != nil {
			tb.Fatal(err)
		}
	}
	waitFor(tb, 20*time.Second, func() bool {
		for i, a := range c.apps {
			a.mu.Lock()
			ok := len(a.items) == len(c.items) && a.size == n
			a.mu.Unlock()
			if !ok || len(c.gs[i].View().Members) != n {
				return false
			}
		}
		return true
	}, "%d members holding %d items", n, len(c.items))
	return c
}

// query runs one split query from member 1 and merges the parts.
func (c *splitCluster) query(ctx context.Context) (uint64, error) {
	replies, err := c.gs[0].Query(ctx, nil, 0)
	if err != nil {
		return 0, err
	}
	return mergeParts(replies, len(c.items))
}

// parallelism of the last query: the members' evaluation times added up,
// over the time from the first start to the last end (N if they all ran
// at once at full speed, 1 if one after the other or sharing one core).
func (c *splitCluster) parallelism() float64 {
	var busy time.Duration
	var first, last time.Time
	for _, a := range c.apps {
		a.mu.Lock()
		busy += a.evalEnd.Sub(a.evalStart)
		if first.IsZero() || a.evalStart.Before(first) {
			first = a.evalStart
		}
		if a.evalEnd.After(last) {
			last = a.evalEnd
		}
		a.mu.Unlock()
	}
	if !last.After(first) {
		return 0
	}
	return float64(busy) / float64(last.Sub(first))
}

// whole evaluates the data set in one piece, outside the group.
func (c *splitCluster) whole(tb testing.TB, sf *splitFile) uint64 {
	tb.Helper()
	var rd *splitReader
	if c.kind == splitIO {
		var err error
		if rd, err = sf.open(); err != nil {
			tb.Fatal(err)
		}
		defer rd.close()
	}
	sum, n, err := evalShare(c.kind, rd, c.items, 0, 1)
	if err != nil || n != len(c.items) {
		tb.Fatalf("whole evaluation: %d items, %v", n, err)
	}
	return sum
}

func TestSplitQueryEqualsWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 256 MiB file and starts groups of up to 5 members")
	}
	sf := newSplitFile(t)
	for _, kind := range []splitKind{splitCPU, splitIO} {
		for _, n := range []int{1, 3, 5} {
			t.Run(fmt.Sprintf("%v/N=%d", kind, n), func(t *testing.T) {
				c := startSplit(t, kind, n, sf)
				want := c.whole(t, sf)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				got, err := c.query(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("merged %#x, a single member's whole evaluation %#x", got, want)
				}
				if n == 1 {
					return
				}
				// The planted bug: every member evaluates rank 0's share.
				// The merge check must catch it.
				for _, a := range c.apps {
					a.mu.Lock()
					a.plantRankZero = true
					a.mu.Unlock()
				}
				got, err = c.query(ctx)
				if err == nil && got == want {
					t.Fatal("planted split bug (every member evaluates rank 0's share) not caught")
				}
				t.Logf("planted split bug caught: merged %#x, err %v", got, err)
			})
		}
	}
}

func TestMergePartsRefusesBadParts(t *testing.T) {
	part := func(from MemberID, rank, size, held, n, sum uint64) Reply {
		var p []byte
		for _, v := range []uint64{rank, size, held, n, sum} {
			p = binary.BigEndian.AppendUint64(p, v)
		}
		return Reply{From: from, Payload: p}
	}
	good := []Reply{part(1, 0, 2, 10, 5, 7), part(2, 1, 2, 10, 5, 8)}
	if sum, err := mergeParts(good, 10); err != nil || sum != 15 {
		t.Fatalf("good parts: %d, %v", sum, err)
	}
	for name, rs := range map[string][]Reply{
		"one rank twice":     {part(1, 0, 2, 10, 5, 7), part(2, 0, 2, 10, 5, 8)},
		"a part missing":     {part(1, 0, 2, 10, 5, 7)},
		"another view size":  {part(1, 0, 3, 10, 5, 7), part(2, 1, 3, 10, 5, 8)},
		"another data set":   {part(1, 0, 2, 10, 5, 7), part(2, 1, 2, 9, 4, 8)},
		"items evaluated":    {part(1, 0, 2, 10, 5, 7), part(2, 1, 2, 10, 4, 8)},
		"a member's failure": {part(1, 0, 2, 10, 5, 7), {From: 2}},
	} {
		if _, err := mergeParts(rs, 10); !errors.Is(err, errSplitMerge) {
			t.Errorf("%s: err %v, want errSplitMerge", name, err)
		}
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// splitNsPerOpN1 keeps each kind's N=1 time for the speed-up of the others
// (sub-benchmarks run in order).
var splitNsPerOpN1 = map[splitKind]float64{}

// BenchmarkSplitQuery measures one split query (Query in total order, every
// member evaluating its share, the querier merging) for groups of N = 1..5
// members in this process. Metrics: ns/op, speedup (ns/op at N=1 over
// ns/op at N; only when N=1 ran first), items/member, cpu-ms/op (this
// process's CPU time per query), odirect (io: 1 if the reads bypassed the
// page cache), parallelism (of the last query: the members' evaluation
// times added up over the span from the first start to the last end).
func BenchmarkSplitQuery(b *testing.B) {
	sf := newSplitFile(b)
	if !sf.direct {
		b.Log("split: io ran with buffered reads (O_DIRECT refused)")
	}
	for _, kind := range []splitKind{splitCPU, splitIO} {
		b.Run(kind.String(), func(b *testing.B) {
			for n := 1; n <= 5; n++ {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					c := startSplit(b, kind, n, sf)
					want := c.whole(b, sf)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
					defer cancel()
					b.ResetTimer()
					cpu0 := processCPU(b)
					for range b.N {
						got, err := c.query(ctx)
						if err != nil {
							b.Fatal(err)
						}
						if got != want {
							b.Fatalf("merged %#x, whole %#x", got, want)
						}
					}
					b.StopTimer()
					// CPU time of this whole process (every member, the
					// transport, the runtime) per query: on a shared machine
					// the wall-clock speed-up moves with the others' load,
					// this does not.
					b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
					if kind == splitIO {
						b.ReportMetric(map[bool]float64{false: 0, true: 1}[sf.direct], "odirect")
					}
					nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if n == 1 {
						splitNsPerOpN1[kind] = nsPerOp
					}
					if base := splitNsPerOpN1[kind]; base > 0 {
						b.ReportMetric(base/nsPerOp, "speedup")
					}
					b.ReportMetric(float64(len(c.items))/float64(n), "items/member")
					b.ReportMetric(c.parallelism(), "parallelism")
				})
			}
		})
	}
}

// BenchmarkSplitBare is the control of BenchmarkSplitQuery: the same
// shares evaluated by N goroutines of this process, with no group at all,
// so the group's speed-up can be read against what the machine allows at
// that moment (2 cores shared with whatever else runs).
func BenchmarkSplitBare(b *testing.B) {
	sf := newSplitFile(b)
	for _, kind := range []splitKind{splitCPU, splitIO} {
		items := splitItems(kind)
		b.Run(kind.String(), func(b *testing.B) {
			var base float64
			for n := 1; n <= 5; n++ {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					rds := make([]*splitReader, n)
					if kind == splitIO {
						for i := range rds {
							rd, err := sf.open()
							if err != nil {
								b.Fatal(err)
							}
							defer rd.close()
							rds[i] = rd
						}
					}
					b.ResetTimer()
					for range b.N {
						sums := make([]uint64, n)
						errs := make([]error, n)
						var wg sync.WaitGroup
						for rank := range n {
							wg.Go(func() { sums[rank], _, errs[rank] = evalShare(kind, rds[rank], items, rank, n) })
						}
						wg.Wait()
						if err := errors.Join(errs...); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if n == 1 {
						base = nsPerOp
					}
					if base > 0 {
						b.ReportMetric(base/nsPerOp, "speedup")
					}
				})
			}
		})
	}
}
