package peer

import (
	"slices"
	"testing"
)

func TestNewSetSortsAndRejectsBadIDs(t *testing.T) {
	s, err := NewSet(3, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.IDs(); !slices.Equal(got, []ID{1, 2, 3}) {
		t.Fatalf("IDs() = %v, want [1 2 3]", got)
	}
	for _, bad := range [][]ID{{1, 0}, {2, 1, 2}} {
		if _, err := NewSet(bad...); err == nil {
			t.Errorf("NewSet(%v) accepted a bad set", bad)
		}
	}
}

func TestSetAddRemoveDoNotAlias(t *testing.T) {
	base := MustSet(1, 3, 5)
	added := base.Add(4)
	removed := base.Remove(3)
	if !base.Equal(MustSet(1, 3, 5)) {
		t.Fatalf("base changed to %v", base)
	}
	if !added.Equal(MustSet(1, 3, 4, 5)) || !removed.Equal(MustSet(1, 5)) {
		t.Fatalf("added %v removed %v", added, removed)
	}
	// Two Adds from one base must not share storage.
	a, b := base.Add(2), base.Add(6)
	if !a.Equal(MustSet(1, 2, 3, 5)) || !b.Equal(MustSet(1, 3, 5, 6)) {
		t.Fatalf("a %v b %v", a, b)
	}
	if base.Add(None).Len() != 3 || base.Add(3).Len() != 3 || base.Remove(9).Len() != 3 {
		t.Fatal("no-op Add/Remove changed the set")
	}
}

func TestSetIteratesInOrder(t *testing.T) {
	var got []ID
	for id := range MustSet(9, 2, 7).All() {
		got = append(got, id)
		if id == 7 {
			break
		}
	}
	if !slices.Equal(got, []ID{2, 7}) {
		t.Fatalf("iteration %v, want [2 7]", got)
	}
	if !MustSet(2).Contains(2) || MustSet(2).Contains(3) {
		t.Fatal("Contains is wrong")
	}
}

func TestStrings(t *testing.T) {
	if None.String() != "none" || ID(4).String() != "4" {
		t.Fatal("ID.String")
	}
	if (Member{ID: 4, Incarnation: 2}).String() != "4.2" {
		t.Fatal("Member.String")
	}
}
