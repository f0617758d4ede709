package server

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/wire"
)

// Kinds of command in the replicated log: the first byte of every command
// this package proposes, followed by a kv.EncodeRequest encoding.
const (
	// cmdData is a write to a paxos namespace's keys.
	cmdData byte = 1
	// cmdCatalog changes the catalog of namespaces (create, delete): after
	// it applies, every member refreshes its cache of namespace modes.
	cmdCatalog byte = 2
	// cmdHTTPAddr records members' HTTP addresses (uvarint count, then
	// count x {uvarint id, address as wire bytes}), so that every member can
	// forward to a member added after it started, and the new member learns
	// the others'. It does not reach kv and is not counted in
	// kv's index.
	cmdHTTPAddr byte = 3
)

// Limits of the address book.
const (
	httpAddrBytesMax = 255
	httpAddrsMax     = 1024
	// snapshotVersion heads the machine's snapshot: the address book, then
	// kv's snapshot.
	snapshotVersion byte = 1
)

// errCorruptSnapshot: the machine's snapshot header is malformed.
var errCorruptSnapshot = errors.New("server: corrupt snapshot header")

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
	// httpAddrs are members' HTTP addresses recorded through the log.
	httpAddrs map[uint64]string
}

func newMachine(cfg kv.Config) (*machine, error) {
	m, err := kv.New(cfg)
	if err != nil {
		return nil, err
	}
	return &machine{kv: m, catalog: map[string]string{}, httpAddrs: map[uint64]string{}}, nil
}

// Apply implements smr.StateMachine.
func (m *machine) Apply(cmd []byte) []byte {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	var kind byte
	if len(cmd) > 0 {
		kind, cmd = cmd[0], cmd[1:]
	}
	if kind == cmdHTTPAddr {
		return m.applyHTTPAddr(cmd)
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
//
// Format: version (1 byte, 1), count (uvarint, at most httpAddrsMax), count
// x {member id uvarint, address length uvarint, address bytes} in id order,
// then kv's snapshot (docs/kv.md).
//
// smr streams it into a snapshot file (and to a lagging follower in
// chunks), so its size is bounded only by smr's limit (4 GiB). Applying
// waits while it is written: kv has no copy-on-write snapshot, so a large
// state stalls the member for the length of a sequential write every
// SnapshotEntries commands (docs/server.md).
func (m *machine) Snapshot(w io.Writer) error {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	m.mu.RLock()
	book := maps.Clone(m.httpAddrs)
	m.mu.RUnlock()
	b := wire.NewBuffer(nil)
	b.Uint8(snapshotVersion)
	b.Uvarint(uint64(len(book)))
	for _, id := range sortedIDs(book) {
		b.Uvarint(id)
		b.String(book[id])
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return m.kv.Snapshot(w)
}

// Restore implements smr.StateMachine.
func (m *machine) Restore(r io.Reader) error {
	m.kvMu.Lock()
	defer m.kvMu.Unlock()
	br := bufio.NewReader(r)
	book, err := readBook(br)
	if err != nil {
		return err
	}
	if err := m.kv.Restore(br); err != nil {
		return err
	}
	m.mu.Lock()
	m.httpAddrs = book
	m.mu.Unlock()
	m.refreshCatalog()
	return nil
}

// readBook reads the address book at the head of a snapshot.
func readBook(br *bufio.Reader) (map[uint64]string, error) {
	v, err := br.ReadByte()
	if err != nil || v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, %v", errCorruptSnapshot, v, err)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > httpAddrsMax {
		return nil, fmt.Errorf("%w: %d addresses, %v", errCorruptSnapshot, n, err)
	}
	book := make(map[uint64]string, n)
	for range n {
		id, err1 := binary.ReadUvarint(br)
		l, err2 := binary.ReadUvarint(br)
		if err := errors.Join(err1, err2); err != nil || l > httpAddrBytesMax {
			return nil, fmt.Errorf("%w: address entry: %v", errCorruptSnapshot, err)
		}
		addr := make([]byte, l)
		if _, err := io.ReadFull(br, addr); err != nil {
			return nil, fmt.Errorf("%w: address: %w", errCorruptSnapshot, err)
		}
		book[id] = string(addr)
	}
	return book, nil
}

func encodeHTTPAddrs(book map[uint64]string) []byte {
	b := wire.NewBuffer(nil)
	b.Uint8(cmdHTTPAddr)
	b.Uvarint(uint64(len(book)))
	for _, id := range sortedIDs(book) {
		b.Uvarint(id)
		b.String(book[id])
	}
	return b.Bytes()
}

// applyHTTPAddr records members' HTTP addresses; a malformed command is
// skipped alike on every member.
func (m *machine) applyHTTPAddr(p []byte) []byte {
	r := wire.NewReader(p)
	n := r.Count(httpAddrsMax, 2)
	book := make(map[uint64]string, n)
	for range n {
		id := r.Uvarint()
		book[id] = r.String(httpAddrBytesMax)
	}
	if r.Done() != nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range sortedIDs(book) {
		if _, ok := m.httpAddrs[id]; id != 0 && (ok || len(m.httpAddrs) < httpAddrsMax) {
			m.httpAddrs[id] = book[id]
		}
	}
	return nil
}

// httpAddrs returns a copy of the recorded HTTP addresses.
func (m *machine) httpAddrBook() map[uint64]string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return maps.Clone(m.httpAddrs)
}

// httpAddr returns the HTTP address recorded for member id.
func (m *machine) httpAddr(id uint64) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.httpAddrs[id]
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
