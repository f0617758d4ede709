package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chorus-project/chorus/internal/kv"
)

// Errors of this package; test with errors.Is.
var (
	// ErrConfig: the Config is invalid; the message names the field.
	ErrConfig = errors.New("server: invalid config")
	// ErrDataDir: the data directory cannot be used (its parent is missing,
	// it belongs to another cluster or member, or it is empty without
	// Bootstrap or Join).
	ErrDataDir = errors.New("server: unusable data directory")
	// ErrNotLeader: this member does not lead; the error is a
	// *NotLeaderError naming the leader's HTTP address when known.
	ErrNotLeader = errors.New("server: not the leader")
	// ErrUnavailable: no leader, no quorum or back-pressure; retry later.
	ErrUnavailable = errors.New("server: unavailable")
	// ErrTooLarge: a command over the replicated log's entry limit.
	ErrTooLarge = errors.New("server: request too large")
	// ErrStaleSession: a session's seq below the last one applied.
	ErrStaleSession = errors.New("server: stale session")
	// ErrUnknownMode: a namespace mode chorus does not have.
	ErrUnknownMode = errors.New("server: unknown mode")
	// ErrModeUnavailable: a mode chorus knows but this server cannot run
	// (no backend factory registered for it).
	ErrModeUnavailable = errors.New("server: mode not available")
	// ErrBadRequest: input the server refuses before it reaches the log.
	ErrBadRequest = errors.New("server: bad request")
	// ErrMembership: a membership change the cluster refused (one is
	// pending, the member is already in or not in the cluster).
	ErrMembership = errors.New("server: membership change refused")
	// ErrStopped: the server was closed or its member stopped.
	ErrStopped = errors.New("server: stopped")
)

