package bench

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdTxnOpsMax is etcd's default --max-txn-ops; a preload batch stays under it.
const etcdTxnOpsMax = 128

// etcdConnsMax bounds the client pool.
const etcdConnsMax = 64

// EtcdConfig configures the etcd driver.
type EtcdConfig struct {
	Endpoints   []string      // host:port of every member's client URL
	Conns       int           // clientv3 clients in the pool; worker i uses conns[i % Conns]
	DialTimeout time.Duration // for the first connection of each client
}

// Etcd drives an etcd cluster through go.etcd.io/etcd/client/v3. Like an
// application would, it shares a few clients among the workers: each clientv3
// is one gRPC connection per endpoint that multiplexes concurrent requests,
// balanced round-robin over the endpoints.
type Etcd struct {
	clients []*clientv3.Client
}

// NewEtcd connects cfg.Conns clients to the cluster and checks that it
// answers (a linearizable get) before returning.
func NewEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: etcd endpoints: none given", ErrBadConfig)
	}
	if cfg.Conns < 1 || cfg.Conns > etcdConnsMax {
		return nil, fmt.Errorf("%w: etcd conns %d not in [1, %d]", ErrBadConfig, cfg.Conns, etcdConnsMax)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	e := &Etcd{}
	for range cfg.Conns {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			Context:     ctx,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("bench: etcd connect %v: %w", cfg.Endpoints, err)
		}
		e.clients = append(e.clients, c)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := e.clients[0].Get(pctx, "bench-ping"); err != nil {
		e.Close()
		return nil, fmt.Errorf("bench: etcd %v not answering: %w", cfg.Endpoints, err)
	}
	return e, nil
}

// Name implements Driver.
func (e *Etcd) Name() string { return "etcd" }

func (e *Etcd) client(worker int) *clientv3.Client {
	return e.clients[worker%len(e.clients)]
}

// Put implements Driver.
func (e *Etcd) Put(ctx context.Context, worker int, key, value []byte) error {
	if _, err := e.client(worker).Put(ctx, string(key), string(value)); err != nil {
		return fmt.Errorf("etcd put: %w", err)
	}
	return nil
}

// Get implements Driver; etcd's default read is linearizable (a ReadIndex
// round through the leader).
func (e *Etcd) Get(ctx context.Context, worker int, key []byte) error {
	resp, err := e.client(worker).Get(ctx, string(key))
	if err != nil {
		return fmt.Errorf("etcd get: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("etcd get %q: %w", key, ErrNotFound)
	}
	return nil
}

// PutBatch implements BatchPutter with one transaction of puts.
func (e *Etcd) PutBatch(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) || len(keys) > etcdTxnOpsMax {
		return fmt.Errorf("%w: etcd batch of %d keys and %d values (max %d)", ErrBadConfig, len(keys), len(values), etcdTxnOpsMax)
	}
	ops := make([]clientv3.Op, len(keys))
	for i := range keys {
		ops[i] = clientv3.OpPut(string(keys[i]), string(values[i]))
	}
	if _, err := e.clients[0].Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("etcd txn of %d puts: %w", len(keys), err)
	}
	return nil
}

// BatchMax implements BatchPutter.
func (e *Etcd) BatchMax() int { return etcdTxnOpsMax }

// Close implements Driver.
func (e *Etcd) Close() error {
	var first error
	for _, c := range e.clients {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	e.clients = nil
	return first
}
