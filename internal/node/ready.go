// Package node is the shell around the pure paxos core: it persists, sends
// and applies what the core hands out, in the order the core's contract
// demands (internal/paxos, "The caller's duties"). The real shell (goroutine,
// clock, TCP transport, WAL on the OS file system) and the simulator
// (internal/sim: seeded network, clock and crashable disk) both use
// HandleReady and Disk, so the code the simulator tests is the code that runs.
package node

import (
	"context"
	"fmt"
	"io"

	"github.com/chorus-project/chorus/internal/paxos"
)

// Applier is the state machine side of a member: it receives committed
// entries in slot order and snapshots to install. It is called on the
// goroutine that handles Readys, one call at a time.
type Applier interface {
	// Restore replaces the state with a snapshot's, streamed from its file
	// by r; committed entries above meta.Slot follow through Apply.
	Restore(meta paxos.SnapshotMeta, r io.Reader) error
	// Apply executes one committed entry. Entries of type EntryNoop and
	// EntryConfig carry no command; the applier sees them so that it knows
	// its applied slot.
	Apply(e paxos.Entry)
}

// ReadyBugs are deliberate bugs that the simulator's checkers must catch.
type ReadyBugs struct {
	// SendBeforePersist sends a Ready's messages before its state is
	// durable: the "acknowledge before fsync" bug.
	SendBeforePersist bool
}

// HandleReady carries out the duties of one Ready, in order: persist (one
// fsync), send, install the snapshot and apply the committed entries, then
// Advance. It returns the read states of rd, which the caller serves once its
// applied slot reaches their Index.
//
// An error from the disk means this member must stop (after a failed fsync
// the disk's state is unknown); HandleReady then neither sends, applies nor
// advances.
func HandleReady(ctx context.Context, core *paxos.Core, rd paxos.Ready, disk *Disk,
	send func([]paxos.Message), app Applier, bugs ReadyBugs) ([]paxos.ReadState, error) {
	if bugs.SendBeforePersist {
		send(rd.Messages)
	}
	if err := disk.Save(ctx, rd); err != nil {
		return nil, err
	}
	if !bugs.SendBeforePersist {
		send(rd.Messages)
	}
	if rd.Snapshot != nil {
		if err := disk.ReadSnapshot(app.Restore); err != nil {
			return nil, fmt.Errorf("node: install snapshot at slot %d: %w", rd.Snapshot.Slot, err)
		}
	}
	for _, e := range rd.Committed {
		app.Apply(e)
	}
	core.Advance(rd)
	return rd.ReadStates, nil
}