// Config configures a Server. DefaultConfig fills the tuning fields.
type Config struct {
	// ClusterID names the cluster; every member has the same, non-zero.
	ClusterID uint64
	// ID is this member, non-zero.
	ID uint64
	// DataDir holds the member's log and snapshots. It is created if absent,
	// provided its parent directory exists.
	DataDir string
	// PeerAddr is where this member listens for its peers (host:port).
	PeerAddr string
	// HTTPAddr is where this member serves the HTTP API (host:port); it is
	// used by the caller that starts the listener, and to name this member.
	HTTPAddr string
	// Peers maps every member (this one included, or added from PeerAddr) to
	// its peer address.
	Peers map[uint64]string
	// HTTPPeers maps members to their HTTP addresses, so that a follower can
	// forward to the leader and tell clients where it is. Members missing
	// from it cannot be forwarded to.
	HTTPPeers map[uint64]string
	// GroupAddr is where this member's group layer listens (host:port);
	// empty disables the active mode. GroupPeers maps every member (this
	// one included, or added from GroupAddr) to its group address: the
	// members that found the group of each active namespace.
	GroupAddr  string
	GroupPeers map[uint64]string
	// Bootstrap starts a new cluster in an empty DataDir; Join starts a
	// member that the leader adds. Neither: restart from DataDir. Bootstrap
	// on a DataDir that holds data restarts from it.
	Bootstrap, Join bool
	// TickInterval, ElectionTicks and HeartbeatTicks tune the Multi-Paxos
	// failure detection (smr.DefaultConfig explains the defaults).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries: compact the log every this many applied entries.
	SnapshotEntries uint64
	// SessionsMax bounds the client sessions remembered for exactly-once
	// retries (in smr and in kv).
	SessionsMax int
	// KV holds the state machine's limits.
	KV kv.Config
	// Logger receives the server's events; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the tuning fields set:
//   - TickInterval 100 ms, ElectionTicks 10, HeartbeatTicks 1 (smr's LAN
//     preset: a leader replaced after 1-2 s of silence);
//   - SnapshotEntries 10000 (a restart replays at most that many entries);
//   - SessionsMax 4096 (retries from the 4096 most recently active client
//     sessions are deduplicated; the benchmark's 256 clients fit easily);
//   - KV limits: kv.DefaultConfig, but values of at most 512 KiB so that a
//     put, with its headers, fits in one log entry (just under 1 MiB).
func DefaultConfig() Config {
	k := kv.DefaultConfig()
	k.ValueBytesMax = 512 << 10
	k.SessionsMax = 4096
	return Config{
		TickInterval:    100 * time.Millisecond,
		ElectionTicks:   10,
		HeartbeatTicks:  1,
		SnapshotEntries: 10000,
		SessionsMax:     4096,
		KV:              k,
	}
}

// Validate checks cfg; the error wraps ErrConfig (or ErrDataDir) and names
// the field to fix. It fills Peers with this member's PeerAddr when absent.
func (cfg *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.ClusterID == 0:
		return bad("cluster-id must be a non-zero integer")
	case cfg.ID == 0:
		return bad("id must be a non-zero integer")
	case cfg.DataDir == "":
		return bad("data-dir is empty")
	case cfg.Bootstrap && cfg.Join:
		return bad("bootstrap and join are both set; a member starts a new cluster or joins one")
	case cfg.TickInterval <= 0:
		return bad("tick-interval %v must be positive", cfg.TickInterval)
	case cfg.ElectionTicks < 2:
		return bad("election-ticks %d must be at least 2", cfg.ElectionTicks)
	case cfg.HeartbeatTicks < 1 || cfg.HeartbeatTicks >= cfg.ElectionTicks:
		return bad("heartbeat-ticks %d must lie in 1..election-ticks-1", cfg.HeartbeatTicks)
	case cfg.SessionsMax < 1 || cfg.SessionsMax > 1<<20:
		return bad("sessions-max %d must lie in 1..%d", cfg.SessionsMax, 1<<20)
	}
	if err := checkHostPort("listen-peer", cfg.PeerAddr); err != nil {
		return err
	}
	if err := checkHostPort("listen-http", cfg.HTTPAddr); err != nil {
		return err
	}
	if cfg.Peers == nil {
		cfg.Peers = map[uint64]string{}
	}
	if a, ok := cfg.Peers[cfg.ID]; !ok {
		cfg.Peers[cfg.ID] = cfg.PeerAddr
	} else if a != cfg.PeerAddr {
		return bad("peers gives member %d the address %s but listen-peer is %s", cfg.ID, a, cfg.PeerAddr)
	}
	for id, a := range cfg.Peers {
		if id == 0 {
			return bad("peers holds member id 0, which is reserved")
		}
		if err := checkHostPort(fmt.Sprintf("peers (member %d)", id), a); err != nil {
			return err
		}
	}
	if cfg.HTTPPeers == nil {
		cfg.HTTPPeers = map[uint64]string{}
	}
	if a, ok := cfg.HTTPPeers[cfg.ID]; !ok {
		cfg.HTTPPeers[cfg.ID] = cfg.HTTPAddr
	} else if a != cfg.HTTPAddr {
		return bad("http-peers gives member %d the address %s but listen-http is %s", cfg.ID, a, cfg.HTTPAddr)
	}
	for id, a := range cfg.HTTPPeers {
		if err := checkHostPort(fmt.Sprintf("http-peers (member %d)", id), a); err != nil {
			return err
		}
	}
	if cfg.GroupAddr != "" {
		if err := checkHostPort("listen-group", cfg.GroupAddr); err != nil {
			return err
		}
		if cfg.GroupPeers == nil {
			cfg.GroupPeers = map[uint64]string{}
		}
		if a, ok := cfg.GroupPeers[cfg.ID]; !ok {
			cfg.GroupPeers[cfg.ID] = cfg.GroupAddr
		} else if a != cfg.GroupAddr {
			return bad("group-peers gives member %d the address %s but listen-group is %s", cfg.ID, a, cfg.GroupAddr)
		}
		for id, a := range cfg.GroupPeers {
			if id == 0 {
				return bad("group-peers holds member id 0, which is reserved")
			}
			if err := checkHostPort(fmt.Sprintf("group-peers (member %d)", id), a); err != nil {
				return err
			}
		}
	} else if len(cfg.GroupPeers) > 0 {
		return bad("group-peers is set but listen-group is empty")
	}
	if err := cfg.KV.Validate(); err != nil {
		return fmt.Errorf("%w: kv limits: %w", ErrConfig, err)
	}
	return checkDataDir(cfg.DataDir)
}

// checkDataDir accepts an existing directory, or a missing one whose parent
// exists (the member creates it).
func checkDataDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("%w: data-dir %s is not a directory", ErrDataDir, dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: data-dir %s: %w", ErrDataDir, dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: data-dir %s does not exist and neither does its parent %s; create the parent first", ErrDataDir, dir, parent)
	}
	return nil
}

func checkHostPort(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%w: %s %q is not host:port", ErrConfig, field, addr)
	}
	_ = host // an empty host listens on every interface
	return nil
}

// sortedIDs returns the keys of m in order.
func sortedIDs(m map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
