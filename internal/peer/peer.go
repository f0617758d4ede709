// Package peer names the members of a group or cluster and keeps sets of them
// in a deterministic order.
//
// A member is identified by an ID chosen by the operator (never 0) and, in the
// group layer, an Incarnation: a member that was excluded while alive, or that
// lost its disk, comes back with a higher incarnation so that nobody confuses
// the new process with the old one. Sets iterate in ascending ID order, so no
// map order ever reaches a message, a log or a test transcript.
package peer

import (
	"fmt"
	"slices"
	"strconv"
)

// ID identifies a member. The zero ID means "nobody" and is never a member.
type ID uint64

// None is the zero ID: no member, no leader known.
const None ID = 0

func (id ID) String() string {
	if id == None {
		return "none"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// Incarnation counts the lives of one member ID. It grows each time the
// member rejoins as a fresh process (after exclusion or the loss of its state).
type Incarnation uint64

// Member is one life of one member.
type Member struct {
	ID          ID
	Incarnation Incarnation
}

func (m Member) String() string { return fmt.Sprintf("%s.%d", m.ID, m.Incarnation) }

// Set is a set of IDs held as a sorted slice without duplicates. The zero
// value is the empty set. Methods never modify the receiver's backing array:
// Add and Remove return a new Set, so a Set stored in a message or a view can
// be shared freely.
type Set struct {
	ids []ID // ascending, no duplicates, no None
}

// NewSet returns the set of the given ids. It reports an error for None or a
// duplicate, since both mean a configuration mistake.
func NewSet(ids ...ID) (Set, error) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for i, id := range sorted {
		if id == None {
			return Set{}, fmt.Errorf("peer: member id 0 is reserved")
		}
		if i > 0 && sorted[i-1] == id {
			return Set{}, fmt.Errorf("peer: duplicate member id %s", id)
		}
	}
	return Set{ids: sorted}, nil
}

// MustSet is NewSet for literals in tests and examples; it panics on error.
func MustSet(ids ...ID) Set {
	s, err := NewSet(ids...)
	if err != nil {
		panic(err)
	}
	return s
}

// Len is the number of members.
func (s Set) Len() int { return len(s.ids) }

// Contains reports whether id is in the set.
func (s Set) Contains(id ID) bool {
	_, found := slices.BinarySearch(s.ids, id)
	return found
}

// Add returns s with id added. Adding None is ignored.
func (s Set) Add(id ID) Set {
	i, found := slices.BinarySearch(s.ids, id)
	if found || id == None {
		return s
	}
	return Set{ids: slices.Insert(slices.Clip(s.ids), i, id)}
}

// Remove returns s without id.
func (s Set) Remove(id ID) Set {
	i, found := slices.BinarySearch(s.ids, id)
	if !found {
		return s
	}
	return Set{ids: slices.Delete(slices.Clone(s.ids), i, i+1)}
}

// IDs returns the members in ascending order. The caller may keep and modify
// the returned slice.
func (s Set) IDs() []ID { return slices.Clone(s.ids) }

// All iterates over the members in ascending order.
func (s Set) All() func(yield func(ID) bool) {
	return func(yield func(ID) bool) {
		for _, id := range s.ids {
			if !yield(id) {
				return
			}
		}
	}
}

// Equal reports whether both sets hold the same members.
func (s Set) Equal(o Set) bool { return slices.Equal(s.ids, o.ids) }

func (s Set) String() string { return fmt.Sprint(s.ids) }
