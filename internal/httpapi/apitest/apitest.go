// Package apitest runs a cluster of chorus servers with their HTTP APIs in
// one process on loopback, for tests and examples.
package apitest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/chorus-project/chorus/internal/httpapi"
	"github.com/chorus-project/chorus/internal/server"
)

// Options tune a Cluster.
type Options struct {
	// Config adjusts each member's server.Config before it starts.
	Config func(*server.Config)
	// API is the httpapi.Config of every member.
	API httpapi.Config
}

// Cluster is n members, each with its server and HTTP API.
type Cluster struct {
	Dir       string
	opts      Options
	Peers     map[uint64]string
	HTTPPeers map[uint64]string
	Servers   map[uint64]*server.Server
	https     map[uint64]*http.Server
}

// Start starts n members with their data under dir and waits until one
// leads.
func Start(ctx context.Context, dir string, n int, opts Options) (*Cluster, error) {
	c := &Cluster{Dir: dir, opts: opts, Peers: map[uint64]string{}, HTTPPeers: map[uint64]string{},
		Servers: map[uint64]*server.Server{}, https: map[uint64]*http.Server{}}
	addrs, err := FreeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	for i := range n {
		id := uint64(i + 1)
		c.Peers[id], c.HTTPPeers[id] = addrs[2*i], addrs[2*i+1]
	}
	for id := range c.Peers {
		if err := c.StartMember(ctx, id); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// StartMember (re)starts member id from its data directory.
func (c *Cluster) StartMember(ctx context.Context, id uint64) error {
	cfg := server.DefaultConfig()
	cfg.ClusterID, cfg.ID = 42, id
	cfg.DataDir = filepath.Join(c.Dir, strconv.FormatUint(id, 10))
	cfg.PeerAddr, cfg.HTTPAddr = c.Peers[id], c.HTTPPeers[id]
	cfg.Peers, cfg.HTTPPeers = clone(c.Peers), clone(c.HTTPPeers)
	cfg.Bootstrap = true
	cfg.TickInterval = 10 * time.Millisecond
	if c.opts.Config != nil {
		c.opts.Config(&cfg)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("apitest: listen member %d: %w", id, err)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{Handler: httpapi.New(srv, c.opts.API), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at Close
	c.Servers[id], c.https[id] = srv, hs
	return nil
}

// StopMember stops member id (HTTP and server).
func (c *Cluster) StopMember(id uint64) error {
	hs, srv := c.https[id], c.Servers[id]
	if srv == nil {
		return nil
	}
	delete(c.https, id)
	delete(c.Servers, id)
	hs.Close()
	return srv.Close()
}

// WaitLeader waits until a running member leads and every running member
// knows it, and returns its id.
func (c *Cluster) WaitLeader(ctx context.Context) (uint64, error) {
	for {
		var leader uint64
		for _, s := range c.Servers {
			if st := s.Status(); st.Role == "leader" {
				leader = st.ID
			}
		}
		agree := leader != 0
		for _, s := range c.Servers {
			agree = agree && s.Status().Leader == leader
		}
		if agree {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("apitest: no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// URL is the base URL of member id's API.
func (c *Cluster) URL(id uint64) string { return "http://" + c.HTTPPeers[id] }

// Endpoints lists every member's HTTP address.
func (c *Cluster) Endpoints() []string {
	var out []string
	for id := uint64(1); id <= uint64(len(c.HTTPPeers)); id++ {
		out = append(out, c.HTTPPeers[id])
	}
	return out
}

// Close stops every member.
func (c *Cluster) Close() error {
	var errs []error
	for id := range c.Servers {
		errs = append(errs, c.StopMember(id))
	}
	return errors.Join(errs...)
}

func clone(m map[uint64]string) map[uint64]string {
	out := make(map[uint64]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FreeAddrs returns n loopback addresses whose ports are free right now,
// drawn below Linux's ephemeral range so that outbound connections do not
// take them while a member is down.
func FreeAddrs(n int) ([]string, error) {
	var (
		addrs []string
		lns   []net.Listener
	)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("apitest: no free ports")
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}
