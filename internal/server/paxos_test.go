package server

import (
	"bytes"
	"errors"
	"testing"

	"github.com/chorus-project/chorus/internal/kv"
)

// TestMachineSnapshot: the address book and the kv state survive a
// snapshot round trip; a corrupt header is refused and changes nothing.
func TestMachineSnapshot(t *testing.T) {
	m, err := newMachine(kv.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	create := kv.EncodeRequest(kv.Request{Kind: kv.KindCreateNamespace, Spec: kv.NamespaceSpec{Name: "a", Mode: "paxos"}})
	m.Apply(append([]byte{cmdCatalog}, create...))
	m.Apply(encodeHTTPAddrs(map[uint64]string{4: "127.0.0.1:4", 5: "127.0.0.1:5"}))
	if m.mode("a") != "paxos" || m.httpAddr(4) != "127.0.0.1:4" {
		t.Fatalf("apply: mode %q, address %q", m.mode("a"), m.httpAddr(4))
	}
	var snap bytes.Buffer
	if err := m.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	r, _ := newMachine(kv.DefaultConfig())
	if err := r.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	d1, n1 := m.digest()
	d2, n2 := r.digest()
	if d1 != d2 || n1 != n2 || r.mode("a") != "paxos" || r.httpAddr(5) != "127.0.0.1:5" {
		t.Errorf("restored machine differs: %s/%d vs %s/%d, mode %q, address %q", d1, n1, d2, n2, r.mode("a"), r.httpAddr(5))
	}
	for _, bad := range [][]byte{nil, {9}, {snapshotVersion, 0xff, 0xff, 0xff, 0xff, 0xff}, snap.Bytes()[:3]} {
		e, _ := newMachine(kv.DefaultConfig())
		if err := e.Restore(bytes.NewReader(bad)); err == nil {
			t.Errorf("Restore(%x) accepted", bad)
		} else if len(bad) < 3 && !errors.Is(err, errCorruptSnapshot) {
			t.Errorf("Restore(%x) = %v, want errCorruptSnapshot", bad, err)
		}
		if e.mode("a") != "" || e.httpAddr(4) != "" {
			t.Errorf("a refused restore changed the machine")
		}
	}
}

// TestMachineSnapshotLarge: a state past one transport frame (smr ships
// snapshots in chunks now) snapshots and restores whole.
func TestMachineSnapshotLarge(t *testing.T) {
	m, err := newMachine(kv.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(append([]byte{cmdCatalog}, kv.EncodeRequest(kv.Request{Kind: kv.KindCreateNamespace, Spec: kv.NamespaceSpec{Name: "a", Mode: "paxos"}})...))
	value := bytes.Repeat([]byte("v"), 256<<10)
	for i := range 80 { // 20 MiB
		req := kv.Request{Kind: kv.KindTxn, Namespace: "a", Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte{byte(i)}, Value: value}}}}
		m.Apply(append([]byte{cmdData}, kv.EncodeRequest(req)...))
	}
	var w bytes.Buffer
	if err := m.Snapshot(&w); err != nil || w.Len() < 20<<20 {
		t.Fatalf("Snapshot of %d bytes of keys and values: %v, wrote %d bytes", m.kv.Stats().Bytes, err, w.Len())
	}
	r, err := newMachine(kv.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(&w); err != nil {
		t.Fatal(err)
	}
	if d1, _ := m.digest(); func() string { d, _ := r.digest(); return d }() != d1 {
		t.Fatal("restored state differs")
	}
}
