package wal

import (
	"bytes"
	"testing"
)

func TestSegmentHeader(t *testing.T) {
	h := appendSegmentHeader(nil, 0x1234)
	if len(h) != segmentHeaderBytes {
		t.Fatalf("header is %d bytes, want %d", len(h), segmentHeaderBytes)
	}
	if first, err := decodeSegmentHeader(h); err != nil || first != 0x1234 {
		t.Fatalf("decode: %d, %v", first, err)
	}
	if _, err := decodeSegmentHeader(h[:segmentHeaderBytes-1]); err == nil {
		t.Fatal("short header accepted")
	}
	for i := range h {
		bad := bytes.Clone(h)
		bad[i] ^= 0x01
		if _, err := decodeSegmentHeader(bad); err == nil {
			t.Fatalf("header with byte %d flipped accepted", i)
		}
	}
	if _, err := decodeSegmentHeader(make([]byte, segmentHeaderBytes)); err == nil {
		t.Fatal("zero header accepted")
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		typ      uint8
		index    uint64
		batchPos uint32
		data     []byte
	}{
		{0, 1, 0, nil},
		{255, 1<<64 - 1, 7, []byte("x")},
		{3, 42, 0, bytes.Repeat([]byte{0xab}, 1000)},
	} {
		b := appendFrame([]byte("prefix"), tc.typ, tc.index, tc.batchPos, tc.data)[len("prefix"):]
		if len(b) != frameBytes(len(tc.data)) {
			t.Fatalf("frame of %d data bytes is %d bytes", len(tc.data), len(b))
		}
		f, n, problem := decodeFrame(append(b, "trailing"...))
		if problem != frameOK || n != len(b) || f.typ != tc.typ || f.index != tc.index ||
			f.batchPos != tc.batchPos || !bytes.Equal(f.data, tc.data) {
			t.Fatalf("round trip of %+v: %+v, %d, %v", tc, f, n, problem)
		}
		for cut := range len(b) {
			if _, _, problem := decodeFrame(b[:cut]); problem != frameShort {
				t.Fatalf("frame cut at %d of %d: %v, want frameShort", cut, len(b), problem)
			}
		}
		for i := range b {
			bad := bytes.Clone(b)
			bad[i] ^= 0x40
			if _, _, problem := decodeFrame(bad); problem == frameOK {
				t.Fatalf("frame with byte %d flipped accepted", i)
			}
		}
	}
	// A hole or preallocated space never reads as a record.
	if _, _, problem := decodeFrame(make([]byte, 4096)); problem != frameChecksum {
		t.Fatalf("zeros decode as %v, want a checksum mismatch", problem)
	}
	over := appendFrame(nil, 0, 1, 0, nil)
	over[4] = 0xff // length far over the format limit
	if _, _, problem := decodeFrame(over); problem != frameTooLarge {
		t.Fatalf("huge length: %v, want frameTooLarge", problem)
	}
}

func TestIndexNames(t *testing.T) {
	if got := segmentName(0xa3f20); got != "00000000000a3f20.wal" {
		t.Fatalf("segmentName: %s", got)
	}
	for _, tc := range []struct {
		name string
		want uint64
		ok   bool
	}{
		{"00000000000a3f20.wal", 0xa3f20, true},
		{"ffffffffffffffff.wal", 1<<64 - 1, true},
		{"00000000000A3F20.wal", 0, false}, // upper case: not a name we write
		{"0000000000a3f20.wal", 0, false},
		{"+000000000a3f20.wal", 0, false},
		{"00000000000a3f20.wal.tmp", 0, false},
		{"00000000000a3f20.front", 0, false},
	} {
		got, ok := parseIndexName(tc.name, segmentSuffix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseIndexName(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
