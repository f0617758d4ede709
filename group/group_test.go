package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/wire"
)

func sendAll(t *testing.T, ms []*member, perMember int, o Order) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, len(ms))
	for _, m := range ms {
		go func() {
			for i := range perMember {
				if err := m.g.Send(ctx, fmt.Appendf(nil, "m%d-%d", m.host.ID(), i), o); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range ms {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func equalLogs(ms []*member, want int) bool {
	first := ms[0].app.snapshotEntries()
	if len(first) != want {
		return false
	}
	for _, m := range ms[1:] {
		if !slices.EqualFunc(first, m.app.snapshotEntries(), bytes.Equal) {
			return false
		}
	}
	return true
}

func TestTotalOrderAcrossMembers(t *testing.T) {
	ms := startGroup(t, 3, nil)
	sendAll(t, ms, 200, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 600) }, "600 total deliveries in one order at all members")
	// FIFO per sender holds too: each sender's messages appear in send order.
	for _, m := range ms {
		next := map[string]int{}
		for _, e := range m.app.snapshotEntries() {
			var id, i int
			fmt.Sscanf(string(e), "m%d-%d", &id, &i)
			k := fmt.Sprint(id)
			if next[k] != i {
				t.Fatalf("member %d: %s out of sender order (want index %d)", m.host.ID(), e, next[k])
			}
			next[k]++
		}
	}
}

func TestSafeAndFIFO(t *testing.T) {
	ms := startGroup(t, 3, nil)
	sendAll(t, ms, 50, Safe)
	sendAll(t, ms, 50, FIFO)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 150) }, "150 safe deliveries")
	waitFor(t, 20*time.Second, func() bool {
		for _, m := range ms {
			m.app.mu.Lock()
			ok := len(m.app.fifo) == 3
			for _, seqs := range m.app.fifo {
				ok = ok && len(seqs) == 50 && slices.IsSorted(seqs)
			}
			m.app.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	}, "50 FIFO messages of each sender, in order, at every member")
}

func TestJoinerReceivesState(t *testing.T) {
	// A small spool and small chunks: the state goes through a temporary
	// file and many chunks.
	tweak := func(c *Config) {
		c.SpoolMemoryBytesMax = 1 << 10
		c.VSync.ChunkBytesMax = 512
	}
	ms := startGroup(t, 2, tweak)
	sendAll(t, ms, 300, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 600) }, "600 deliveries")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHost(t, 3)
	app := newLogApp()
	g := joinMember(t, ctx, h, false, []Member{{ID: 2, Addr: ms[1].host.Addr()}}, app, tweak)
	all := append(ms, &member{host: h, g: g, app: app})
	sendAll(t, all, 20, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(all, 660) }, "the joiner's state equal to the others'")
	if app.restores != 1 {
		t.Fatalf("restores = %d, want 1", app.restores)
	}
}

func TestFailedRestoreRetriesAsNewIncarnation(t *testing.T) {
	ms := startGroup(t, 2, nil)
	sendAll(t, ms, 50, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 100) }, "100 deliveries")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHost(t, 3)
	app := newLogApp()
	app.failRestore = 1
	g := joinMember(t, ctx, h, false, []Member{{ID: 1, Addr: ms[0].host.Addr()}}, app, nil)
	all := append(ms, &member{host: h, g: g, app: app})
	waitFor(t, 20*time.Second, func() bool { return equalLogs(all, 100) }, "the joiner restored on its second attempt")
	if app.restores != 2 {
		t.Fatalf("restores = %d, want 2", app.restores)
	}
	// The first incarnation is replaced in the views by the second.
	inc := g.View().Members[slices.IndexFunc(g.View().Members, func(m Member) bool { return m.ID == 3 })].Incarnation
	if inc == 0 {
		t.Fatal("no incarnation")
	}
}

