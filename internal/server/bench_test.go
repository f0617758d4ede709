package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/httpapi/apitest"
	"github.com/chorus-project/chorus/internal/kv"
)

// BenchmarkTxnPut measures puts through Server.Txn on the leader of three
// in-process members (fsync on), without HTTP: the server's own cost over
// smr's.
func BenchmarkTxnPut(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", par), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := apitest.Start(ctx, b.TempDir(), 3, apitest.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			id, _ := c.WaitLeader(ctx)
			s := c.Servers[id]
			if _, err := s.CreateNamespace(ctx, kv.Session{}, kv.NamespaceSpec{Name: "b", Mode: "paxos"}); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + par - 1) / par
			for g := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						req := putReq("b", fmt.Sprintf("k%03d-%08d", g, i), string(value))
						req.Session = kv.Session{Client: uint64(g + 1), Seq: uint64(i + 1)}
						if _, err := s.Txn(ctx, req); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*par)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
