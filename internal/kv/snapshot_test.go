package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// bigMachine has two namespaces, n keys in "big" (16-byte keys, values of
// 0..64 bytes, some updated and some deleted), and a few sessions.
func bigMachine(t testing.TB, n int) *harness {
	h := newHarness(t, Config{})
	h.ok(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "big", Mode: "paxos", Params: map[string]string{"fsync": "always"}}})
	h.createNS("small")
	for i := range n {
		value := bytes.Repeat([]byte{byte(i)}, i%65)
		h.index++
		h.m.Apply(h.index, EncodeRequest(Request{Session: Session{Client: uint64(1 + i%5), Seq: uint64(1 + i)},
			Kind: KindTxn, Namespace: "big", Txn: Txn{Then: []Op{{Type: OpPut, Key: fmt.Appendf(nil, "key-%011d", i), Value: value}}}}))
	}
	h.put("small", "x", "1")
	h.put("big", fmt.Sprintf("key-%011d", 7), "updated")
	h.txn("big", Txn{Then: []Op{delRangeOp(fmt.Sprintf("key-%011d", 10), fmt.Sprintf("key-%011d", 20))}})
	return h
}

func snapshotBytes(t testing.TB, m *Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return b.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	const n = 100_000
	src := bigMachine(t, n)
	snap := snapshotBytes(t, src.m)
	dst := newHarness(t, Config{})
	if err := dst.m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.m.Digest() != src.m.Digest() || !bytes.Equal(snapshotBytes(t, dst.m), snap) {
		t.Fatal("restored state differs")
	}
	if s := dst.m.Stats(); s.Keys != n-10+1 || s.Namespaces != 2 || s.Sessions != 5 || s != src.m.Stats() {
		t.Fatalf("stats %+v, source %+v", s, src.m.Stats())
	}
	if dst.m.AppliedIndex() != src.m.AppliedIndex() {
		t.Fatal("applied index")
	}
	// Both answer the same commands alike, retries included.
	dst.index = src.index
	for _, req := range []Request{
		{Kind: KindTxn, Namespace: "big", Txn: Txn{Then: []Op{rangeOp("key-00000000005", "\x00", 20)}}},
		{Session: Session{Client: 3, Seq: n - 3}, Kind: KindTxn, Namespace: "big", Txn: Txn{Then: []Op{putOp("a", "b")}}}, // a retry
		{Kind: KindListNamespaces},
	} {
		if a, b := src.apply(req), dst.apply(req); !bytes.Equal(EncodeResponse(a), EncodeResponse(b)) {
			t.Fatalf("%s answered differently:\n%+v\n%+v", req.Kind, a, b)
		}
	}
	t.Logf("snapshot of %d keys: %d bytes", n, len(snap))
}

// TestSnapshotCorruption: a truncated or altered snapshot is refused and
// leaves the target as it was.
func TestSnapshotCorruption(t *testing.T) {
	snap := snapshotBytes(t, bigMachine(t, 2000).m)
	target := opsFixture(t)
	before := target.m.Digest()
	refused := func(what string, b []byte) {
		t.Helper()
		err := target.m.Restore(bytes.NewReader(b))
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("%s: got %v, want ErrCorruptSnapshot", what, err)
		}
		if target.m.Digest() != before || target.m.AppliedIndex() != 6 {
			t.Fatalf("%s: a refused snapshot changed the state", what)
		}
	}
	for i := range 64 {
		cut := len(snap) * i / 64
		refused(fmt.Sprintf("truncated at %d/64 (%d bytes)", i, cut), snap[:cut])
	}
	refused("last byte missing", snap[:len(snap)-1])
	refused("trailing byte", append(append([]byte{}, snap...), 0))
	for i := range 64 {
		pos := len(snap) * i / 64
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte{}, snap...)
			bad[pos] ^= bit
			refused(fmt.Sprintf("bit %02x flipped at %d", bit, pos), bad)
		}
	}
	refused("empty", nil)
	if err := target.m.Restore(io.MultiReader(bytes.NewReader(snap[:100]), errReader{})); !errors.Is(err, ErrCorruptSnapshot) || !errors.Is(err, errBoom) {
		t.Fatalf("reader error: %v", err)
	}
}

