// Package paxos is the pure Multi-Paxos core of chorus: a deterministic,
// single-threaded value with no I/O, no clock and no goroutines. A shell
// (internal/node) drives it with a WAL, a transport and a ticker; the
// simulator (internal/sim) drives the very same core with a seeded network and
// a crashable disk. Everything a member must do outside is handed out in a
// Ready; everything that happens outside comes in through Step, Tick and the
// local inputs (Campaign, Propose, ProposeConfChange, ReadIndex, Compact).
//
// # The caller's duties (the Ready contract)
//
// Loop: when HasReady reports true, take rd := Ready() and, in this order:
//
//  1. Append rd.SnapshotChunks to the snapshot being received (one at
//     offset 0 starts it afresh; need not be synced, and must be discarded
//     after a crash). Persist rd.Snapshot (if not nil: the received bytes,
//     which form the whole snapshot; it replaces every persisted entry at
//     or below its slot, entries above it stay), then the log change (if
//     rd.EntriesFrom != 0:
//     delete every persisted entry at slot >= rd.EntriesFrom, then append
//     rd.Entries, which start at that slot when not empty), then
//     rd.HardState (if not nil), and fsync, all BEFORE any message of rd is
//     sent. Writing them atomically is best; if not, in this order, since a
//     HardState must never name a commit index the disk does not hold.
//     The commit index may lag on disk: a HardState whose Promised is
//     unchanged may go unwritten when nothing else needs persisting (a
//     restarted member learns the commit again); Promised never may.
//     (Refinement of "Entries[0] replaces everything at its slot and after":
//     EntriesFrom also expresses a pure truncation, with no entries.)
//     Every Promise and Accepted in rd.Messages is a claim that this state
//     is durable: sending one first is the "ack before fsync" bug.
//  2. Send rd.Messages. They may be lost, duplicated or reordered; the
//     protocol tolerates that. They need not be durable.
//  3. Install rd.Snapshot into the state machine (if not nil), then apply
//     rd.Committed in slot order (EntryNormal: the command; EntryConfig: the
//     membership, already in force in the core; EntryNoop: nothing). The
//     application's applied position need not be durable: after a restart
//     the core hands out again every committed entry above the restored
//     snapshot.
//  4. Serve every rd.ReadStates[i] once the state machine has applied slot
//     Index; not before.
//  5. Call Advance(rd). Readys are processed strictly one at a time and in
//     order. Step, Tick and the local inputs may be called between Ready and
//     Advance; what they change goes into the next Ready.
//
// After a crash, the shell rebuilds the core with New(cfg, Restored{...}) from
// exactly what step 1 made durable, restores its state machine from the
// snapshot, and continues.
//
// # Protocol
//
// Every member is proposer, acceptor and learner (Lamport, Paxos Made Simple;
// van Renesse and Altinbuken, Paxos Made Moderately Complex). A Ballot is
// (Round, Leader) compared lexicographically, so each ballot belongs to one
// member. Durable state: HardState{Promised, Commit} and the log of accepted
// entries {Slot, Ballot, Type, Data}, contiguous from the snapshot slot + 1.
//
// Election. A follower that hears nothing from a leader for its randomized
// timeout (ElectionTicks up to 2*ElectionTicks-1 ticks, drawn from the
// injected rand) first runs a pre-vote: MsgPrePrepare with the ballot it would
// use, changing no one's state. Only with a Q1 quorum of "yes" does it promise
// itself a ballot above every ballot it has seen and send MsgPrepare with its
// commit index: one phase 1 for every slot above that commit. An acceptor
// promises ballot b (raising Promised, durable before it replies) only if b >
// Promised and the candidate's commit >= its own; its MsgPromise carries its
// accepted entries above the candidate's commit. At most PhaseOneEntriesMax
// entries and PhaseOneBytesMax bytes: over that it refuses. An acceptor whose
// commit is higher refuses with its commit, so the member with the highest
// commit can always win and phase-1 replies stay bounded by the uncommitted
// suffix, which ProposalQueueMax bounds on every leader.
//
// Leader stickiness, and what we picked. A member that heard from a live
// leader within ElectionTicks ignores both MsgPrePrepare and MsgPrepare
// (including a leader, whose CheckQuorum keeps that window honest), and the
// pre-vote keeps a partitioned member from promising itself ever higher
// ballots: when it rejoins, its Promised is no higher than before, so it cannot
// depose a healthy leader (Raft thesis section 9.6; Howard and Abraham 2020).
// There is no leadership-transfer bypass yet.
//
// Recovery. On a Q1 quorum of promises (its own included) the candidate,
// with commit c0, builds its log for slots c0+1..R, R the highest slot any
// reply (or its own log) holds: for each slot, the value of the entry with
// the highest ballot among the replies; a no-op where none had one. It
// appends a no-op of its own at R+1 and re-proposes all of c0+1..R+1 under its
// ballot B (phase 2). Exception: a leader that finds nothing at all (R = 0)
// writes, instead of the no-op, a config entry with the bootstrap membership
// at slot 1; later leaders recover it, so slot 1 of every log names the
// first configuration and a member that joins later (without a bootstrap
// membership) knows the configuration of every slot, including the one a
// snapshot must record. This is Paxos per slot: if a value v was chosen at slot
// s under b < B by a Q2 quorum, every Q1 quorum shares an acceptor with it
// (Q1 + Q2 > N), that acceptor accepted (s, b, v) before promising B (it
// refuses b afterwards) and reports its entry at s with ballot >= b; by
// induction on ballots every proposal at s above b carries v, so the highest
// reported entry at s carries v. Hence after phase 1 the leader's log holds
// every value that may have been chosen, and R bounds every slot at which
// anything may have been chosen under a ballot below B.
//
// Phase 2 and the log. MsgAccept{Ballot, PrevSlot, Entries, Commit, LastSlot}
// carries contiguous entries from PrevSlot+1; LastSlot is the leader's last
// slot when it sent them. An acceptor with Promised <= Ballot raises Promised
// to Ballot and accepts if it holds PrevSlot "in the leader's version": PrevSlot
// <= its commit (committed slots hold the chosen value everywhere), or its entry
// at PrevSlot has ballot B (such an entry came from this leader, whose log is
// append-only under B, through an Accept that itself passed this check, so by
// induction every slot up to it equals the leader's). Otherwise it refuses
// with a hint: the highest slot below PrevSlot that passes the check. The
// leader backs up to hint+1.
//
// Refinement of "accepting entries starting at s replaces every entry at
// slots >= s". The literal rule is unsafe with batching: after acceptors A1
// and A2 chose v at slot 7 under b1, a new leader L (ballot B, which learned v)
// sends a first batch with slots 5..6; if A1 and A2 each dropped slot 7 on
// accepting it and L crashed before sending slot 7, a later Q1 of {A1, A2}
// would never see v. So an Accept OVERWRITES the slots it carries (skipping
// committed slots and slots already holding the same ballot, which hold the
// same value), and deletes entries beyond them only when that is provably
// safe: an entry at a slot above both the message's LastSlot and the
// acceptor's commit, with a ballot below B, is deleted (together with
// everything after it, provided nothing after it has ballot B). Such an entry
// cannot hold a chosen value: anything chosen below B lies at or below R <=
// the leader's last slot at any time. Heartbeats carry LastSlot too, so stale
// suffixes of old leaders disappear within a heartbeat. Entries with ballot B
// are never deleted: the acceptor may have acknowledged them.
//
// Acknowledgement and commit. MsgAccepted{Ballot, LastSlot} means "durable,
// and my log equals yours up to LastSlot"; it leaves only after the Ready
// that persisted the entries (duty 1). A follower tracks that slot per
// leadership (it restarts from its commit index whenever the ballot changes,
// even when the same member leads again) and reports it in heartbeat answers
// too, which therefore also acknowledge. The leader counts itself only for
// entries its own disk holds (after Advance), and commits slot s when a Q2
// quorum's acknowledgements reach s and s carries its own ballot (all slots
// above c0 do, and c0 was already committed). A follower learns
// commit = min(leader's commit, the last slot it knows equals the leader's
// log). Heartbeats send the commit clamped to what the leader knows the
// follower holds, like etcd raft.
//
// Pipelining and batching. Each follower's Progress has probe (one Accept in
// flight until an answer), replicate (up to InflightEntriesMax entries and
// InflightBytesMax bytes unacknowledged; the bytes bound may be passed by
// one entry, since a batch always carries at least one) and snapshot
// (sending a snapshot in chunks until it is installed) states. A heartbeat
// answer that shows no progress unpauses a probe, and in replicate state
// triggers an empty Accept, so that a lost last batch is detected and resent. One Accept carries at most BatchEntriesMax entries and
// BatchBytesMax bytes (at least one entry). Proposals are appended to the
// leader's log at once but sent when the caller takes the next Ready, so
// proposals made between two Readys share one Accept per follower. A leader
// accepts at most ProposalQueueMax entries (and ProposalQueueBytesMax bytes)
// above its commit index;
// over that Propose fails with ErrProposalDropped (back-pressure).
//
// CheckQuorum. Each ElectionTicks a leader that has not heard from a Q2
// quorum (itself included, if a member) steps down.
//
// Reads. ReadIndex(ctx) on the leader, once it has committed an entry of its
// own ballot (before that, reads wait, at most ReadQueueMax of them), records
// its commit index and sends a heartbeat round carrying ctx; when a Q2 quorum
// (itself included) has answered a heartbeat carrying ctx or a later read's
// ctx, it releases ReadState{Index, Ctx}. A follower refuses reads with a
// NotLeaderError naming the leader it knows, so the shell can redirect.
// Leases are not implemented: every read pays the quorum round. Reads waiting
// when a leader steps down are dropped; the shell times them out.
//
// Membership. One member at a time, through the log: an EntryConfig holds
// the complete new member set and is in force on every member as soon as it is
// in its log (Raft's single-server rule; if an Accept or a new leader
// overwrites it, the member set falls back to the latest config entry still
// in the log, or the snapshot's). The leader refuses a change while another
// is uncommitted (ErrConfigChangePending) and until it has committed an entry
// of its own ballot (ErrLeaderNotReady): the fix Ongaro described on raft-dev
// in 2015 for two changes racing a leader change. Any majority of the old set
// meets any majority of the new one when they differ by one member, so Q1 and
// Q2 quorums of adjacent configurations intersect. A removed leader keeps
// leading until the change is committed, not counting itself, then steps
// down. A new member starts with no members (it does not campaign), learns
// the configuration from the log or a snapshot.
//
// Flexible quorums. Config.Q1 and Q2 (sizes, 0 = majority) must satisfy
// 1 <= Qi <= N and Q1 + Q2 > N (package quorum). Membership change is then
// refused (ErrFlexibleMembership): one-at-a-time change relies on quorums of
// the old and new configurations intersecting, which fixed sizes do not give.
// With N=4, Q1=2, Q2=3 adding member 5 under the same sizes is already
// invalid (2+3 = 5); with Q1=3, Q2=3 for the new set, the old phase-1 quorum
// {1,2} and the new phase-2 quorum {3,4,5} are disjoint, so a leader elected
// by {1,2} under the old configuration can miss a value chosen by {3,4,5}.
// Joint consensus would fix this; it is not implemented.
//
// Snapshots and compaction. After the shell snapshots its state machine at
// an applied slot, Compact(slot) drops the log up to slot. When a follower
// needs a compacted slot, the leader sends the snapshot in MsgSnapshot chunks
// of SnapshotChunkBytes, at most SnapshotInflightChunksMax unacknowledged,
// reading each from the shell's SnapshotSource (the core never holds
// application state, nor a whole snapshot). Each chunk carries the
// snapshot's metadata, size and CRC32C, its offset and its own CRC32C. The
// follower takes chunks strictly in order, refuses a damaged one, hands each
// out in Ready.SnapshotChunks (the shell appends it to a file) and answers
// MsgSnapshotAck with the next offset it wants; after the last one, if the
// running CRC32C equals the whole checksum, it hands out Ready.Snapshot (the
// metadata; the bytes are the chunks), keeps its entries above the snapshot
// slot, and acknowledges with MsgAccepted after persisting. A transfer
// belongs to one leadership and is not durable: a new leader, a newer
// snapshot or a follower's restart starts it again from offset 0. The leader
// resends from the acknowledged offset after a gap, a regression or
// ElectionTicks without progress. docs/paxos.md states the memory bounds.
//
// Planted bugs. Config.Bugs switches on deliberate bugs so that the checkers
// of this package's tests and of the simulator can be shown to catch them. They
// are for tests only and default off.
//
// Assertions. invariant.Check guards the core's own logic (commit never
// decreases and never passes the last slot, applied <= commit, a leader's
// ballot equals its promise, the log is contiguous); input from peers is
// validated and refused with an error wrapping ErrInvalidMessage.
//
// What the tests show. testdata/*.txt are scripted scenarios
// (go test ./internal/paxos -run TestInteraction -rewrite regenerates them);
// property_test.go drives 3- and 5-member clusters through random
// interleavings of delivery, loss, duplication, partitions, crashes that lose
// unpersisted state, restarts, campaigns, proposals, reads, compactions and
// membership changes, checking agreement, monotonic commit, one leader per
// ballot and read freshness at every step, and liveness after healing; it
// is shown to catch both planted bugs.
//
// Not verified: this protocol has no TLA+ model; the arguments above are
// checked by the scripted scenarios in testdata/ and by the randomized
// property test in this package, nothing stronger.
package paxos
