// Package order is the pure core of ordered, reliable multicast within one
// view of a group: FIFO, causal, total and safe delivery, NAK-based
// retransmission, stability tracking with bounded send windows, and the
// hooks vsync needs to flush a view (DESIGN.md section 3).
//
// One Instance serves one member in one view. The view is fixed: its id,
// its members in rank order (rank 0 is the sequencer), and self. vsync
// creates a new Instance for each view after flushing the previous one;
// nothing of an old view's stream survives into the next.
//
// # Caller's contract
//
// An Instance is a deterministic value with no goroutines, clock or I/O,
// driven from one goroutine, the way etcd's raft.RawNode is:
//
//  1. Feed it: Send for local multicasts, Step for every message a peer
//     sent (decoded with DecodeMessage, From and To set from the envelope),
//     Tick at a fixed interval (all timeouts are counted in ticks).
//  2. Call Ready. Send Ready.Messages, each to its To; order does not
//     matter and loss is tolerated (the protocol retransmits), but each must
//     be sent at most once per Ready. Nothing needs to be persisted: an
//     order instance is volatile, and virtual synchrony (not the disk)
//     carries messages across failures.
//  3. Apply Ready.Deliveries to the application, in order.
//  4. Call Advance with that Ready. Output produced between Ready and
//     Advance is kept for the next Ready.
//
// Message and Delivery slices (payloads, clocks, entries) are shared with
// the Instance and with each other: read them, never modify them. Send
// keeps the caller's payload the same way.
//
// Every timer counts Tick calls: NakTicks for gap repair and
// StabilityTicks for stability gossip. Tick is also when NAKs and gossip are
// emitted; Ready is when the sequencer's ordering batch is sealed, so
// everything ordered between two Ready calls leaves in one batch per member
// (up to BatchEntriesMax entries each).
//
// # Protocol
//
// Every message carries (view, sender, seq): seq counts the sender's
// messages in this view from 1, whatever their order. Each sender's stream
// is delivered in seq order at every member (FIFO), and the order of a
// message adds constraints on top:
//
//   - FIFO: none.
//   - Causal: the message carries a vector clock: its own seq for its
//     sender, and for every other rank the highest seq the sender had
//     delivered from it when it sent. It waits until this member has
//     delivered as much (vclock.CausallyReady).
//   - Total: the sequencer gives each Total or Safe message a global
//     sequence number as soon as it holds it contiguously, and sends small
//     batches {first global, [(sender, seq)...]}; payloads never go
//     through the sequencer. A Total message is delivered when it is the
//     next global.
//   - Safe: Total, and also stable for receipt: every member has reported
//     (by gossip) that it holds the message and its ordering entry. The
//     entry matters: were the sequencer to leave the view with its batch
//     lost everywhere else, the flush would order the message by rank,
//     not as the sequencer did.
//
// Reliability is receiver-driven (as in JGroups' NAKACK2): a gap in a
// sender's seqs, or in the global order, that lasts NakTicks is NAKed to
// the sender (or sequencer), and from the second attempt also to another
// member that reported holding the missing part, since any holder can
// retransmit. Repeated NAKs for one gap back off (NakTicks, then 2, 4 and
// at most 8 × NakTicks) so that a round trip longer than NakTicks does not
// turn into a retransmission storm. The last message of a burst is found
// missing through the stability gossip, which announces what every member
// holds.
//
// Stability (JGroups' STABLE, Derecho's SST in spirit): every
// StabilityTicks each member sends every other its Received vector (per
// sender, highest contiguous seq held), its Delivered vector and its
// highest contiguous global. With ReportEveryMessages set (the default),
// a member also sends that report as soon as, for some sender, it has
// received or delivered ReportEveryMessages messages beyond its last
// report (or holds that many more ordering entries): under load a sender
// learns that its window drained after a fraction of a window and a round
// trip, not after the next gossip tick, which otherwise caps a sender at
// SendWindowMax messages per StabilityTicks. A report only states what is
// true and is merged with max, so how often reports go out changes when
// decisions are taken, never which. The element-wise minima say what every member
// holds (safe delivery) and what every member has delivered (garbage
// collection and the send window). Both are needed: collecting on receipt
// alone would let a sender refill its window while a member still waits to
// deliver (say, for an ordering batch), and that member's buffer would grow
// without bound. The vectors are not piggybacked on data messages (that
// would add two view-sized vectors to each); what is piggybacked is the
// one number that bounds buffers: a sender may have at most
// SendWindowMax messages above its stable-delivered point (Send returns
// ErrWindowFull), and every data message carries that point (StableSeq),
// so a receiver never buffers more than SendWindowMax messages per
// sender. The sequencer
// keeps the ordering state bounded the same way: it assigns no global more
// than members × SendWindowMax above what every member holds, so no member
// keeps more than 2 × members × SendWindowMax ordering entries. A member
// that stops gossiping (crashed) stops stability; windows fill and senders
// get ErrWindowFull until vsync installs the next view: back-pressure, never
// an unbounded buffer.
//
// Input is checked in two steps: DecodeMessage enforces the encoding and
// the Limits; Step drops stale input first (another view: ErrWrongView; a
// message already held: silently) and then refuses what breaks the
// protocol's rules (ErrMalformed, ErrUnknownMember). Only after that does
// the core assert its own invariants with invariant.Check: each sender's
// delivered seq grows by one, the delivered global grows by one, buffers
// stay within their bounds. Peers are trusted to run this code
// (crash-stop, not Byzantine): a well-formed lie about stability could
// delay or misorder delivery, but never crash the member.
//
// # Flush hooks (for vsync)
//
// To end a view, vsync runs on every survivor:
//
//  1. Pause: no more Sends (ErrPaused) and no more deliveries; receipt,
//     NAKs and retransmission go on.
//  2. Digest: what this member holds (per sender, the highest contiguous
//     seq, and the highest contiguous global). vsync gathers the
//     survivors' digests and agrees on the cut, MaxDigest of them: every
//     message held by some survivor, and every ordering entry held by some
//     survivor.
//  3. Missing(cut): what this member lacks; vsync fetches each item from a
//     survivor whose digest covers it (Message, OrderBatches) and hands it
//     over with Add.
//  4. FinishFlush(cut): deliver the rest of the cut in a deterministic
//     order (first what the normal rules allow, with the sequencer's order
//     up to the cut and safe messages no longer waiting; then the Total and
//     Safe messages left without a global, by (sender rank, seq), FIFO and
//     causal ones in their order), and nothing more after that.
//
// Every survivor thus delivers exactly the cut in the view (virtual
// synchrony) and the same sequence of Total and Safe messages. Messages
// beyond the cut (sent by members that died, held by no survivor) are
// never delivered. The one exception is a causal message whose dependency
// died with its only holders: FinishFlush leaves it (and its sender's later
// messages) undelivered and returns it, identically at every survivor.
//
// # Encoded form
//
// A message is encoded (AppendMessage, DecodeMessage) without From and To,
// which the envelope carries (wire.Envelope, kind WireKind). Varints are
// canonical (wire.Reader.Uvarint); ids are peer.IDs; "ranges" is a uvarint
// count followed by (first, last) uvarint pairs.
//
//	size    field
//	1       type: 1 data, 2 nak, 3 order, 4 order-nak, 5 stable
//	1..10   view id
//
// then, by type:
//
//	data:       sender, seq, stable seq (uvarints); order (1 byte: 1 fifo,
//	            2 causal, 3 total, 4 safe); if causal, the clock in
//	            vclock's format (count, then one uvarint per rank); payload
//	            (uvarint length, bytes, at most Limits.PayloadBytesMax)
//	nak:        sender (uvarint); ranges of seqs
//	order:      first global (uvarint); entry count (uvarint, at most
//	            Limits.EntriesMax); per entry sender and seq (uvarints)
//	order-nak:  ranges of globals
//	stable:     ordered (uvarint); n (uvarint, at most Limits.MembersMax);
//	            received[0..n) then delivered[0..n) (uvarints)
//
// Nothing may follow the last field.
package order