// TestSnapshotChecksumCatchesPlantedBug: without the CRC check, a flipped
// bit inside a value restores silently; with it, it is refused.
func TestSnapshotChecksumCatchesPlantedBug(t *testing.T) {
	h := newHarness(t, Config{})
	h.createNS("t")
	h.put("t", "key", "value-with-some-bytes")
	snap := snapshotBytes(t, h.m)
	pos := bytes.Index(snap, []byte("value-with"))
	bad := append([]byte{}, snap...)
	bad[pos] ^= 0x20
	m, _ := New(Config{})
	if err := m.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("flipped bit in a value: %v", err)
	}
	withPlant(t, &plant.skipChecksum)
	if err := m.Restore(bytes.NewReader(bad)); err != nil {
		t.Fatalf("planted: %v", err)
	}
}

func TestRestoreRefusesInvariantBreaks(t *testing.T) {
	// Snapshots that carry a valid checksum but break an invariant, built
	// by editing a real one and re-sealing it.
	h := newHarness(t, Config{})
	h.createNS("t")
	h.put("t", "a", "1")
	h.put("t", "b", "2")
	h.applyRaw(sessReq(4, 1, getOp("a")))
	snap := snapshotBytes(t, h.m)
	reseal := func(body []byte) []byte {
		var w bytes.Buffer
		cw := &crcWriter{w: &w}
		cw.Write(body)
		crc := cw.crc
		return append(w.Bytes(), byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	}
	body := snap[:len(snap)-4]
	if got := reseal(body); !bytes.Equal(got, snap) {
		t.Fatal("reseal does not reproduce the snapshot")
	}
	edit := func(old, new string) []byte {
		i := bytes.Index(body, []byte(old))
		if i < 0 {
			t.Fatalf("%q not in the snapshot", old)
		}
		return reseal(bytes.Join([][]byte{body[:i], []byte(new), body[i+len(old):]}, nil))
	}
	for _, tc := range []struct{ name, old, new string }{
		{"keys out of order", "\x01a\x011", "\x01c\x011"},
		{"bad namespace name", "\x01t\x05paxos", "\x01/\x05paxos"},
		{"bad mode", "\x05paxos", "\x05PAXOS"},
		{"magic", "chorusKV", "chorusKW"},
	} {
		m, _ := New(Config{})
		if err := m.Restore(bytes.NewReader(edit(tc.old, tc.new))); !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: %v", tc.name, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	// Smaller limits than the snapshot's: refused.
	small, _ := New(Config{SessionsMax: 1, NamespacesMax: 1})
	h.createNS("u")
	if err := small.Restore(bytes.NewReader(snapshotBytes(t, h.m))); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("over NamespacesMax: %v", err)
	}
}

// TestSnapshotStreams: Snapshot writes through a fixed buffer, never the
// whole state at once.
func TestSnapshotStreams(t *testing.T) {
	h := bigMachine(t, 20_000)
	w := &maxWriter{}
	if err := h.m.Snapshot(w); err != nil {
		t.Fatal(err)
	}
	if w.max > snapshotBufferBytes || w.total < 5*snapshotBufferBytes {
		t.Fatalf("largest write %d bytes of %d", w.max, w.total)
	}
	if err := h.m.Snapshot(&failWriter{after: 100_000}); !errors.Is(err, errBoom) {
		t.Fatalf("writer error: %v", err)
	}
}

var errBoom = errors.New("boom")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

type maxWriter struct{ max, total int }

func (w *maxWriter) Write(p []byte) (int, error) {
	w.max = max(w.max, len(p))
	w.total += len(p)
	return len(p), nil
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		return 0, errBoom
	}
	w.after -= len(p)
	return len(p), nil
}
