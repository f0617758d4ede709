package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		{},
		{Kind: 0x0101, Channel: 7, From: 1, To: 2, Payload: []byte("hello")},
		{Kind: math.MaxUint16, Channel: math.MaxUint64, From: math.MaxUint64, To: 300, Payload: bytes.Repeat([]byte{0xab}, 70000)},
	} {
		enc := AppendEnvelope(nil, e)
		if len(enc) != EncodedLen(e) {
			t.Fatalf("EncodedLen %d, encoding has %d", EncodedLen(e), len(enc))
		}
		if len(enc)-len(e.Payload) > EnvelopeHeaderBytesMax {
			t.Fatalf("header of %d bytes over EnvelopeHeaderBytesMax", len(enc)-len(e.Payload))
		}
		got, err := DecodeEnvelope(enc, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != e.Kind || got.Channel != e.Channel || got.From != e.From || got.To != e.To || !bytes.Equal(got.Payload, e.Payload) {
			t.Fatalf("round trip %+v -> %+v", e, got)
		}
	}
}

func TestDecodeEnvelopeRejectsBadInput(t *testing.T) {
	good := AppendEnvelope(nil, Envelope{Kind: 1, Channel: 2, From: 3, To: 4, Payload: []byte("abcdef")})
	// A frame claiming a 4 GiB payload, and a varint of eleven bytes.
	huge := AppendEnvelope(nil, Envelope{Kind: 1})
	huge = append(huge[:len(huge)-1], 0x80, 0x80, 0x80, 0x80, 0x10)
	overflow := append([]byte{Version, 0, 1}, bytes.Repeat([]byte{0xff}, 10)...)
	overflow = append(overflow, 0x01)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version", append([]byte{Version + 1}, good[1:]...), ErrVersion},
		{"truncated payload", good[:len(good)-1], ErrTruncated},
		{"trailing", append(good[:len(good):len(good)], 0), ErrTrailing},
		{"4 GiB payload", huge, ErrTooLarge},
		{"over limit", good, ErrTooLarge},
		{"varint overflow", overflow, ErrMalformed},
		{"non-canonical varint", []byte{Version, 0, 1, 0x80, 0x00, 1, 1, 0}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := 1 << 20
			if tc.name == "over limit" {
				limit = 5
			}
			_, err := DecodeEnvelope(tc.in, limit)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReaderFieldsAndStickyError(t *testing.T) {
	w := NewBuffer(nil)
	w.Uint8(1)
	w.Uint16(2)
	w.Uint32(3)
	w.Uint64(4)
	w.Uvarint(300)
	w.Bool(true)
	w.String("abc")
	w.Uvarint(2) // a list of two one-byte elements
	w.Uint8(8)
	w.Uint8(9)
	r := NewReader(w.Bytes())
	if r.Uint8() != 1 || r.Uint16() != 2 || r.Uint32() != 3 || r.Uint64() != 4 || r.Uvarint() != 300 || !r.Bool() || r.String(3) != "abc" {
		t.Fatalf("fields decoded wrong: %v", r.Err())
	}
	if n := r.Count(2, 1); n != 2 || r.Uint8() != 8 || r.Uint8() != 9 {
		t.Fatalf("list decoded wrong: %v", r.Err())
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
	// Past the end: the error sticks and later reads are zero.
	if r.Uint64() != 0 || !errors.Is(r.Err(), ErrTruncated) || r.Uint8() != 0 {
		t.Fatalf("sticky error: %v", r.Err())
	}

	bad := NewReader([]byte{2})
	if bad.Bool() || !errors.Is(bad.Err(), ErrMalformed) {
		t.Fatalf("bool 2 accepted: %v", bad.Err())
	}
	// A count larger than the bytes that remain could be used to force a huge
	// allocation: it must fail before the caller allocates.
	lying := NewReader([]byte{0xe8, 0x07, 1, 2}) // count 1000, two bytes left
	if n := lying.Count(1<<20, 1); n != 0 || !errors.Is(lying.Err(), ErrTruncated) {
		t.Fatalf("Count trusted a lying peer: n=%d err=%v", n, lying.Err())
	}
	over := NewReader([]byte{3, 1, 2, 3})
	if n := over.Count(2, 1); n != 0 || !errors.Is(over.Err(), ErrTooLarge) {
		t.Fatalf("Count over max: n=%d err=%v", n, over.Err())
	}
}

func TestPeerIDsSurviveEncoding(t *testing.T) {
	e := Envelope{From: peer.ID(1) << 62, To: peer.None}
	got, err := DecodeEnvelope(AppendEnvelope(nil, e), 0)
	if err != nil || got.From != e.From || got.To != peer.None {
		t.Fatalf("got %+v, %v", got, err)
	}
}
