//go:build race

package wal

// raceEnabled: the race detector slows the crash test about fivefold, and
// what it looks for (data races in the log's goroutines) shows in one round.
const raceEnabled = true
