package quorum

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
)

func ids(n int) peer.Set {
	var s peer.Set
	for i := 1; i <= n; i++ {
		s = s.Add(peer.ID(i))
	}
	return s
}

func TestMajority(t *testing.T) {
	for n, want := range []int{1, 1, 2, 2, 3, 3, 4, 4} {
		if got := Majority(n); got != want {
			t.Errorf("Majority(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		n, q1, q2        int
		ok               bool
		wantQ1, wantQ2   int
		wantFlexibleFlag bool
	}{
		{n: 3, ok: true, wantQ1: 2, wantQ2: 2},
		{n: 4, ok: true, wantQ1: 3, wantQ2: 3},
		{n: 1, ok: true, wantQ1: 1, wantQ2: 1},
		{n: 5, q1: 4, q2: 2, ok: true, wantQ1: 4, wantQ2: 2, wantFlexibleFlag: true},
		{n: 4, q1: 2, q2: 3, ok: true, wantQ1: 2, wantQ2: 3, wantFlexibleFlag: true},
		{n: 4, q1: 3, ok: true, wantQ1: 3, wantQ2: 3, wantFlexibleFlag: true}, // q2 defaults to the majority
		{n: 5, q1: 5, q2: 1, ok: true, wantQ1: 5, wantQ2: 1, wantFlexibleFlag: true},
		{n: 5, q1: 3, q2: 2},  // 3+2 = 5, not > 5
		{n: 4, q1: 2, q2: 2},  // even split
		{n: 3, q1: 4, q2: 2},  // Q1 > N
		{n: 3, q1: -1, q2: 3}, // negative
		{n: 0},                // no members
		{n: 4, q2: 1},         // majority Q1=3 + 1 = 4, not > 4
	} {
		t.Run(fmt.Sprintf("n%d_q%d_%d", tc.n, tc.q1, tc.q2), func(t *testing.T) {
			s, err := New(ids(tc.n), tc.q1, tc.q2)
			if !tc.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Q1() != tc.wantQ1 || s.Q2() != tc.wantQ2 || s.Flexible() != tc.wantFlexibleFlag {
				t.Fatalf("got %v flexible=%v", s, s.Flexible())
			}
		})
	}
}

// TestValidationMatchesIntersection checks, by enumerating every subset for
// N <= 6, that New accepts exactly the sizes for which every Q1-subset meets
// every Q2-subset: the property the whole Paxos safety argument rests on.
func TestValidationMatchesIntersection(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for q1 := 1; q1 <= n; q1++ {
			for q2 := 1; q2 <= n; q2++ {
				_, err := New(ids(n), q1, q2)
				if got, want := err == nil, alwaysIntersect(n, q1, q2); got != want {
					t.Errorf("n=%d q1=%d q2=%d: New ok=%v, intersection holds=%v", n, q1, q2, got, want)
				}
			}
		}
	}
}

func alwaysIntersect(n, q1, q2 int) bool {
	full := 1 << n
	for a := 0; a < full; a++ {
		if popcount(a) != q1 {
			continue
		}
		for b := 0; b < full; b++ {
			if popcount(b) == q2 && a&b == 0 {
				return false
			}
		}
	}
	return true
}

func popcount(x int) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}

func TestCommittedIndexTable(t *testing.T) {
	for _, tc := range []struct {
		acked []uint64 // member i+1 acked acked[i]
		q     int
		want  uint64
	}{
		{[]uint64{5}, 1, 5},
		{[]uint64{5, 3, 7}, 2, 5},
		{[]uint64{5, 3, 7}, 3, 3},
		{[]uint64{5, 3, 7}, 1, 7},
		{[]uint64{0, 0, 9}, 2, 0},
		{[]uint64{4, 4, 4, 1, 1}, 3, 4},
		{[]uint64{4, 4, 1, 1, 1}, 3, 1},
		{[]uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12, 13, 14, 15, 16, 17}, 10, 8}, // over the stack size
	} {
		members := ids(len(tc.acked))
		got := CommittedIndex(members, tc.q, func(id peer.ID) uint64 { return tc.acked[id-1] })
		if got != tc.want {
			t.Errorf("CommittedIndex(%v, q=%d) = %d, want %d", tc.acked, tc.q, got, tc.want)
		}
	}
	if got := CommittedIndex(peer.Set{}, 1, nil); got != 0 {
		t.Errorf("empty set committed %d", got)
	}
	if got := CommittedIndex(ids(3), 4, func(peer.ID) uint64 { return 9 }); got != 0 {
		t.Errorf("unreachable quorum committed %d", got)
	}
}

