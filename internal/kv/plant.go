package kv

// plant holds deliberate bugs, switched on only by this package's tests to
// show that each checker catches the bug it is meant to catch. All false
// in production; tests that set one do not run in parallel.
var plant struct {
	noRollback         bool // a txn refused for its response size keeps its changes (atomicity tests)
	noVersionBump      bool // a put on an existing key keeps its version (model check)
	noDedup            bool // a retried command is applied again (exactly-once tests)
	snapshotNoSessions bool // snapshots leave out the session table (snapshot/restore determinism)
	skipChecksum       bool // Restore ignores the CRC trailer (corruption tests)
}
