// Package vsync is the pure core of virtual synchrony (DESIGN.md section
// 3): group membership as a sequence of views agreed by consensus, the
// flush that ends each view, joins, leaves and exclusions, and the
// handshake of the state transfer to a joiner. It drives one order.Instance
// (ordered multicast within a view) and one liveness.Detector (failure
// detection) per view.
//
// # Caller's contract
//
// A Node is a deterministic value with no goroutines, clock or I/O, driven
// from one goroutine the way etcd's raft.RawNode is:
//
//  1. Feed it: New (a founder, given the initial view) or NewJoiner (a
//     process that joins through contacts); Send, Leave and SendChunk for
//     local input; Step for every message from a peer (decoded with
//     DecodeMessage, From and To set from the envelope, kind WireKind);
//     Tick at a fixed interval (every timeout is counted in ticks).
//  2. When HasReady, take rd := Ready(). Nothing needs to be persisted by
//     the core: the model is crash-stop, and a process that restarts comes
//     back as a new incarnation through NewJoiner. The shell must never
//     reuse an incarnation (it persists a counter, or derives it from
//     something that only grows): the Paxos acceptor state is volatile,
//     and a restarted process answering under its old incarnation could
//     break agreement. A joiner may Send before its restore is done.
//  3. Send rd.Messages, each to its To, best effort: the protocol
//     tolerates loss, duplication and reordering.
//  4. Apply rd.Deliveries and rd.ViewChanges merged by view: every
//     delivery tagged with view v after the ViewChange of v and before
//     the ViewChange of any later view (a delivery's view is the view it
//     was sent in: sending view delivery). At a joiner, deliveries are
//     held back until its restore is done and then handed out in order,
//     possibly after later ViewChanges.
//  5. Apply rd.Chunks in order (joiner): Index 0 starts the restore
//     afresh, discarding what an earlier attempt restored; the restore is
//     done when the Ready holding the Last chunk is advanced.
//  6. For each rd.TransferInstructions (donor), snapshot the application
//     state as it is after step 4, and feed it with SendChunk in pieces of
//     at most ChunkBytesMax, as the window (ErrTransferWindowFull) allows,
//     retrying after later Readys.
//  7. If rd.Stopped is set the member is done (ErrLeft, ErrExcluded or
//     ErrRestoreOverflow); the process may rejoin as a new incarnation.
//  8. Call Advance(rd). Readys are processed one at a time; what Step,
//     Tick and the local calls produce in between goes into the next one.
//
// Slices in a Ready (payloads, chunk data) are shared with the Node: read
// them, never modify them. SendChunk and Send keep the caller's bytes.
//
// # Views and the primary partition
//
// A View is {ID, Members} with members in join order; rank = index, and
// rank 0 is the coordinator (and its order instance's sequencer). View
// V+1 is installed only with the agreement of a majority of V's members,
// so views form one sequence: never two views with one id, and every
// member installs a contiguous run of it (a crashed or excluded member
// stops early, a joiner starts late). A minority partition cannot change
// its view; it keeps delivering what order allows in the old one (FIFO and
// causal messages among its members; total and safe ones stall once the
// window fills) and none of that survives into a later view.
//
// # View agreement: one Paxos instance per view
//
// Deciding V+1 is single-decree Paxos among V's members (Lamport, "Paxos
// Made Simple"), with ballots (Round, Proposer) and majority quorums of V.
// Acceptor state is volatile: crash-stop members never come back under the
// same incarnation, so a crashed acceptor is simply silent.
//
//   - Who proposes. The acting proposer is the lowest-ranked member that
//     this member does not hold faulty (liveness Faulty verdicts). It starts
//     a ballot when it has something to change: a faulty member to exclude,
//     a leave, a join (if the view is below MembersMax), or a change that
//     other members started and that has not been decided within
//     ChangeTimeoutTicks (the proposer died). Join and leave requests reach
//     it directly or forwarded once by another member; it folds every
//     request it holds when it builds the value, so several joins, leaves
//     and exclusions make one change. A request that arrives after the
//     value is built waits for the next change.
//   - Phase 1 (Prepare / Promise) is also the start of the flush. The
//     proposer sends Prepare to every member it does not hold faulty (the
//     participants; at least a majority of V, or it does nothing). An
//     acceptor that has not promised a higher ballot pauses its order
//     instance (no more sending or delivery; receipt and retransmission go
//     on) and answers with its order.Digest, whether it holds the
//     application state (a joiner does not until its restore is done),
//     and the value it accepted last, if any. The proposer needs a promise from every participant: a
//     participant found faulty meanwhile, or silent for ChangeTimeoutTicks
//     (it may lag in an older view), is dropped from them.
//   - The value. If a promise carries an accepted value, the one with the
//     highest ballot is proposed again (it may have been chosen). Otherwise
//     the value is {next view, cut, holders}: the next view keeps the
//     participants in rank order minus leavers and members replaced by a
//     newer incarnation (but never all of the members that hold the
//     application state: the lowest-ranked of them stays, and leaves
//     alone start no change for ChangeTimeoutTicks), then appends the
//     joiners; the cut is
//     order.MaxDigest of the participants' digests; holders name, per
//     sender rank and for the global order, a participant that holds the
//     cut's part.
//   - Phase 2 (Accept / Accepted). An acceptor accepts only once it holds
//     the whole cut: it fetches what order.Missing reports from the holders
//     (then from every member, every RetryTicks), adds it with order.Add,
//     and only then answers Accepted. So a chosen value's cut is held by a
//     majority, and a later proposer that adopts an accepted value finds
//     its cut held by at least the acceptor that reported it. The one
//     exception is a member the value excludes that delivered past its
//     cut (it kept delivering while a round it was left out of built the
//     value): it accepts at once, since it will not install the view. A
//     participant found faulty during phase 2 restarts the ballot.
//   - Decide. With a majority of V accepting, the proposer sends Decide to
//     every member of V and of the next view. A member that installed a
//     later view, or that was asked again about a decided change, answers
//     a Prepare of the old view with that Decide; a member that sees
//     traffic of a later view from a member of its own asks it with a
//     zero-ballot Prepare (a query), so a lost Decide is recovered.
//   - Preemption. Two members may both believe they are the acting
//     proposer (each holds the other faulty, and verdicts are final). A
//     member that promises another member's ballot therefore starts none
//     of its own for ChangeTimeoutTicks, and a Reject (a higher ballot was
//     promised) makes a proposer step back for RetryTicks × (rank+1)
//     ticks, so that one of them runs a whole round.
//
// # Flush and install
//
// On Decide a survivor (a member of the next view) fetches what it lacks of
// the cut, calls FinishFlush(cut), hands those deliveries out, and only then
// installs the next view with a new order instance and detector. Members
// that pass together from V to V+1 therefore delivered the same set of
// messages in V (virtual synchrony), and the same sequence of total and
// safe ones; messages beyond the cut (held only by members that left the
// flush) are never delivered. A leaver delivers the cut too and stops with
// ErrLeft. A member excluded while alive learns it from the Decide (it is
// not in the next view) or, if that was lost, from a Notice: a member
// answers a heartbeat from a process outside its view with its view, and a
// member that finds itself absent from a later view stops with ErrExcluded
// at once, delivering nothing more of its view. It rejoins as a new
// incarnation. Liveness verdicts are final for a detector; a member that
// holds a majority of its view faulty can change nothing, so it starts a
// fresh detector every ChangeTimeoutTicks (after a healed partition the
// group finds itself again).
//
// # State transfer
//
// A joiner installs the first view that contains it directly from the
// Decide (or a Notice), holds back its deliveries (at most
// RestoreBufferDeliveriesMax and RestoreBufferBytesMax; over either it
// stops with ErrRestoreOverflow: it cannot slow the group down, since
// order already counts the messages as delivered) and asks a donor for
// the state: the members of its current view in rank order, skipping
// itself, starting with the coordinator. A donor must be restored and have
// installed the joiner's first view; it emits a TransferInstruction, and
// the position of the snapshot is fixed when that Ready is handed out: the
// donor's view and, per sender, the highest seq delivered in it (for a
// donor that itself restored from another, merged with that donor's
// position, which its state also covers). The
// shell streams the bytes with SendChunk; the core keeps at most
// TransferWindowChunks unacknowledged chunks, retransmits them every
// RetryTicks, and numbers attempts. The chunk data passes through the core
// (it is in the messages) but is never interpreted there: the core tracks
// indexes and acknowledgements, the shell makes and applies snapshots. A
// joiner that sees no progress for TransferTimeoutTicks (the donor
// crashed) asks the next candidate with a new attempt, and tells any donor
// of an abandoned attempt to stop. When the restore is done, it releases
// what it held back minus what the snapshot covers (every delivery of a
// view before the donor's, and in the donor's view each sender's seqs up
// to the position): the donor's state plus the rest equals what a member
// that was there all along applied, in an order that respects FIFO,
// causal and total order.
//
// # Input checking
//
// DecodeMessage enforces the encoding and the Limits; Step drops stale
// input first (another view, a lower ballot, a duplicate), answers it when
// that helps the sender catch up, and refuses what breaks the protocol with
// an error wrapping ErrMalformed or ErrNotMember (or an order error). Only
// after that does the core assert its own invariants with invariant.Check.
// Peers are trusted to run this code (crash-stop, not Byzantine).
//
// # Encoded form
//
// Every message travels in a wire.Envelope of kind WireKind, which carries
// From and To. Varints are canonical uvarints; a ballot is round then
// proposer; a member is id then incarnation; a view is id, member count
// (at most Limits.MembersMax), members; a digest is ordered global, count,
// then one uvarint per rank; refs are a count then (sender, seq) pairs.
//
//	size    field
//	1       type: 1 order, 2 liveness, 3 prepare, 4 promise, 5 reject,
//	        6 accept, 7 accepted, 8 decide, 9 fetch, 10 forward, 11 join,
//	        12 leave, 13 notice, 14 transfer-request, 15 chunk, 16 chunk-ack
//	1..10   view id
//
// then, by type:
//
//	order:             uvarint length, an order message (order's format)
//	liveness:          uvarint length, a liveness message (liveness' format)
//	prepare, reject,
//	accepted:          ballot
//	promise:           ballot; digest; 1 byte: 1 if restored; 1 byte: 1
//	                   if a value follows, then accepted ballot and value
//	accept:            ballot; value
//	decide:            value
//	fetch:             refs (at most Limits.RefsMax); range count (same
//	                   bound) and (first, last) global pairs
//	forward:           count (at most 64); per message a uvarint length and
//	                   an order message
//	join, leave:       member
//	notice:            view
//	transfer-request:  attempt
//	chunk:             attempt; index; 1 byte last; uvarint length and data
//	                   (at most Limits.ChunkBytesMax); if index is 0, the
//	                   position: view id, then refs (at most MembersMax)
//	chunk-ack:         attempt; next index expected (all ones: cancel)
//
// A value is: view; digest; one holder id per digest entry; order holder
// id. Nothing may follow the last field.
//
// # What is not verified
//
// The randomized test checks the safety properties on every history and
// convergence once faults stop, within the fault model it draws (crashes
// of installed members that leave a majority of every live member's view,
// partitions, loss, duplication, reordering). It does not model a
// Byzantine peer, and it does not crash a joiner before it is added (a
// view that adds dead joiners may lose its majority: the protocol assumes
// a majority of every view survives).
package vsync
