package wire

import (
	"bytes"
	"testing"
)

// FuzzDecodeEnvelope feeds arbitrary bytes to the decoder: it must never
// panic, and whatever it accepts must re-encode to exactly the same bytes (the
// encoding is canonical).
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendEnvelope(nil, Envelope{Kind: 0x0101, Channel: 1, From: 1, To: 2, Payload: []byte("x")}))
	f.Add(AppendEnvelope(nil, Envelope{}))
	f.Add([]byte{Version, 0, 1, 0x80, 0x00, 1, 1, 0})
	f.Add([]byte{Version, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEnvelope(in, 1<<16)
		if err != nil {
			return
		}
		if len(e.Payload) > 1<<16 {
			t.Fatalf("payload of %d bytes over the limit", len(e.Payload))
		}
		if out := AppendEnvelope(nil, e); !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
	})
}

// FuzzReader drives every Reader method from the fuzzer's bytes: no sequence
// of reads may panic or return more bytes than its limit.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, ops, in []byte) {
		r := NewReader(in)
		for _, op := range ops {
			switch op % 9 {
			case 0:
				r.Uint8()
			case 1:
				r.Uint16()
			case 2:
				r.Uint32()
			case 3:
				r.Uint64()
			case 4:
				r.Uvarint()
			case 5:
				r.Bool()
			case 6:
				if b := r.LenBytes(int(op)); len(b) > int(op) {
					t.Fatalf("LenBytes returned %d bytes, limit %d", len(b), op)
				}
			case 7:
				if n := r.Count(int(op), 1); n > int(op) {
					t.Fatalf("Count %d over limit %d", n, op)
				}
			case 8:
				_ = r.Done()
			}
		}
		if r.Remaining() < 0 || r.Remaining() > len(in) {
			t.Fatalf("Remaining %d out of range", r.Remaining())
		}
	})
}
