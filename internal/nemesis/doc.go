// Package nemesis runs a chorus cluster of real `chorus server` processes on
// loopback and injects faults into it while clients record a history
// (package history): the Jepsen recipe without Clojure (docs/fault-test.md).
//
// Cluster starts the members, each from its own data directory, and can
// SIGKILL one (Kill) and start it again from the same directory (Restart).
// Workload drives concurrent clients: register operations (get, put,
// compare-and-set through a txn) on a few keys and bank transfers and
// reads on a few accounts, each in its own paxos namespace. RunNemesis
// kills a random member, sometimes the leader, waits, restarts it, and
// repeats until its context ends.
//
// The test of this package, TestFaultsPaxos, runs all three for
// CHORUS_FAULT_SECONDS (default 15), heals the cluster, reads the final
// state and runs every checker of package history.
package nemesis
