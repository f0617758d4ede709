package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chorus-project/chorus/client"
)

// chorusTxnOpsMax is the server's default txn operation limit (kv.DefaultTxnOpsMax).
const chorusTxnOpsMax = 128

// ChorusConfig configures the chorus driver.
type ChorusConfig struct {
	Endpoints []string      // HTTP host:port of the members
	Namespace string        // created as a paxos namespace if absent
	Mode      string        // replication mode of a namespace it creates; "paxos"
	Timeout   time.Duration // client.Config.Timeout
}

// Chorus drives a chorus cluster through the chorus client package. One
// client serves every worker, as an application would share one: it keeps
// one keep-alive connection per concurrent request and learns the leader.
type Chorus struct {
	c  *client.Client
	ns string
}

// NewChorus connects to the cluster and creates the namespace if it does
// not exist yet.
func NewChorus(ctx context.Context, cfg ChorusConfig) (*Chorus, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: chorus endpoints: none given", ErrBadConfig)
	}
	if cfg.Namespace == "" {
		return nil, fmt.Errorf("%w: chorus namespace: empty", ErrBadConfig)
	}
	if cfg.Mode == "" {
		cfg.Mode = "paxos"
	}
	c, err := client.New(client.Config{Endpoints: cfg.Endpoints, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("bench: chorus client: %w", err)
	}
	_, err = c.CreateNamespace(ctx, client.NamespaceSpec{Name: cfg.Namespace, Mode: cfg.Mode})
	if err != nil && !errors.Is(err, client.ErrExists) {
		c.Close()
		return nil, fmt.Errorf("bench: chorus create namespace %q (%s) via %v: %w", cfg.Namespace, cfg.Mode, cfg.Endpoints, err)
	}
	ns, err := c.Namespace(ctx, cfg.Namespace)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: chorus describe namespace %q: %w", cfg.Namespace, err)
	}
	if ns.Mode != cfg.Mode {
		c.Close()
		return nil, fmt.Errorf("%w: chorus namespace %q has mode %q, want %q", ErrBadConfig, cfg.Namespace, ns.Mode, cfg.Mode)
	}
	return &Chorus{c: c, ns: cfg.Namespace}, nil
}

// Name implements Driver.
func (ch *Chorus) Name() string { return "chorus" }

// Put implements Driver.
func (ch *Chorus) Put(ctx context.Context, _ int, key, value []byte) error {
	if _, err := ch.c.Put(ctx, ch.ns, key, value); err != nil {
		return fmt.Errorf("chorus put: %w", err)
	}
	return nil
}

// Get implements Driver; chorus's Get is linearizable (smr.Read).
func (ch *Chorus) Get(ctx context.Context, _ int, key []byte) error {
	if _, err := ch.c.Get(ctx, ch.ns, key); err != nil {
		if errors.Is(err, client.ErrKeyNotFound) {
			return fmt.Errorf("chorus get %q: %w", key, ErrNotFound)
		}
		return fmt.Errorf("chorus get: %w", err)
	}
	return nil
}

// PutBatch implements BatchPutter with one transaction of puts.
func (ch *Chorus) PutBatch(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) || len(keys) > chorusTxnOpsMax {
		return fmt.Errorf("%w: chorus batch of %d keys and %d values (max %d)", ErrBadConfig, len(keys), len(values), chorusTxnOpsMax)
	}
	t := client.Txn{Then: make([]client.Op, len(keys))}
	for i := range keys {
		t.Then[i] = client.Op{Type: client.OpPut, Key: keys[i], Value: values[i]}
	}
	if _, err := ch.c.Txn(ctx, ch.ns, t); err != nil {
		return fmt.Errorf("chorus txn of %d puts: %w", len(keys), err)
	}
	return nil
}

// BatchMax implements BatchPutter.
func (ch *Chorus) BatchMax() int { return chorusTxnOpsMax }

// Close implements Driver.
func (ch *Chorus) Close() error { return ch.c.Close() }
