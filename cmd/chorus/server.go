package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorus-project/chorus/internal/httpapi"
	"github.com/chorus-project/chorus/internal/server"
)

// Exit codes beyond main.go's, for scripts (docs/server.md).
const (
	exitNotFound      = 3 // a namespace or key does not exist
	exitCompareFailed = 4 // a txn's compares did not hold
	exitDataDir       = 5 // the server refused its data directory
)

// codedError carries an exit code other than exitError.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// ExitCode is the process exit code for the error.
func (e codedError) ExitCode() int { return e.code }

// entryPayloadBytesMax is what a put's key and value may take of one log
// entry: smr's command limit (wal.DefaultRecordBytesMax - 64, just under
// 1 MiB) less room for the request's headers.
const entryPayloadBytesMax = 1<<20 - 4<<10

// Defaults of chorus server's addresses.
const (
	defaultHTTPAddr = "127.0.0.1:7000"
	defaultPeerAddr = "127.0.0.1:7100"
)

// serverFlags are the values of chorus server's flags.
type serverFlags struct {
	configFile      string
	id, clusterID   uint64
	dataDir         string
	listenPeer      string
	listenHTTP      string
	peers           string
	httpPeers       string
	listenGroup     string
	groupPeers      string
	bootstrap, join bool
	logFormat       string
	logLevel        string
	tickInterval    time.Duration
	electionTicks   int
	heartbeatTicks  int
	snapshotEntries uint64
	sessionsMax     int
	keyBytesMax     int
	valueBytesMax   int
	txnOpsMax       int
	bodyBytesMax    int64
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	def := server.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one member of a chorus cluster",
		Long: `server runs one member of a chorus cluster: the replicated catalog of namespaces
and the data of every paxos namespace in a Multi-Paxos log on disk, served over
the HTTP/JSON API (docs/api.md).

Every flag can also be set with an environment variable CHORUS_<FLAG> (upper
case, dashes as underscores: CHORUS_DATA_DIR) or in a JSON file given with
--config whose keys are the flag names ({"data-dir": "/var/lib/chorus"}).
A flag beats the environment, which beats the file, which beats the default.

A new cluster: start every member with --bootstrap and the same --peers,
--http-peers and --cluster-id. A restart: the same command (--bootstrap is
ignored once the data directory holds data).`,
		Example: `  chorus server --id 1 --cluster-id 7 --data-dir /tmp/c1 --bootstrap \
    --listen-peer 127.0.0.1:7101 --listen-http 127.0.0.1:7001 \
    --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \
    --http-peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvAndFile(cmd.Flags(), f.configFile); err != nil {
				return usageError{err}
			}
			return runServer(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "JSON file of settings, keyed by flag name")
	fl.Uint64Var(&f.id, "id", 0, "this member's id (non-zero)")
	fl.Uint64Var(&f.clusterID, "cluster-id", 0, "the cluster's id (non-zero, the same on every member)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (created if absent; its parent must exist)")
	fl.StringVar(&f.listenPeer, "listen-peer", defaultPeerAddr, "host:port for the other members")
	fl.StringVar(&f.listenHTTP, "listen-http", defaultHTTPAddr, "host:port of the HTTP API")
	fl.StringVar(&f.peers, "peers", "", "every member's peer address: 1=host:port,2=host:port,...")
	fl.StringVar(&f.httpPeers, "http-peers", "", "every member's HTTP address: 1=host:port,... (for forwarding to the leader)")
	fl.StringVar(&f.listenGroup, "listen-group", "", "host:port of the group layer, for active namespaces (empty: mode active off)")
	fl.StringVar(&f.groupPeers, "group-peers", "", "every member's group address: 1=host:port,... (the founders of each active namespace's group)")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "start a new cluster in an empty data directory")
	fl.BoolVar(&f.join, "join", false, "start a member that the cluster's leader adds")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.DurationVar(&f.tickInterval, "tick-interval", def.TickInterval, "length of one protocol tick")
	fl.IntVar(&f.electionTicks, "election-ticks", def.ElectionTicks, "ticks without a leader before a follower campaigns")
	fl.IntVar(&f.heartbeatTicks, "heartbeat-ticks", def.HeartbeatTicks, "ticks between a leader's heartbeats")
	fl.Uint64Var(&f.snapshotEntries, "snapshot-entries", def.SnapshotEntries, "snapshot and compact the log every this many entries")
	fl.IntVar(&f.sessionsMax, "sessions-max", def.SessionsMax, "client sessions remembered for exactly-once retries")
	fl.IntVar(&f.keyBytesMax, "key-bytes-max", def.KV.KeyBytesMax, "longest key")
	fl.IntVar(&f.valueBytesMax, "value-bytes-max", def.KV.ValueBytesMax, "longest value")
	fl.IntVar(&f.txnOpsMax, "txn-ops-max", def.KV.TxnOpsMax, "most compares and ops in one txn")
	fl.Int64Var(&f.bodyBytesMax, "body-bytes-max", 2<<20, "largest JSON request body")
	fl.DurationVar(&f.requestTimeout, "request-timeout", 5*time.Second, "bound on one request's wait for a quorum (then 503)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on draining requests at shutdown")
	return cmd
}

// envName is the environment variable of a flag: CHORUS_DATA_DIR.
func envName(flag string) string {
	return "CHORUS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvAndFile sets every flag not given on the command line from its
// environment variable, else from the config file.
func applyEnvAndFile(fs *pflag.FlagSet, file string) error {
	if file == "" {
		file = os.Getenv(envName("config"))
	}
	values := map[string]string{}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			return fmt.Errorf("--config %s: not a JSON object: %w", file, err)
		}
		for k, v := range raw {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("--config %s: unknown key %q (keys are the flag names, e.g. data-dir)", file, k)
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				s = string(v) // a number or a boolean, as written
			}
			values[k] = s
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(fl.Name)); ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(fl.Name), v, err))
			}
			return
		}
		if v, ok := values[fl.Name]; ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("--config %s: %s=%q: %w", file, fl.Name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// parseMembers parses "1=host:port,2=host:port".
func parseMembers(flag, s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("--%s: %q is not id=host:port with a non-zero id", flag, part)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("--%s: member %d listed twice", flag, id)
		}
		out[id] = addr
	}
	return out, nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// serverConfig turns the flags into a server.Config; errors are usage
// errors naming the flag.
func (f serverFlags) serverConfig() (server.Config, error) {
	cfg := server.DefaultConfig()
	peers, err := parseMembers("peers", f.peers)
	if err != nil {
		return cfg, err
	}
	httpPeers, err := parseMembers("http-peers", f.httpPeers)
	if err != nil {
		return cfg, err
	}
	groupPeers, err := parseMembers("group-peers", f.groupPeers)
	if err != nil {
		return cfg, err
	}
	switch {
	case f.keyBytesMax < 1:
		return cfg, fmt.Errorf("--key-bytes-max %d must be positive", f.keyBytesMax)
	case f.valueBytesMax < 1:
		return cfg, fmt.Errorf("--value-bytes-max %d must be positive", f.valueBytesMax)
	case f.keyBytesMax+f.valueBytesMax > entryPayloadBytesMax:
		return cfg, fmt.Errorf("--key-bytes-max %d plus --value-bytes-max %d exceed %d bytes: a put must fit in one log entry (just under 1 MiB)",
			f.keyBytesMax, f.valueBytesMax, entryPayloadBytesMax)
	case f.txnOpsMax < 1:
		return cfg, fmt.Errorf("--txn-ops-max %d must be positive", f.txnOpsMax)
	case f.bodyBytesMax < 1:
		return cfg, fmt.Errorf("--body-bytes-max %d must be positive", f.bodyBytesMax)
	case f.requestTimeout <= 0:
		return cfg, fmt.Errorf("--request-timeout %v must be positive", f.requestTimeout)
	case f.shutdownTimeout <= 0:
		return cfg, fmt.Errorf("--shutdown-timeout %v must be positive", f.shutdownTimeout)
	}
	cfg.ClusterID, cfg.ID, cfg.DataDir = f.clusterID, f.id, f.dataDir
	cfg.PeerAddr, cfg.HTTPAddr = f.listenPeer, f.listenHTTP
	cfg.Peers, cfg.HTTPPeers = peers, httpPeers
	cfg.GroupAddr, cfg.GroupPeers = f.listenGroup, groupPeers
	cfg.Bootstrap, cfg.Join = f.bootstrap, f.join
	cfg.TickInterval, cfg.ElectionTicks, cfg.HeartbeatTicks = f.tickInterval, f.electionTicks, f.heartbeatTicks
	cfg.SnapshotEntries, cfg.SessionsMax = f.snapshotEntries, f.sessionsMax
	cfg.KV.KeyBytesMax, cfg.KV.ValueBytesMax, cfg.KV.TxnOpsMax = f.keyBytesMax, f.valueBytesMax, f.txnOpsMax
	if need := cfg.KV.KeyBytesMax + cfg.KV.ValueBytesMax + 4<<10; cfg.KV.ResponseBytesMax < need {
		cfg.KV.ResponseBytesMax = need
	}
	return cfg, nil
}

func runServer(ctx context.Context, f serverFlags) error {
	logger, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return usageError{err}
	}
	cfg, err := f.serverConfig()
	if err != nil {
		return usageError{err}
	}
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		if errors.Is(err, server.ErrDataDir) {
			return codedError{exitDataDir, err}
		}
		return usageError{err}
	}
	// Listen before starting the member, so that a taken HTTP port fails
	// before anything is written to the data directory.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--listen-http %s: %w", cfg.HTTPAddr, err)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		ln.Close()
		switch {
		case errors.Is(err, server.ErrDataDir):
			return codedError{exitDataDir, err}
		case errors.Is(err, server.ErrConfig):
			return usageError{err}
		}
		return err
	}
	api := httpapi.New(srv, httpapi.Config{
		BodyBytesMax: f.bodyBytesMax, RequestTimeout: f.requestTimeout, Version: version, Logger: logger,
	})
	hs := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		// A body is at most --body-bytes-max; a client that takes longer
		// than this to send it holds a connection for nothing.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: f.requestTimeout + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("serving HTTP API", "addr", ln.Addr().String(), "peers", fmtMembers(cfg.Peers), "http_peers", fmtMembers(cfg.HTTPPeers))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-serveErr:
		runErr = fmt.Errorf("HTTP server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Warn("HTTP shutdown", "err", err)
	}
	if err := srv.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close member: %w", err))
	}
	return runErr
}

func fmtMembers(m map[uint64]string) string {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, m[id])
	}
	return strings.Join(parts, ",")
}
