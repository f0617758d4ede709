package server

import (
	"encoding/hex"
	"io"
	"sync"

	"github.com/chorus-project/chorus/internal/kv"
)

// Kinds of command in the replicated log: the first byte of every command
// this package proposes, followed by a kv.EncodeRequest encoding.
const (
	// cmdData is a write to a paxos namespace's keys.
	cmdData byte = 1
	// cmdCatalog changes the catalog of namespaces (create, delete): after
	// it applies, every member refreshes its cache of namespace modes.
	cmdCatalog byte = 2
)

// machine is the smr.StateMachine of a server: one kv.Machine holding the
// catalog of namespaces and the keys of every paxos namespace.
//
// smr calls Apply, Query, Snapshot and Restore on its one goroutine; the
// catalog cache is also read by request goroutines, hence mu.
//
// smr's StateMachine.Apply does not pass the log slot, and kv.Machine.Apply
// needs a strictly increasing index: machine passes AppliedIndex()+1, a
// count of the commands applied. That count is the same on every member
// (they apply the same commands in the same order; smr skips deduplicated
// retries on all of them alike) and survives restarts in kv's snapshot.
// It differs from smr's slot numbers (which also count no-ops, membership
// and address entries), so the ModIndex a client sees is a count of applied
// data and catalog commands, not a log slot.
type machine struct {
	// kvMu guards kv: smr calls it on its goroutine, and Status asks for a
	// digest from request goroutines. Uncontended except during a digest.
	kvMu sync.Mutex
	kv   *kv.Machine
	// digestIndex and digestHex cache the digest of the state at an
	// applied index (guarded by kvMu).
	digestIndex uint64
	digestHex   string

	mu      sync.RWMutex
	catalog map[string]string // namespace -> mode
}

func newMachine(cfg kv.Config) (*machine, error) {
	m, err := kv.New(cfg)
	if err != nil {
		return nil, err
	}
	return &machine{kv: m, catalog: map[string]string{}}, nil
}

// Apply implements smr.StateMachine.
func (m *machine) Apply(cmd []byte) []byte {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	var kind byte
	if len(cmd) > 0 {
		kind, cmd = cmd[0], cmd[1:]
	}
	// A command this package did not write is still a log entry: kv
	// answers it with CodeBadRequest and counts it, on every member alike.
	res := m.kv.Apply(m.kv.AppliedIndex()+1, cmd)
	if kind == cmdCatalog {
		m.refreshCatalog()
	}
	return res
}

// Query implements smr.StateMachine.
func (m *machine) Query(q []byte) []byte {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	return m.kv.Query(q)
}

// Snapshot implements smr.StateMachine.
func (m *machine) Snapshot(w io.Writer) error {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	return m.kv.Snapshot(w)
}

// Restore implements smr.StateMachine.
func (m *machine) Restore(r io.Reader) error {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	if err := m.kv.Restore(r); err != nil {
		return err
	}
	m.refreshCatalog()
	return nil
}

// refreshCatalog rebuilds the cache of namespace modes from the kv state.
// It runs on smr's goroutine, after a catalog command or a restore.
func (m *machine) refreshCatalog() {
	res, err := kv.DecodeResponse(m.kv.Query(kv.EncodeRequest(kv.Request{Kind: kv.KindListNamespaces})))
	if err != nil || res.Code != kv.CodeOK {
		return // cannot happen with a well-formed request; keep the old cache
	}
	cat := make(map[string]string, len(res.Namespaces))
	for _, ns := range res.Namespaces {
		cat[ns.Spec.Name] = ns.Spec.Mode
	}
	m.mu.Lock()
	m.catalog = cat
	m.mu.Unlock()
}

// mode returns a namespace's mode as this member last applied it ("" when
// it does not know the namespace).
func (m *machine) mode(ns string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.catalog[ns]
}

// digest returns the hex sha256 of the state and the count of commands it
// covers. It costs a pass over the whole state when the state changed since
// the last call, during which applying waits: for status pages and tests,
// not for hot paths.
func (m *machine) digest() (string, uint64) {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	idx := m.kv.AppliedIndex()
	if m.digestHex == "" || m.digestIndex != idx {
		d := m.kv.Digest()
		m.digestHex, m.digestIndex = hex.EncodeToString(d[:]), idx
	}
	return m.digestHex, idx
}