func TestJoinGivesUpAfterAttempts(t *testing.T) {
	// Two members, so that the group keeps a majority of the view that
	// added the joiner's failed incarnation and can replace it.
	ms := startGroup(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHost(t, 3)
	app := newLogApp()
	app.failRestore = 100
	_, err := Join(ctx, Config{Host: h, GroupID: 1, Contacts: []Member{{ID: 1, Addr: ms[0].host.Addr()}},
		TickInterval: 5 * time.Millisecond, VSync: fastVSync(), JoinAttemptsMax: 1}, app)
	if !errors.Is(err, ErrStopped) || !errors.Is(err, ErrStateTransfer) {
		t.Fatalf("Join = %v, want ErrStopped wrapping ErrStateTransfer", err)
	}
	if len(app.snapshotEntries()) != 0 {
		t.Fatal("partial state kept")
	}
}

func TestCrashExcludesAndGroupContinues(t *testing.T) {
	ms := startGroup(t, 3, nil)
	sendAll(t, ms, 20, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 60) }, "60 deliveries")
	ms[2].g.Close()
	ms[2].host.Close()
	live := ms[:2]
	waitFor(t, 20*time.Second, func() bool {
		for _, m := range live {
			if len(m.g.View().Members) != 2 {
				return false
			}
		}
		return true
	}, "a view without the crashed member")
	sendAll(t, live, 20, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(live, 100) }, "delivery goes on")
}

func TestLeave(t *testing.T) {
	ms := startGroup(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ms[1].g.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].g.Send(ctx, []byte("x"), Total); err == nil {
		t.Fatal("Send after Leave succeeded")
	}
	waitFor(t, 20*time.Second, func() bool {
		v := ms[0].g.View()
		return len(v.Members) == 2 && !slices.ContainsFunc(v.Members, func(m Member) bool { return m.ID == 2 })
	}, "a view without the leaver")
}

func TestQueryGathersReplies(t *testing.T) {
	ms := startGroup(t, 3, nil)
	sendAll(t, ms, 5, Total)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	replies, err := ms[1].g.Query(ctx, []byte("count"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 3 {
		t.Fatalf("%d replies, want 3", len(replies))
	}
	for _, r := range replies {
		// Delivered at the same point of the total order: every member
		// had applied the same messages.
		if !bytes.Equal(r.Payload, replies[0].Payload) {
			t.Fatalf("replies differ: %d says %q, %d says %q", r.From, r.Payload, replies[0].From, replies[0].Payload)
		}
	}
	one, err := ms[0].g.Query(ctx, []byte("count"), 1)
	if err != nil || len(one) != 1 {
		t.Fatalf("Query(1) = %v, %v", one, err)
	}
}

func TestBadInput(t *testing.T) {
	ms := startGroup(t, 1, nil)
	ctx := context.Background()
	if err := ms[0].g.Send(ctx, make([]byte, ms[0].g.cfg.PayloadBytesMax()+1), Total); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Send = %v", err)
	}
	if err := ms[0].g.Send(ctx, nil, Order(9)); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad order = %v", err)
	}
	for _, c := range []Config{
		{GroupID: 1, Bootstrap: true},
		{Host: ms[0].host, Bootstrap: true},
		{Host: ms[0].host, GroupID: 2},
		{Host: ms[0].host, GroupID: 2, Contacts: []Member{{ID: 9}}},
		{Host: ms[0].host, GroupID: 1, Bootstrap: true}, // already in group 1
	} {
		if _, err := Join(ctx, c, newLogApp()); !errors.Is(err, ErrConfig) {
			t.Errorf("Join(%+v) = %v, want ErrConfig", c, err)
		}
	}
	// A peer speaking for a group this host is not in, garbage addresses
	// and an undecodable protocol message: dropped, counted, the group
	// runs on.
	other := newHost(t, 9)
	other.setPeer(1, ms[0].host.Addr())
	other.send(wire.Envelope{Kind: kindAddrs, Channel: 99, From: 9, To: 1, Payload: []byte{1}})
	other.send(wire.Envelope{Kind: kindAddrs, Channel: 1, From: 9, To: 1, Payload: []byte{200, 1}})
	other.send(wire.Envelope{Kind: 0x0231, Channel: 1, From: 9, To: 1, Payload: []byte{0xff}})
	waitFor(t, 5*time.Second, func() bool { u, _ := ms[0].host.Dropped(); return u >= 1 }, "the unknown group's envelope counted")
	if err := ms[0].g.Send(ctx, []byte("still here"), Total); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(ms[0].app.snapshotEntries()) == 1 }, "delivery after bad input")
}

