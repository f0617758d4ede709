package group_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/chorus-project/chorus/group"
)

// counter is an application whose state is one number that every Total
// message adds to.
type counter struct {
	mu  sync.Mutex
	sum uint64
}

func (c *counter) Deliver(m group.Message) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Query {
		return binary.BigEndian.AppendUint64(nil, c.sum)
	}
	c.sum += binary.BigEndian.Uint64(m.Payload)
	return nil
}

func (c *counter) ViewChange(v group.View) {}

func (c *counter) Snapshot(w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := w.Write(binary.BigEndian.AppendUint64(nil, c.sum))
	return err
}

func (c *counter) Restore(r io.Reader) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	c.mu.Lock()
	c.sum = binary.BigEndian.Uint64(b[:])
	c.mu.Unlock()
	return nil
}

// A group of two processes (here two Hosts in one process, on loopback):
// the first bootstraps the group, the second joins and receives the state
// by state transfer; a query then reads the same state at both.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h1, err := group.NewHost(group.HostConfig{ID: 1, ClusterID: 42, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer h1.Close()
	a := &counter{}
	g1, err := group.Join(ctx, group.Config{Host: h1, GroupID: 1, Bootstrap: true}, a)
	if err != nil {
		panic(err)
	}
	defer g1.Close()
	for i := uint64(1); i <= 10; i++ {
		if err := g1.Send(ctx, binary.BigEndian.AppendUint64(nil, i), group.Total); err != nil {
			panic(err)
		}
	}

	// Send returns once the message is queued; a query of one's own, ordered
	// after one's sends, is a barrier: when it returns, all ten were
	// delivered here.
	if _, err := g1.Query(ctx, nil, 1); err != nil {
		panic(err)
	}

	h2, err := group.NewHost(group.HostConfig{ID: 2, ClusterID: 42, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer h2.Close()
	b := &counter{}
	g2, err := group.Join(ctx, group.Config{Host: h2, GroupID: 1, Contacts: []group.Member{{ID: 1, Addr: h1.Addr()}}}, b)
	if err != nil {
		panic(err)
	}
	defer g2.Close()

	replies, err := g2.Query(ctx, nil, 0)
	if err != nil {
		panic(err)
	}
	for _, r := range replies {
		fmt.Printf("member %d: sum %d\n", r.From, binary.BigEndian.Uint64(r.Payload))
	}
	fmt.Println("view size:", len(g2.View().Members))
	// Unordered output:
	// member 1: sum 55
	// member 2: sum 55
	// view size: 2
}

// dataset is a replicated list of numbers. A query asks for the sum of
// squares; each member evaluates only the items its rank owns, at the same
// point of the total order, and the querier merges the parts.
type dataset struct {
	mu    sync.Mutex
	items []uint64
	rank  int
	size  int
}

func (d *dataset) Deliver(m group.Message) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !m.Query {
		d.items = append(d.items, binary.BigEndian.Uint64(m.Payload))
		return nil
	}
	var part uint64
	for i := d.rank; i < len(d.items); i += d.size { // this rank's share
		part += d.items[i] * d.items[i]
	}
	return binary.BigEndian.AppendUint64(nil, part)
}

// ViewChange is called before any delivery of the view, so every member
// splits a query delivered in view v by the same rank and size.
func (d *dataset) ViewChange(v group.View) {
	d.mu.Lock()
	d.rank, d.size = v.Rank, len(v.Members)
	d.mu.Unlock()
}

func (d *dataset) Snapshot(w io.Writer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, uint64(len(d.items)))
	for _, x := range d.items {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	_, err := w.Write(b)
	return err
}

func (d *dataset) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(b) < 8 || uint64(len(b)-8) != 8*binary.BigEndian.Uint64(b) {
		return fmt.Errorf("dataset: bad snapshot of %d bytes", len(b))
	}
	items := make([]uint64, 0, (len(b)-8)/8)
	for i := 8; i < len(b); i += 8 {
		items = append(items, binary.BigEndian.Uint64(b[i:]))
	}
	d.mu.Lock()
	d.items = items
	d.mu.Unlock()
	return nil
}

// Three members split a query by rank: each sums the squares of every
// third item, and the merged parts equal the answer of one member alone.
func Example_splitByRank() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var groups []*group.Group
	var first string
	for id := group.MemberID(1); id <= 3; id++ {
		h, err := group.NewHost(group.HostConfig{ID: id, ClusterID: 43, ListenAddr: "127.0.0.1:0"})
		if err != nil {
			panic(err)
		}
		defer h.Close()
		cfg := group.Config{Host: h, GroupID: 1, Bootstrap: id == 1}
		if id == 1 {
			first = h.Addr()
		} else {
			cfg.Contacts = []group.Member{{ID: 1, Addr: first}}
		}
		g, err := group.Join(ctx, cfg, &dataset{})
		if err != nil {
			panic(err)
		}
		defer g.Close()
		groups = append(groups, g)
	}
	for len(groups[0].View().Members) < 3 {
		time.Sleep(time.Millisecond)
	}
	var want uint64
	for i := uint64(1); i <= 1000; i++ {
		want += i * i
		if err := groups[0].Send(ctx, binary.BigEndian.AppendUint64(nil, i), group.Total); err != nil {
			panic(err)
		}
	}
	// The query comes from the member that sent the items: a sender's
	// Total messages are ordered in its send order, so every member
	// evaluates it after all 1000 items.
	parts, err := groups[0].Query(ctx, []byte("sum of squares"), 0)
	if err != nil {
		panic(err)
	}
	var got uint64
	for _, p := range parts {
		got += binary.BigEndian.Uint64(p.Payload)
	}
	fmt.Println("parts:", len(parts), "merged equals one member's answer:", got == want)
	// Output:
	// parts: 3 merged equals one member's answer: true
}
