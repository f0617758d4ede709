// Package quorum holds the quorum arithmetic of the Paxos core: which sets of
// members are a phase-1 quorum (Q1, the promises a candidate needs), which are
// a phase-2 quorum (Q2, the acceptances that choose a value), the highest slot
// a Q2 quorum has acknowledged, and the outcome of a vote.
//
// A System is defined by sizes over a member set: any Q1 members form a
// phase-1 quorum and any Q2 members a phase-2 quorum. Safety needs only that
// every phase-1 quorum intersects every phase-2 quorum (Flexible Paxos,
// Howard, Malkhi and Spiegelman 2016, section 3), which for size-based
// systems is Q1 + Q2 > N. Majorities (Q1 = Q2 = N/2+1) are the special case
// where any two quorums intersect, which is what one-member-at-a-time
// membership change relies on (see package paxos).
//
// Everything here is pure and iterates members in ascending ID order, so no
// map order reaches a caller.
package quorum

import (
	"errors"
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/peer"
)

// ErrInvalid is returned (wrapped) for a quorum configuration that is not
// safe or not satisfiable: an empty member set, a size outside 1..N, or
// Q1 + Q2 <= N.
var ErrInvalid = errors.New("quorum: invalid configuration")

// Majority is the size of a simple majority of n members: the smallest
// quorum such that any two quorums intersect.
func Majority(n int) int { return n/2 + 1 }

// System is a quorum system over a fixed member set. The zero value has no
// members and no quorum is ever reached in it.
type System struct {
	members peer.Set
	q1, q2  int
	// flexible records that Q1 or Q2 was given explicitly rather than derived
	// as a majority. It is reported, not used in the arithmetic: the Paxos
	// core refuses membership changes under a flexible system.
	flexible bool
}

// New returns the system over members with phase-1 quorums of q1 members and
// phase-2 quorums of q2 members. A size of 0 means "a majority". It reports
// ErrInvalid when the sizes cannot be met (outside 1..N) or when a phase-1
// and a phase-2 quorum could miss each other (q1 + q2 <= N).
func New(members peer.Set, q1, q2 int) (System, error) {
	n := members.Len()
	if n == 0 {
		return System{}, fmt.Errorf("%w: no members", ErrInvalid)
	}
	flexible := q1 != 0 || q2 != 0
	if q1 == 0 {
		q1 = Majority(n)
	}
	if q2 == 0 {
		q2 = Majority(n)
	}
	if q1 < 1 || q1 > n || q2 < 1 || q2 > n {
		return System{}, fmt.Errorf("%w: quorum sizes Q1=%d Q2=%d must lie in 1..%d", ErrInvalid, q1, q2, n)
	}
	if q1+q2 <= n {
		return System{}, fmt.Errorf("%w: Q1=%d + Q2=%d must exceed N=%d, or a phase-1 quorum can miss a chosen value", ErrInvalid, q1, q2, n)
	}
	return System{members: members, q1: q1, q2: q2, flexible: flexible}, nil
}

// NewMajority returns the majority system over members. It panics only on an
// empty set, which callers rule out; use New to get an error instead.
func NewMajority(members peer.Set) System {
	s, err := New(members, 0, 0)
	if err != nil {
		panic(err)
	}
	return s
}

// Members is the member set.
func (s System) Members() peer.Set { return s.members }

// Q1 is the phase-1 quorum size.
func (s System) Q1() int { return s.q1 }

// Q2 is the phase-2 quorum size.
func (s System) Q2() int { return s.q2 }

// Flexible reports whether Q1 or Q2 was configured explicitly.
func (s System) Flexible() bool { return s.flexible }

func (s System) String() string {
	return fmt.Sprintf("%v q1=%d q2=%d", s.members, s.q1, s.q2)
}

// smallIDsMax is how many members CommittedIndex sorts on the stack; larger
// systems allocate. Clusters are small, so the common path never allocates.
const smallIDsMax = 16

// CommittedIndex returns the highest slot that at least q members have
// acknowledged, given each member's highest acknowledged slot (a member
// missing from acked counts as 0). This is the phase-2 commit rule when q is
// Q2. It sorts the acknowledgements in descending order and takes the q-th:
// at least q members acknowledged that slot or a higher one, and no higher
// slot has q acknowledgements. Members are visited in ascending ID order.
func CommittedIndex(members peer.Set, q int, acked func(peer.ID) uint64) uint64 {
	n := members.Len()
	if n == 0 || q < 1 || q > n {
		return 0
	}
	var stack [smallIDsMax]uint64
	var idx []uint64
	if n <= len(stack) {
		idx = stack[:0]
	} else {
		idx = make([]uint64, 0, n)
	}
	for id := range members.All() {
		idx = append(idx, acked(id))
	}
	slices.Sort(idx)
	// idx ascending: the q-th largest is at n-q.
	return idx[n-q]
}

// Committed is CommittedIndex over the system's phase-2 quorum.
func (s System) Committed(acked func(peer.ID) uint64) uint64 {
	return CommittedIndex(s.members, s.q2, acked)
}

// VoteResult is the outcome of collecting yes/no answers from members.
type VoteResult uint8

const (
	// VotePending means neither outcome is settled yet.
	VotePending VoteResult = iota + 1
	// VoteLost means so many members said no that a quorum can no longer say yes.
	VoteLost
	// VoteWon means a quorum said yes.
	VoteWon
)

func (r VoteResult) String() string {
	switch r {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return fmt.Sprintf("VoteResult(%d)", uint8(r))
}

// Vote tallies answers for a quorum of q among members. vote reports, for a
// member, whether it answered and whether the answer was yes; answers from
// non-members are never asked for. The vote is lost once more than N-q
// members said no, since the remaining members cannot make q.
func Vote(members peer.Set, q int, vote func(peer.ID) (yes, answered bool)) VoteResult {
	n := members.Len()
	if n == 0 || q < 1 || q > n {
		return VoteLost
	}
	var yes, no int
	for id := range members.All() {
		y, ok := vote(id)
		switch {
		case !ok:
		case y:
			yes++
		default:
			no++
		}
	}
	switch {
	case yes >= q:
		return VoteWon
	case no > n-q:
		return VoteLost
	}
	return VotePending
}

// Phase1 tallies promises: VoteWon once Q1 members promised.
func (s System) Phase1(vote func(peer.ID) (yes, answered bool)) VoteResult {
	return Vote(s.members, s.q1, vote)
}

// Phase2 tallies acknowledgements against Q2: used to confirm leadership for
// a read and for the leader's check that it still reaches a quorum.
func (s System) Phase2(vote func(peer.ID) (yes, answered bool)) VoteResult {
	return Vote(s.members, s.q2, vote)
}
