package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The workload of the benchmark: 16-byte keys over a key space of
// 100,000, 256-byte values.
const (
	benchKeys       = 100_000
	benchValueBytes = 256
)

func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%012d", i) } // 16 bytes

func benchPuts(n int, client uint64) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	value := bytes.Repeat([]byte{'v'}, benchValueBytes)
	cmds := make([][]byte, n)
	for i := range cmds {
		cmds[i] = EncodeRequest(Request{Session: Session{Client: client, Seq: uint64(i + 1)}, Kind: KindTxn, Namespace: "bench",
			Txn: Txn{Then: []Op{{Type: OpPut, Key: benchKey(rng.IntN(benchKeys)), Value: value}}}})
	}
	return cmds
}

func benchMachine(b *testing.B, keys int) *Machine {
	m, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	m.Apply(1, EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "bench", Mode: "paxos"}}))
	value := bytes.Repeat([]byte{'v'}, benchValueBytes)
	for i := range keys {
		m.Apply(uint64(i+2), EncodeRequest(Request{Kind: KindTxn, Namespace: "bench", Txn: Txn{Then: []Op{{Type: OpPut, Key: benchKey(i), Value: value}}}}))
	}
	return m
}

// BenchmarkApplyPut: one put per command into a namespace that already
// holds the 100,000 keys, decoding included. With session=true every
// command is recorded in the exactly-once table, as a client with retries
// has it (16,384 commands per client, then the next client).
func BenchmarkApplyPut(b *testing.B) {
	for _, session := range []bool{false, true} {
		b.Run(fmt.Sprintf("session=%v", session), func(b *testing.B) {
			m := benchMachine(b, benchKeys)
			const perClient = 1 << 14
			cmds := benchPuts(perClient, 0)
			if session {
				cmds = benchPuts(perClient, 1)
			}
			index := m.AppliedIndex()
			if resp, _ := DecodeResponse(m.Apply(index+1, cmds[0])); resp.Code != CodeOK {
				b.Fatalf("%s: %s", resp.Code, resp.Message)
			}
			index++
			b.SetBytes(benchValueBytes + 16)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				cmd := cmds[i%perClient]
				if session && i%perClient == 0 {
					// The next client: rewrite the client id in place
					// (version, kind, then the client uvarint of one byte).
					b.StopTimer()
					for _, c := range cmds {
						c[2] = byte(1 + i/perClient%127)
					}
					b.StartTimer()
				}
				index++
				m.Apply(index, cmd)
			}
		})
	}
}

// BenchmarkRange: a Query of 100 consecutive keys out of 100,000.
func BenchmarkRange(b *testing.B) {
	m := benchMachine(b, benchKeys)
	rng := rand.New(rand.NewPCG(3, 4))
	qs := make([][]byte, 1024)
	for i := range qs {
		start := rng.IntN(benchKeys - 100)
		qs[i] = EncodeRequest(Request{Kind: KindTxn, Namespace: "bench", Txn: Txn{Then: []Op{{Type: OpRange, Key: benchKey(start), End: benchKey(start + 100)}}}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := m.Query(qs[i%len(qs)]); len(out) < 100*benchValueBytes {
			b.Fatalf("short answer: %d bytes", len(out))
		}
	}
}

// BenchmarkHeap1MKeys reports the live heap of a machine holding 1,000,000
// keys of 16 bytes with 256-byte values (the memory figure), per
// machine and per key. Run it alone with -benchtime 1x.
func BenchmarkHeap1MKeys(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, _ := New(Config{})
		m.Apply(1, EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "bench", Mode: "paxos"}}))
		value := bytes.Repeat([]byte{'v'}, benchValueBytes)
		key := make([]byte, 16)
		for k := range n {
			copy(key, "key-")
			binary.BigEndian.PutUint64(key[8:], uint64(k)*0x9e3779b97f4a7c15) // scattered inserts, as random keys give
			m.Apply(uint64(k+2), EncodeRequest(Request{Kind: KindTxn, Namespace: "bench", Txn: Txn{Then: []Op{{Type: OpPut, Key: key, Value: value}}}}))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s := m.Stats(); s.Keys != n {
			b.Fatalf("%d keys", s.Keys)
		}
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		b.ReportMetric(heap/n, "heap-B/key")
		b.ReportMetric(float64(n*(16+benchValueBytes))/(1<<20), "data-MiB")
		runtime.KeepAlive(m)
	}
}
