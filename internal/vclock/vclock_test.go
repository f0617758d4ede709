package vclock

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/wire"
)

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b Clock
		want Ordering
	}{
		{Clock{}, Clock{}, Equal},
		{Clock{0, 0, 0}, Clock{0, 0, 0}, Equal},
		{Clock{1, 2, 3}, Clock{1, 2, 3}, Equal},
		{Clock{1, 2, 3}, Clock{1, 2, 4}, Before},
		{Clock{0, 0, 0}, Clock{5, 0, 0}, Before},
		{Clock{1, 2, 4}, Clock{1, 2, 3}, After},
		{Clock{2, 1}, Clock{1, 2}, Concurrent},
		{Clock{1, 0, 5}, Clock{0, 1, 5}, Concurrent},
		{Clock{math.MaxUint64}, Clock{math.MaxUint64 - 1}, After},
	} {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		// The relation is antisymmetric: swapping the operands swaps
		// Before and After and keeps Equal and Concurrent.
		mirror := map[Ordering]Ordering{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}
		if got := tc.b.Compare(tc.a); got != mirror[tc.want] {
			t.Errorf("%v.Compare(%v) = %v, want %v", tc.b, tc.a, got, mirror[tc.want])
		}
	}
}

func TestMergeIncrementClone(t *testing.T) {
	for _, tc := range []struct {
		a, b, want Clock
	}{
		{Clock{}, Clock{}, Clock{}},
		{Clock{1, 5, 0}, Clock{3, 2, 0}, Clock{3, 5, 0}},
		{Clock{0, 0}, Clock{7, 9}, Clock{7, 9}},
	} {
		a := tc.a.Clone()
		a.Merge(tc.b)
		if !slices.Equal(a, tc.want) {
			t.Errorf("%v merge %v = %v, want %v", tc.a, tc.b, a, tc.want)
		}
		// The merge follows both inputs (or equals them).
		if o := tc.a.Compare(a); o != Before && o != Equal {
			t.Errorf("merge %v is not after %v (%v)", a, tc.a, o)
		}
		if o := tc.b.Compare(a); o != Before && o != Equal {
			t.Errorf("merge %v is not after %v (%v)", a, tc.b, o)
		}
	}

	c := New(3)
	if got := c.Increment(1); got != 1 {
		t.Fatalf("Increment returned %d", got)
	}
	d := c.Clone()
	d.Increment(1)
	if !slices.Equal(c, Clock{0, 1, 0}) || !slices.Equal(d, Clock{0, 2, 0}) {
		t.Fatalf("clone shares storage: c %v d %v", c, d)
	}
	if c.Compare(d) != Before {
		t.Fatalf("an increment must come after: %v vs %v", c, d)
	}
	if Clock(nil).Clone() != nil {
		t.Fatal("clone of nil is not nil")
	}
}

// TestMisuseIsAnInvariant checks that a length mismatch or a bad rank, which
// only a bug in the caller can produce (network clocks are validated by
// Read), stops with an invariant.Violation rather than a wrong answer.
func TestMisuseIsAnInvariant(t *testing.T) {
	for name, f := range map[string]func(){
		"compare lengths":   func() { Clock{1}.Compare(Clock{1, 2}) },
		"merge lengths":     func() { Clock{1}.Merge(Clock{1, 2}) },
		"increment rank":    func() { New(2).Increment(2) },
		"increment wraps":   func() { Clock{math.MaxUint64}.Increment(0) },
		"ready lengths":     func() { CausallyReady(Clock{1}, 0, Clock{0, 0}) },
		"ready sender rank": func() { CausallyReady(Clock{1}, 1, Clock{0}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if _, ok := recover().(invariant.Violation); !ok {
					t.Fatal("no invariant.Violation")
				}
			}()
			f()
		})
	}
}

func TestCausallyReady(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ts        Clock
		sender    int
		delivered Clock
		want      bool
	}{
		{"first from sender", Clock{1, 0, 0}, 0, Clock{0, 0, 0}, true},
		{"gap from sender", Clock{2, 0, 0}, 0, Clock{0, 0, 0}, false},
		{"already delivered", Clock{1, 0, 0}, 0, Clock{1, 0, 0}, false},
		{"depends on undelivered", Clock{1, 3, 0}, 0, Clock{0, 2, 0}, false},
		{"depends on delivered", Clock{1, 3, 0}, 0, Clock{0, 3, 0}, true},
		{"ahead elsewhere is fine", Clock{0, 0, 4}, 2, Clock{9, 9, 3}, true},
	} {
		if got := CausallyReady(tc.ts, tc.sender, tc.delivered); got != tc.want {
			t.Errorf("%s: CausallyReady(%v, %d, %v) = %v, want %v", tc.name, tc.ts, tc.sender, tc.delivered, got, tc.want)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, c := range []Clock{{}, {0}, {1, 127, 128, math.MaxUint64}, New(64)} {
		w := wire.NewBuffer(nil)
		Append(w, c)
		if w.Len() != EncodedLen(c) {
			t.Fatalf("EncodedLen %d, wrote %d", EncodedLen(c), w.Len())
		}
		r := wire.NewReader(w.Bytes())
		got := Read(r, 64)
		if err := r.Done(); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if got == nil || !slices.Equal(got, c) {
			t.Fatalf("round trip %v -> %v", c, got)
		}
		r = wire.NewReader(w.Bytes())
		if got, err := ReadN(r, len(c)); err != nil || !slices.Equal(got, c) {
			t.Fatalf("ReadN %v -> %v, %v", c, got, err)
		}
	}
}

func TestReadRejectsBadInput(t *testing.T) {
	enc := func(c Clock) []byte {
		w := wire.NewBuffer(nil)
		Append(w, c)
		return w.Bytes()
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		lenMax int
		want   error
	}{
		{"empty input", nil, 4, wire.ErrTruncated},
		{"over limit", enc(Clock{1, 2, 3}), 2, wire.ErrTooLarge},
		// A count of a billion entries in three bytes must fail before
		// allocating a billion-entry clock.
		{"count beyond input", []byte{0x80, 0x94, 0xeb, 0xdc, 0x03, 1}, math.MaxInt32, wire.ErrTruncated},
		{"truncated entry", enc(Clock{1, 300})[:3], 4, wire.ErrTruncated},
		{"non-canonical entry", []byte{1, 0x80, 0x00}, 4, wire.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.NewReader(tc.in)
			if c := Read(r, tc.lenMax); c != nil {
				t.Fatalf("decoded %v", c)
			}
			if !errors.Is(r.Err(), tc.want) {
				t.Fatalf("error %v, want %v", r.Err(), tc.want)
			}
		})
	}
	if _, err := ReadN(wire.NewReader(enc(Clock{1, 2})), 3); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("ReadN of a short clock: %v", err)
	}
}

// FuzzRead: no input panics, a clock never exceeds its limit, and whatever
// decodes re-encodes to the same bytes (the encoding is canonical).
func FuzzRead(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3})
	f.Add([]byte{0})
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const lenMax = 16
		r := wire.NewReader(in)
		c := Read(r, lenMax)
		if r.Err() != nil {
			return
		}
		if len(c) > lenMax {
			t.Fatalf("clock of %d entries over limit", len(c))
		}
		w := wire.NewBuffer(nil)
		Append(w, c)
		if consumed := in[:len(in)-r.Remaining()]; !bytes.Equal(w.Bytes(), consumed) {
			t.Fatalf("re-encoding differs: in %x out %x", consumed, w.Bytes())
		}
	})
}
