// Package client is the Go client of a chorus cluster's HTTP API
// (docs/api.md).
//
//	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:2380", "127.0.0.1:2381"}})
//	_, err = c.CreateNamespace(ctx, client.NamespaceSpec{Name: "app", Mode: "paxos"})
//	_, err = c.Put(ctx, "app", []byte("k"), []byte("v"))
//	r, err := c.Get(ctx, "app", []byte("k"))
//
// Leader discovery: any endpoint will do. A member that does not lead
// forwards the request to the leader and every answer names the leader in
// the Chorus-Leader header; the client sends there afterwards, and falls
// back to the other endpoints when the leader stops answering.
//
// Retries: a call is retried, on the next endpoint with a capped
// exponential backoff, while no member answers or a member answers 503
// (no leader, no quorum), until ctx ends (or Config.Timeout when ctx has no
// deadline). Writes carry a session (random client id and sequence number),
// so a write retried after a lost response is applied at most once while the
// server remembers the session (docs/server.md).
//
// Errors from the server are *Error values with the stable code of the
// API; test them with errors.Is against ErrNotFound, ErrKeyNotFound,
// ErrNamespaceNotFound, ErrExists, ErrCompareFailed, ErrTooLarge,
// ErrBadRequest, ErrModeUnavailable and ErrUnavailable.
//
// Throughput: the client keeps HTTP/1.1 keep-alive connections, up to
// Config.IdleConnsPerHostMax per member, so N goroutines calling it
// concurrently keep N requests in flight on N reused connections; the
// server batches their proposals into one log append (group commit).
package client
