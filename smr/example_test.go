package smr_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/chorus-project/chorus/smr"
)

// counter is a StateMachine holding one number; every command adds one.
// The member calls it from one goroutine, so it needs no lock.
type counter struct{ n uint64 }

func (c *counter) Apply(cmd []byte) []byte {
	c.n++
	return []byte(strconv.FormatUint(c.n, 10))
}

func (c *counter) Query(q []byte) []byte { return []byte(strconv.FormatUint(c.n, 10)) }

func (c *counter) Snapshot(w io.Writer) error {
	_, err := w.Write(binary.BigEndian.AppendUint64(nil, c.n))
	return err
}

func (c *counter) Restore(r io.Reader) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	c.n = binary.BigEndian.Uint64(b[:])
	return nil
}

// A single-member cluster: it leads as soon as its election timeout passes.
func Example() {
	dir, err := os.MkdirTemp("", "smr-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	cfg := smr.DefaultConfig(1, 1, []smr.Peer{{ID: 1, Addr: "127.0.0.1:0"}}, filepath.Join(dir, "m1"))
	cfg.Bootstrap = true
	cfg.TickInterval = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := smr.Start(ctx, cfg, &counter{})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	for i := 0; i < 3; {
		res, err := m.Propose(ctx, []byte("inc"))
		if errors.Is(err, smr.ErrNotLeader) {
			// Not elected yet: try again a tick later, until ctx ends.
			select {
			case <-ctx.Done():
				panic(ctx.Err())
			case <-time.After(cfg.TickInterval):
			}
			continue
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("applied: %s\n", res)
		i++
	}
	v, err := m.Read(ctx, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("read: %s\n", v)
	// Output:
	// applied: 1
	// applied: 2
	// applied: 3
	// read: 3
}

// freeAddrs returns n loopback addresses with ports free right now, below
// the kernel's ephemeral range so that outbound connections cannot take
// them in the meantime.
func freeAddrs(n int) []string {
	var addrs []string
	for len(addrs) < n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs
}

// Three members on loopback: a client proposes to any member and follows
// the leader hint of ErrNotLeader.
func Example_threeMembers() {
	dir, err := os.MkdirTemp("", "smr-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	addrs := freeAddrs(3)
	peers := []smr.Peer{{ID: 1, Addr: addrs[0]}, {ID: 2, Addr: addrs[1]}, {ID: 3, Addr: addrs[2]}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	members := map[smr.MemberID]*smr.Member{}
	for _, p := range peers {
		cfg := smr.DefaultConfig(7, p.ID, peers, filepath.Join(dir, fmt.Sprint(p.ID)))
		cfg.Bootstrap = true
		cfg.TickInterval = 10 * time.Millisecond
		m, err := smr.Start(ctx, cfg, &counter{})
		if err != nil {
			panic(err)
		}
		defer m.Close()
		members[p.ID] = m
	}

	target := smr.MemberID(1)
	for i := 0; i < 3; {
		res, err := members[target].Propose(ctx, []byte("inc"))
		var nl *smr.NotLeaderError
		if errors.As(err, &nl) {
			if nl.Leader != 0 {
				target = nl.Leader // the hint: retry at the leader
			} else {
				// No leader elected yet: try again a tick later.
				select {
				case <-ctx.Done():
					panic(ctx.Err())
				case <-time.After(10 * time.Millisecond):
				}
			}
			continue
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("applied: %s\n", res)
		i++
	}
	v, err := members[target].Read(ctx, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("read at the leader: %s\n", v)
	// Output:
	// applied: 1
	// applied: 2
	// applied: 3
	// read at the leader: 3
}
