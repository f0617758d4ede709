package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/httpapi/apitest"
)

// A three-member cluster in this process stands in for `chorus server`
// processes; the client only needs their HTTP addresses.
func Example() {
	dir, _ := os.MkdirTemp("", "client-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cluster, err := apitest.Start(ctx, dir, 3, apitest.Options{})
	if err != nil {
		panic(err)
	}
	defer cluster.Close()

	c, err := client.New(client.Config{Endpoints: cluster.Endpoints()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.CreateNamespace(ctx, client.NamespaceSpec{Name: "accounts", Mode: "paxos"}); err != nil {
		panic(err)
	}
	if _, err := c.Put(ctx, "accounts", []byte("alice"), []byte("100")); err != nil {
		panic(err)
	}
	r, err := c.Get(ctx, "accounts", []byte("alice"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("alice=%s version=%d\n", r.KV.Value, r.KV.Version)

	// Compare-and-swap: succeeds once, then the compare fails.
	cas := client.Txn{
		Compares: []client.Compare{{Key: []byte("alice"), Target: client.TargetValue, Result: client.ResultEqual, Value: []byte("100")}},
		Then:     []client.Op{{Type: client.OpPut, Key: []byte("alice"), Value: []byte("70")}, {Type: client.OpPut, Key: []byte("bob"), Value: []byte("30")}},
	}
	t, err := c.Txn(ctx, "accounts", cas)
	fmt.Println("first txn succeeded:", t.Succeeded, err)
	_, err = c.Txn(ctx, "accounts", cas)
	fmt.Println("second txn compare failed:", errors.Is(err, client.ErrCompareFailed))

	s, err := c.Scan(ctx, "accounts", client.ScanRequest{})
	if err != nil {
		panic(err)
	}
	for _, kv := range s.KVs {
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
	_, err = c.Get(ctx, "accounts", []byte("carol"))
	fmt.Println("carol not found:", errors.Is(err, client.ErrKeyNotFound))
	// Output:
	// alice=100 version=1
	// first txn succeeded: true <nil>
	// second txn compare failed: true
	// alice=70
	// bob=30
	// carol not found: true
}
