// Package vclock implements vector timestamps over the members of one view.
//
// A Clock has one counter per member, indexed by the member's rank in the
// view, so every member of the view reads the same position the same way and
// no member id travels with the counters. A clock of one view means nothing
// in another: views are never mixed, and two clocks compared or merged must
// have the same length (the caller validates clocks from the network with
// Read before using them; a length mismatch after that is a bug).
//
// What a counter counts is the caller's choice. internal/order stamps a causal
// message from the member of rank r with seq s as: entry r = s, and entry k
// (k != r) = the highest seq of member k that r had delivered when it sent.
// With that convention Compare gives happens-before between messages (Fidge
// 1988, Mattern 1989; the delivery rule is Birman, Schiper and Stephenson,
// "Lightweight causal and atomic group multicast", TOCS 1991, section 3).
//
// Encoded form (wire.Buffer / wire.Reader):
//
//	size      field
//	1..10     n, the number of entries, uvarint (at most the caller's limit)
//	n × 1..10 entry for rank 0, 1, ..., n-1, each a uvarint
//
// A clock of n members whose counters stay below 128 takes n+1 bytes.
package vclock

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/wire"
)

// Clock is a vector timestamp: entry i belongs to the member of rank i.
type Clock []uint64

// Ordering is the relation between two clocks.
type Ordering uint8

const (
	// Equal: every entry is the same.
	Equal Ordering = iota
	// Before: no entry is greater and at least one is smaller, so the first
	// event happened before the second.
	Before
	// After: the converse of Before.
	After
	// Concurrent: each clock has an entry greater than the other's.
	Concurrent
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// New returns a clock of n zero entries.
func New(n int) Clock {
	invariant.Check(n >= 0, "vclock: negative length %d", n)
	return make(Clock, n)
}

// Clone returns a copy that shares no storage with c.
func (c Clock) Clone() Clock {
	if c == nil {
		return nil
	}
	return append(Clock(make([]uint64, 0, len(c))), c...)
}

// Increment adds one to the entry of rank and returns the new value.
func (c Clock) Increment(rank int) uint64 {
	invariant.Check(rank >= 0 && rank < len(c), "vclock: rank %d out of a clock of %d", rank, len(c))
	invariant.Check(c[rank] < math.MaxUint64, "vclock: entry %d would overflow", rank)
	c[rank]++
	return c[rank]
}

// Merge sets every entry of c to the maximum of its value and o's: the clock
// of an event that follows both.
func (c Clock) Merge(o Clock) {
	invariant.Check(len(c) == len(o), "vclock: merge of lengths %d and %d", len(c), len(o))
	for i, v := range o {
		c[i] = max(c[i], v)
	}
}

// Compare reports how c relates to o.
func (c Clock) Compare(o Clock) Ordering {
	invariant.Check(len(c) == len(o), "vclock: compare of lengths %d and %d", len(c), len(o))
	less, greater := false, false
	for i := range c {
		switch {
		case c[i] < o[i]:
			less = true
		case c[i] > o[i]:
			greater = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// CausallyReady reports whether a message stamped ts by the member of rank
// sender can be delivered at a member that has delivered, from each rank k,
// every message up to delivered[k]: it must be the next message from its
// sender (ts[sender] == delivered[sender]+1) and everything its sender had
// delivered when it sent must be delivered here too (ts[k] <= delivered[k]).
func CausallyReady(ts Clock, sender int, delivered Clock) bool {
	invariant.Check(len(ts) == len(delivered), "vclock: ready check of lengths %d and %d", len(ts), len(delivered))
	invariant.Check(sender >= 0 && sender < len(ts), "vclock: sender rank %d out of a clock of %d", sender, len(ts))
	for k, v := range ts {
		if k == sender {
			if v != delivered[k]+1 {
				return false
			}
		} else if v > delivered[k] {
			return false
		}
	}
	return true
}

// String formats c as [a b c].
func (c Clock) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range c {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(v, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// Append writes c to w in the format of the package comment.
func Append(w *wire.Buffer, c Clock) {
	w.Uvarint(uint64(len(c)))
	for _, v := range c {
		w.Uvarint(v)
	}
}

// EncodedLen is the number of bytes Append writes for c.
func EncodedLen(c Clock) int {
	n := wire.UvarintLen(uint64(len(c)))
	for _, v := range c {
		n += wire.UvarintLen(v)
	}
	return n
}

// Read decodes a clock of at most lenMax entries from r. A longer clock, or
// one whose count exceeds the bytes left, fails r (wire.ErrTooLarge,
// wire.ErrTruncated) before anything is allocated; the result is then nil and
// r.Err() says why. A decoded clock of length 0 is an empty, non-nil Clock.
func Read(r *wire.Reader, lenMax int) Clock {
	n := r.Count(lenMax, 1)
	if r.Err() != nil {
		return nil
	}
	c := make(Clock, n)
	for i := range c {
		c[i] = r.Uvarint()
	}
	if r.Err() != nil {
		return nil
	}
	return c
}

// ReadN is Read for a clock that must have exactly n entries, such as the
// clock of a view of n members. Another length is an error wrapping
// wire.ErrMalformed.
func ReadN(r *wire.Reader, n int) (Clock, error) {
	c := Read(r, n)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("vclock: %w", err)
	}
	if len(c) != n {
		return nil, fmt.Errorf("vclock: %w: %d entries, want %d", wire.ErrMalformed, len(c), n)
	}
	return c, nil
}
