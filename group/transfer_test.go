package group

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/chorus-project/chorus/internal/vsync"
)

// recorder is a Handler whose Restore reads the whole stream.
type recorder struct {
	got []byte
	err error
}

func (r *recorder) Deliver(Message) []byte     { return nil }
func (r *recorder) ViewChange(View)            {}
func (r *recorder) Snapshot(w io.Writer) error { return nil }
func (r *recorder) Restore(rd io.Reader) error {
	r.got, r.err = io.ReadAll(rd)
	return r.err
}

// chunks spools state and cuts it the way a donor streams it.
func chunks(t *testing.T, state []byte, memMax, chunkBytes int) []vsync.Chunk {
	t.Helper()
	sp := &spool{memMax: memMax, dir: t.TempDir()}
	defer sp.close()
	for p := state; len(p) > 0; {
		n := min(len(p), 100)
		if _, err := sp.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if len(state) > memMax && sp.file == nil {
		t.Fatal("spool kept a state over memMax in memory")
	}
	var out []vsync.Chunk
	for i := uint64(0); ; i++ {
		data, last, err := sp.next(chunkBytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vsync.Chunk{Index: i, Data: data, Last: last})
		if last {
			return out
		}
	}
}

func feedAll(cs []vsync.Chunk) (*recorder, error) {
	h := &recorder{}
	r := startRestore(h)
	for _, c := range cs {
		if finished, err := r.feed(c); finished {
			return h, err
		}
	}
	r.abort()
	return h, errors.New("no last chunk")
}

func TestTransferStream(t *testing.T) {
	state := bytes.Repeat([]byte("chorus state "), 1000) // 13,000 bytes
	for _, memMax := range []int{1 << 20, 1000} {        // in memory, and spilled to a file
		cs := chunks(t, state, memMax, 512)
		h, err := feedAll(cs)
		if err != nil || !bytes.Equal(h.got, state) {
			t.Fatalf("memMax %d: restore = %v, %d bytes (want %d)", memMax, err, len(h.got), len(state))
		}
	}
	if h, err := feedAll(chunks(t, nil, 10, 512)); err != nil || len(h.got) != 0 {
		t.Fatalf("empty state: %v, %d bytes", err, len(h.got))
	}

	// A stream that lost a chunk: the trailer's length does not match, the
	// reader sees an error instead of io.EOF, Restore fails.
	cs := chunks(t, state, 1<<20, 512)
	short := append(append([]vsync.Chunk(nil), cs[:3]...), cs[5:]...)
	if h, err := feedAll(short); !errors.Is(err, ErrStateTransfer) || !errors.Is(h.err, ErrStateTransfer) {
		t.Fatalf("truncated stream: feed %v, Restore's read %v; want ErrStateTransfer for both", err, h.err)
	}
	// A flipped bit: the checksum fails.
	bad := append([]vsync.Chunk(nil), cs...)
	flipped := bytes.Clone(bad[2].Data)
	flipped[7] ^= 1
	bad[2].Data = flipped
	if h, err := feedAll(bad); !errors.Is(err, ErrStateTransfer) || h.err == nil {
		t.Fatalf("corrupt stream: feed %v, Restore's read %v", err, h.err)
	}
	// A malformed trailer.
	odd := append([]vsync.Chunk(nil), cs...)
	odd[len(odd)-1].Data = []byte{1, 2, 3}
	if _, err := feedAll(odd); !errors.Is(err, ErrStateTransfer) {
		t.Fatalf("short trailer: %v", err)
	}
}

// TestRestoreErrorFailsTransfer: a Restore that returns an error before the
// end fails the transfer even though the stream itself is whole.
func TestRestoreErrorFailsTransfer(t *testing.T) {
	cs := chunks(t, bytes.Repeat([]byte("x"), 5000), 1<<20, 256)
	r := startRestore(&failing{})
	var err error
	for _, c := range cs {
		var finished bool
		if finished, err = r.feed(c); finished {
			break
		}
	}
	if !errors.Is(err, ErrStateTransfer) {
		t.Fatalf("feed = %v, want ErrStateTransfer", err)
	}
}

type failing struct{ recorder }

func (f *failing) Restore(rd io.Reader) error {
	var b [10]byte
	io.ReadFull(rd, b[:])
	return errors.New("application refuses the state")
}
