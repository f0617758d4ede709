package kv_test

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/kv"
)

// A log applies commands at increasing indexes; reads go through Query.
func Example() {
	m, err := kv.New(kv.DefaultConfig())
	if err != nil {
		panic(err)
	}
	m.Apply(1, kv.EncodeRequest(kv.Request{Kind: kv.KindCreateNamespace, Spec: kv.NamespaceSpec{Name: "accounts", Mode: "paxos"}}))
	m.Apply(2, kv.EncodeRequest(kv.Request{Kind: kv.KindTxn, Namespace: "accounts", Txn: kv.Txn{Then: []kv.Op{
		{Type: kv.OpPut, Key: []byte("alice"), Value: []byte("100")},
		{Type: kv.OpPut, Key: []byte("bob"), Value: []byte("0")},
	}}}))
	// Move 100 from alice to bob if alice's balance has not changed since
	// it was read (version 1): a compare-and-swap over two keys.
	out := m.Apply(3, kv.EncodeRequest(kv.Request{
		Session: kv.Session{Client: 42, Seq: 1},
		Kind:    kv.KindTxn, Namespace: "accounts",
		Txn: kv.Txn{
			Compares: []kv.Compare{{Key: []byte("alice"), Target: kv.TargetVersion, Result: kv.Equal, Version: 1}},
			Then: []kv.Op{
				{Type: kv.OpPut, Key: []byte("alice"), Value: []byte("0")},
				{Type: kv.OpPut, Key: []byte("bob"), Value: []byte("100")},
			},
		},
	}))
	resp, _ := kv.DecodeResponse(out)
	fmt.Println(resp.Code, resp.Succeeded, resp.Index)

	q := kv.EncodeRequest(kv.Request{Kind: kv.KindTxn, Namespace: "accounts",
		Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: []byte(""), End: []byte("\x00")}}}})
	resp, _ = kv.DecodeResponse(m.Query(q))
	for _, kv := range resp.Results[0].KVs {
		fmt.Printf("%s=%s version=%d mod=%d\n", kv.Key, kv.Value, kv.Version, kv.ModIndex)
	}
	// Output:
	// ok true 3
	// alice=0 version=2 mod=3
	// bob=100 version=2 mod=3
}
