// Package transport moves wire.Envelopes between the members of a cluster.
//
// It has one interface, Transport, used by the shells (internal/node, the
// group layer), and two implementations: TCP for real processes, and
// MemNetwork, an in-memory network for shell tests, with partitions and
// isolation on demand. Both share the send queue, the limits and the Handler
// contract, and a shared test suite runs against both.
//
// # Guarantees
//
// At most once, in order per ordered pair of members, with possible gaps.
// Nothing is retransmitted here: a frame is lost when its peer's queue is
// full (Send returns false), when the connection breaks while it is in
// flight, or across a partition. The protocols above number their messages
// and retransmit; the transport's job is never to reorder, never to corrupt,
// never to block its caller, and to bound its memory while a peer is down.
//
// # Send queues
//
// Each peer has one queue, bounded by SendQueueFramesMax and
// SendQueueBytesMax. Send encodes the envelope straight into the newest batch
// buffer of that queue (so the caller may reuse its payload at once); the
// peer's writer takes the oldest batch, at most BatchBytesMax bytes of whole
// frames, and writes it with one system call. When the queue is full the
// newest envelope is refused (drop-newest) and counted: Send's false is then
// the truth, and the receiver sees one gap at the end of a stream rather than
// holes in its middle. While a peer is down its queue fills to the bound and
// stays there; queued frames go out once it is back.
//
// # TCP connections and goroutines
//
// Between two members A and B there are two connections, one per direction:
// A dials B to send to B, and B dials A to send to A. Data flows only from
// dialer to acceptor; the acceptor sends keep-alives back. Goroutines:
//
//	accept loop         1 per transport: accepts, enforces InboundConnsMax
//	writer (run)        1 per peer: dials with backoff, writes batches and
//	                    keep-alives (after KeepAliveInterval of silence)
//	keep-alive reader   1 per outbound connection: reads the acceptor's
//	                    keep-alives; silence for ReadIdleTimeout kills the
//	                    connection, so a dead acceptor is noticed even when
//	                    we have nothing to send
//	inbound reader      1 per accepted connection: checks the hello, reads
//	                    frames, calls the Handler
//	keep-alive writer   1 per accepted connection: a keep-alive every
//	                    KeepAliveInterval
//
// Every write has a deadline (WriteTimeout), every read an idle deadline
// (ReadIdleTimeout) refreshed on each read system call, every dial and hello
// a timeout. Close cancels one context that closes every connection, and
// waits for every goroutine.
//
// When a sender reconnects before the acceptor noticed its old connection
// die, the new connection takes over: the old one is closed, and the new one
// waits for the old one's last Handler call to return before it delivers.
// Per-pair order thus holds across reconnections (frames still unread on the
// old connection are lost, never delivered late).
//
// # Handshake
//
// The dialer writes a hello and waits for the acceptor's. Both are 29 bytes:
//
//	offset  size  field
//	0       4     magic "CHRS" (0x43 0x48 0x52 0x53)
//	4       1     wire.Version of the sender
//	5       8     cluster id, big-endian (Config.ClusterID)
//	13      8     sender's peer.ID, big-endian
//	21      8     receiver's peer.ID, big-endian (the member the dialer
//	              expects to reach; the dialer's ID in the answer)
//
// The acceptor refuses (closes the connection, logs the remote address and
// the reason, counts ConnsRefused) a hello with another magic, another wire
// version, another cluster, a receiver that is not itself, or a sender of 0.
// The dialer checks the answer the same way and also that the answering
// member is the one it dialed, so an address reused by another member is
// noticed. A version is refused, not negotiated: rolling upgrades across
// wire versions would need a second version range here first.
//
// # Frames
//
// After the hellos, each direction is a sequence of frames:
//
//	offset  size  field
//	0       4     body length n, big-endian uint32
//	4       n     body: one envelope, wire.AppendEnvelope encoding
//
// A body of length 0 is a keep-alive (no envelope encodes to zero bytes, so
// the transport needs no envelope kind of its own; wire kinds 0x0000-0x00ff
// stay unused). A header claiming more than FrameBytesMax drops the
// connection before anything is allocated, and a reader grows a body buffer
// only as its bytes arrive, so a peer's claim costs nothing it did not send.
// An envelope that does not decode, or whose From or To differ from the
// hello's sender and receiver, drops the connection (ErrProtocol): the
// stream can no longer be trusted. On the acceptor-to-dialer direction
// anything but a keep-alive drops the connection.
//
// # Errors
//
// Nothing a peer sends can panic the process; it costs at most its own
// connection and a log line (log/slog, Config.Logger) naming the remote
// address and the reason, which wraps one of ErrHandshake,
// ErrFrameTooLarge, ErrProtocol or ErrIdle. invariant.Check guards only our
// own logic: a Send whose From is not this member is a caller bug and stops
// the process.
package transport