// bruteCommitted is the definition: the largest slot acknowledged by at least
// q members.
func bruteCommitted(acked []uint64, q int) uint64 {
	var best uint64
	for _, s := range acked {
		n := 0
		for _, o := range acked {
			if o >= s {
				n++
			}
		}
		if n >= q && s > best {
			best = s
		}
	}
	return best
}

func checkCommittedAgainstDefinition(seed uint64, f func(peer.Set, int, func(peer.ID) uint64) uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for range 2000 {
		n := 1 + r.IntN(20)
		acked := make([]uint64, n)
		for i := range acked {
			acked[i] = uint64(r.IntN(8))
		}
		q := 1 + r.IntN(n)
		got := f(ids(n), q, func(id peer.ID) uint64 { return acked[id-1] })
		if want := bruteCommitted(acked, q); got != want {
			return fmt.Errorf("acked %v q=%d: got %d, want %d", acked, q, got, want)
		}
	}
	return nil
}

func TestCommittedIndexMatchesDefinition(t *testing.T) {
	if err := checkCommittedAgainstDefinition(7, CommittedIndex); err != nil {
		t.Fatal(err)
	}
}

// TestDefinitionCheckCatchesOffByOne shows the randomized comparison above
// is not vacuous: a CommittedIndex that takes one acknowledgement too few
// (the classic "commit one short" bug) is caught.
func TestDefinitionCheckCatchesOffByOne(t *testing.T) {
	oneShort := func(m peer.Set, q int, acked func(peer.ID) uint64) uint64 {
		if q > 1 {
			q--
		}
		return CommittedIndex(m, q, acked)
	}
	if err := checkCommittedAgainstDefinition(7, oneShort); err == nil {
		t.Fatal("an off-by-one commit rule passed the definition check")
	}
}

func TestVote(t *testing.T) {
	type ans struct{ yes, answered bool }
	for _, tc := range []struct {
		n, q  int
		votes map[peer.ID]ans
		want  VoteResult
	}{
		{3, 2, nil, VotePending},
		{3, 2, map[peer.ID]ans{1: {true, true}}, VotePending},
		{3, 2, map[peer.ID]ans{1: {true, true}, 3: {true, true}}, VoteWon},
		{3, 2, map[peer.ID]ans{1: {false, true}, 2: {false, true}}, VoteLost},
		{3, 2, map[peer.ID]ans{1: {false, true}, 2: {true, true}}, VotePending},
		{5, 4, map[peer.ID]ans{1: {false, true}, 2: {false, true}}, VoteLost}, // only 3 can still say yes
		{5, 2, map[peer.ID]ans{1: {false, true}, 2: {false, true}, 3: {false, true}}, VotePending},
		{5, 2, map[peer.ID]ans{9: {true, true}, 1: {true, true}}, VotePending}, // 9 is not a member
		{1, 1, map[peer.ID]ans{1: {true, true}}, VoteWon},
		{0, 1, nil, VoteLost},
	} {
		got := Vote(ids(tc.n), tc.q, func(id peer.ID) (bool, bool) {
			a := tc.votes[id]
			return a.yes, a.answered
		})
		if got != tc.want {
			t.Errorf("n=%d q=%d votes=%v: %v, want %v", tc.n, tc.q, tc.votes, got, tc.want)
		}
	}
}

func TestSystemPhases(t *testing.T) {
	s, err := New(ids(5), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	yes := func(set ...peer.ID) func(peer.ID) (bool, bool) {
		return func(id peer.ID) (bool, bool) { return slices.Contains(set, id), slices.Contains(set, id) }
	}
	if s.Phase2(yes(1, 2)) != VoteWon || s.Phase1(yes(1, 2)) != VotePending || s.Phase1(yes(1, 2, 3, 5)) != VoteWon {
		t.Fatal("flexible phases tallied wrong")
	}
	acked := map[peer.ID]uint64{1: 9, 4: 7}
	if got := s.Committed(func(id peer.ID) uint64 { return acked[id] }); got != 7 {
		t.Fatalf("Q2=2 committed %d, want 7", got)
	}
	if !s.Members().Equal(ids(5)) || s.String() != "[1 2 3 4 5] q1=4 q2=2" {
		t.Fatalf("accessors: %v", s)
	}
}

func BenchmarkCommittedIndex5(b *testing.B) {
	members := ids(5)
	acked := []uint64{100, 98, 101, 97, 99}
	f := func(id peer.ID) uint64 { return acked[id-1] }
	b.ReportAllocs()
	for b.Loop() {
		_ = CommittedIndex(members, 3, f)
	}
}