func TestFounders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := []*Host{newHost(t, 1), newHost(t, 2), newHost(t, 3)}
	var founders []Member
	for _, h := range hosts {
		founders = append(founders, Member{ID: h.ID(), Addr: h.Addr(), Incarnation: 5})
	}
	// Founders 1 and 2 start; 3 starts late, after the others excluded it.
	var ms []*member
	for _, h := range hosts[:2] {
		app := newLogApp()
		g := joinMember(t, ctx, h, false, nil, app, func(c *Config) { c.Founders, c.Incarnation = founders, 5 })
		ms = append(ms, &member{host: h, g: g, app: app})
	}
	if v := ms[0].g.View(); v.ID != 1 || len(v.Members) != 3 {
		t.Fatalf("founder's first view %+v, want view 1 of 3", v)
	}
	sendAll(t, ms, 30, Total)
	waitFor(t, 20*time.Second, func() bool { return len(ms[0].g.View().Members) == 2 }, "the absent founder excluded")
	app := newLogApp()
	g := joinMember(t, ctx, hosts[2], false, nil, app, func(c *Config) { c.Founders, c.Incarnation = founders, 5 })
	all := append(ms, &member{host: hosts[2], g: g, app: app})
	waitFor(t, 20*time.Second, func() bool { return equalLogs(all, 60) }, "the late founder rejoined with the state")
	if app.restores != 1 {
		t.Fatalf("restores = %d, want 1", app.restores)
	}
	bad := Config{Host: newHost(t, 4), GroupID: 1, Founders: founders, Incarnation: 5}
	if _, err := Join(ctx, bad, newLogApp()); !errors.Is(err, ErrConfig) {
		t.Fatalf("a founder list without this host: %v", err)
	}
}

// TestTwoGroupsOneHost: two groups over the same three Hosts (one
// transport each) keep their views, messages and states apart.
func TestTwoGroupsOneHost(t *testing.T) {
	ms := startGroup(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var second []*member
	for i, m := range ms {
		app := newLogApp()
		tweak := func(c *Config) { c.GroupID = 2 }
		var contacts []Member
		if i > 0 {
			contacts = []Member{{ID: 1, Addr: ms[0].host.Addr()}}
		}
		second = append(second, &member{host: m.host, app: app, g: joinMember(t, ctx, m.host, i == 0, contacts, app, tweak)})
	}
	waitFor(t, 20*time.Second, func() bool {
		for _, m := range second {
			if len(m.g.View().Members) != 3 {
				return false
			}
		}
		return true
	}, "the second group at three members")
	sendAll(t, ms, 30, Total)
	sendAll(t, second, 10, Total)
	waitFor(t, 20*time.Second, func() bool { return equalLogs(ms, 90) && equalLogs(second, 30) },
		"90 deliveries in group 1 and 30 in group 2, each in one order")
}

// TestPackedSends: Sends that wait together go out packed; every member
// still delivers each message once, in send order per sender and in one
// total order, with Part numbering the messages of one multicast.
func TestPackedSends(t *testing.T) {
	ms := startGroup(t, 3, nil)
	parts := make([]map[int]int, len(ms)) // per member: Part -> count
	for i, m := range ms {
		parts[i] = map[int]int{}
		m.app.onDeliver = func(msg Message) { parts[i][msg.Part]++ }
	}
	sendAll(t, ms, 2000, Total)
	waitFor(t, 30*time.Second, func() bool { return equalLogs(ms, 6000) }, "6000 deliveries in one order")
	for i := range ms {
		ms[i].app.mu.Lock()
		packed := parts[i][1]
		ms[i].app.mu.Unlock()
		if packed == 0 {
			t.Errorf("member %d: no message arrived packed (Part 1 never seen) in 6000", i+1)
		}
	}
}

func TestDecodePacked(t *testing.T) {
	p := appendPacked(nil, [][]byte{[]byte("a"), nil, []byte("ccc")})
	if len(p) != packedBytes([][]byte{[]byte("a"), nil, []byte("ccc")}) {
		t.Fatalf("packedBytes %d, encoded %d", packedBytes([][]byte{[]byte("a"), nil, []byte("ccc")}), len(p))
	}
	got, err := decodePacked(p[1:], 10)
	if err != nil || len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || string(got[2]) != "ccc" {
		t.Fatalf("decodePacked = %q, %v", got, err)
	}
	for _, bad := range [][]byte{
		{},               // no count
		{1, 1, 'a'},      // one message is not packed
		{2, 1, 'a'},      // a message missing
		{2, 1, 'a', 5},   // truncated
		{2, 0, 0, 9},     // trailing bytes
		{2, 11, 'a', 0},  // over the part limit
		{200, 1, 'a', 0}, // count beyond the bytes
	} {
		if _, err := decodePacked(bad, 10); err == nil {
			t.Errorf("decodePacked(%v) accepted", bad)
		}
	}
}
