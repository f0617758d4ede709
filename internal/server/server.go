package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/smr"
)

// Backend serves the keys of namespaces of one replication mode. Write
// runs a command (a Txn that may change state), Read a read-only Txn (no
// compares, only Get and Range). Both return the kv.Response of the
// command: a non-OK Code is an answer, an error means no answer (not the
// leader, no quorum, ctx ended).
type Backend interface {
	Write(ctx context.Context, req kv.Request) (kv.Response, error)
	Read(ctx context.Context, req kv.Request) (kv.Response, error)
	Close() error
}

// BackendFactory makes the Backend of one namespace of its mode, when the
// namespace is first used on this member.
type BackendFactory func(spec kv.NamespaceSpec) (Backend, error)

// Modes.
const (
	// ModePaxos: the namespace's commands go through the Multi-Paxos log.
	ModePaxos = "paxos"
	// ModeActive: the group's total order; needs a registered factory.
	ModeActive = "active"
)

// knownModes are the modes of DESIGN.md section 2 besides paxos: a
// namespace of one of them needs a registered BackendFactory.
var knownModes = map[string]bool{
	ModeActive: true, "primary-backup": true, "local-write": true,
	"passive": true, "quorum": true, "lazy": true,
}

// NotLeaderError says that this member does not lead; it wraps
// ErrNotLeader. HTTPAddr is the leader's HTTP address ("" if unknown).
type NotLeaderError struct {
	Leader   uint64
	HTTPAddr string
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("server: not the leader; leader is member %d at %q", e.Leader, e.HTTPAddr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Server is one member of a chorus cluster: the replicated catalog of
// namespaces and the data of every paxos namespace in one smr.Member, and
// a Backend per namespace of another mode. Its methods are safe for
// concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	sm     *machine
	member *smr.Member

	// The group layer of active namespaces (nil without GroupAddr).
	host       *group.Host
	stopGroups chan struct{}
	groupsDone chan struct{}

	mu        sync.Mutex
	factories map[string]BackendFactory
	backends  map[string]Backend // by namespace
	closed    bool
	// backendsOpen counts backends, so that paxos requests skip mu when
	// there are none.
	backendsOpen atomic.Int64
}

// Start validates cfg, opens the data directory and starts the member.
// Errors wrap ErrConfig or ErrDataDir (another cluster's or member's data
// directory, an empty one without Bootstrap or Join) with a message saying
// what to fix.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.KV.SessionsMax = cfg.SessionsMax
	sm, err := newMachine(cfg.KV)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var peers []smr.Peer
	for _, id := range sortedIDs(cfg.Peers) {
		peers = append(peers, smr.Peer{ID: smr.MemberID(id), Addr: cfg.Peers[id]})
	}
	scfg := smr.DefaultConfig(cfg.ClusterID, smr.MemberID(cfg.ID), peers, cfg.DataDir)
	scfg.Bootstrap, scfg.Join = cfg.Bootstrap, cfg.Join
	scfg.TickInterval = cfg.TickInterval
	scfg.ElectionTicks, scfg.HeartbeatTicks = cfg.ElectionTicks, cfg.HeartbeatTicks
	scfg.SnapshotEntries = cfg.SnapshotEntries
	scfg.SessionsMax = cfg.SessionsMax
	scfg.Logger = logger
	member, err := smr.Start(ctx, scfg, sm)
	switch {
	case errors.Is(err, smr.ErrIdentity):
		return nil, fmt.Errorf("%w: data-dir %s belongs to another cluster or member (this is cluster %d, member %d); point data-dir at this member's own data: %w",
			ErrDataDir, cfg.DataDir, cfg.ClusterID, cfg.ID, err)
	case errors.Is(err, smr.ErrNoData):
		return nil, fmt.Errorf("%w: data-dir %s is empty; pass --bootstrap for a new cluster or --join for a member being added: %w",
			ErrDataDir, cfg.DataDir, err)
	case errors.Is(err, smr.ErrInvalidConfig):
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	case err != nil:
		return nil, fmt.Errorf("server: start member %d: %w", cfg.ID, err)
	}
	logger.Info("member started", "id", cfg.ID, "cluster", cfg.ClusterID, "peer", cfg.PeerAddr,
		"http", cfg.HTTPAddr, "data_dir", cfg.DataDir, "bootstrap", cfg.Bootstrap, "join", cfg.Join)
	s := &Server{
		cfg: cfg, log: logger, sm: sm, member: member,
		factories:  map[string]BackendFactory{},
		backends:   map[string]Backend{},
		stopGroups: make(chan struct{}),
	}
	if err := s.startGroups(); err != nil {
		member.Close()
		return nil, err
	}
	return s, nil
}

// Config returns the server's validated configuration.
func (s *Server) Config() Config { return s.cfg }

// RegisterMode makes namespaces of mode available, served by backends that
// f makes. Register before serving requests.
func (s *Server) RegisterMode(mode string, f BackendFactory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.factories[mode] = f
}

// CheckMode says whether a namespace of mode can be created here.
func (s *Server) CheckMode(mode string) error {
	if mode == ModePaxos {
		return nil
	}
	s.mu.Lock()
	_, ok := s.factories[mode]
	s.mu.Unlock()
	switch {
	case ok:
		return nil
	case mode == ModeActive:
		return fmt.Errorf("%w: mode active needs the group layer: start every member with --listen-group and --group-peers", ErrModeUnavailable)
	case knownModes[mode]:
		return fmt.Errorf("%w: mode %s not available on this server (not built yet); use mode paxos", ErrModeUnavailable, mode)
	default:
		return fmt.Errorf("%w: %q; the modes are paxos and active", ErrUnknownMode, mode)
	}
}

// CreateNamespace creates a namespace in the replicated catalog. The mode is
// checked here first: a namespace of a mode this server cannot serve is
// refused before it reaches the log.
func (s *Server) CreateNamespace(ctx context.Context, sess kv.Session, spec kv.NamespaceSpec) (kv.Response, error) {
	if err := s.CheckMode(spec.Mode); err != nil {
		return kv.Response{}, err
	}
	return s.propose(ctx, cmdCatalog, kv.Request{Session: sess, Kind: kv.KindCreateNamespace, Namespace: spec.Name, Spec: spec})
}

// DeleteNamespace removes a namespace and its keys from the catalog, and
// closes this member's backend of it (other members close theirs when a
// request next routes to the namespace and finds it gone from the catalog).
func (s *Server) DeleteNamespace(ctx context.Context, sess kv.Session, name string) (kv.Response, error) {
	res, err := s.propose(ctx, cmdCatalog, kv.Request{Session: sess, Kind: kv.KindDeleteNamespace, Namespace: name})
	if err == nil && res.Code == kv.CodeOK {
		s.closeStale(name)
	}
	return res, err
}

// Namespaces lists the catalog (linearizable).
func (s *Server) Namespaces(ctx context.Context) (kv.Response, error) {
	return s.read(ctx, kv.Request{Kind: kv.KindListNamespaces})
}

// Namespace describes one namespace (linearizable).
func (s *Server) Namespace(ctx context.Context, name string) (kv.Response, error) {
	return s.read(ctx, kv.Request{Kind: kv.KindDescribeNamespace, Namespace: name})
}

// Txn runs a transaction in its namespace: a read-only one (no compares,
// only gets and ranges) as a linearizable read, any other as a command.
func (s *Server) Txn(ctx context.Context, req kv.Request) (kv.Response, error) {
	req.Kind = kv.KindTxn
	b, err := s.backend(req.Namespace)
	if err != nil {
		return kv.Response{}, err
	}
	if ReadOnly(req.Txn) {
		return b.Read(ctx, req)
	}
	return b.Write(ctx, req)
}

// ReadOnly says whether t can run as a query: no compares, and only Get and
// Range operations.
func ReadOnly(t kv.Txn) bool {
	if len(t.Compares) > 0 || len(t.Else) > 0 {
		return false
	}
	for _, op := range t.Then {
		if op.Type != kv.OpGet && op.Type != kv.OpRange {
			return false
		}
	}
	return true
}

// paxosBackend serves paxos namespaces through the server's member.
type paxosBackend struct{ s *Server }

func (b paxosBackend) Write(ctx context.Context, req kv.Request) (kv.Response, error) {
	return b.s.propose(ctx, cmdData, req)
}
func (b paxosBackend) Read(ctx context.Context, req kv.Request) (kv.Response, error) {
	return b.s.read(ctx, req)
}
func (paxosBackend) Close() error { return nil }

// backend returns the Backend of a namespace by its mode in the catalog as
// this member applied it. A namespace it does not know goes to paxos, whose
// state machine answers CodeNotFound (or finds it, if this member lagged).
func (s *Server) backend(ns string) (Backend, error) {
	mode := s.sm.mode(ns)
	if mode == "" || mode == ModePaxos {
		if s.backendsOpen.Load() > 0 {
			s.closeStale(ns)
		}
		return paxosBackend{s}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrStopped
	}
	if b, ok := s.backends[ns]; ok {
		return b, nil
	}
	if mode == ModeActive && s.host != nil {
		// reconcileGroups starts it; a request does not wait under mu.
		return nil, fmt.Errorf("%w: the group of namespace %s is starting on this member; retry", ErrUnavailable, ns)
	}
	f, ok := s.factories[mode]
	if !ok {
		return nil, fmt.Errorf("%w: namespace %s has mode %s, which this server cannot serve", ErrModeUnavailable, ns, mode)
	}
	b, err := f(kv.NamespaceSpec{Name: ns, Mode: mode})
	if err != nil {
		return nil, fmt.Errorf("server: backend of namespace %s (mode %s): %w", ns, mode, err)
	}
	s.backends[ns] = b
	s.backendsOpen.Add(1)
	return b, nil
}

// closeStale closes this member's backend of ns, a namespace that was
// deleted (through another member) or recreated as paxos.
func (s *Server) closeStale(ns string) {
	s.mu.Lock()
	b, ok := s.backends[ns]
	if ok {
		delete(s.backends, ns)
		s.backendsOpen.Add(-1)
	}
	s.mu.Unlock()
	if b != nil {
		if err := b.Close(); err != nil {
			s.log.Warn("close backend of a deleted namespace", "namespace", ns, "err", err)
		}
	}
}

// propose replicates req through the log. With a session, the smr request
// id is the session, so that a retry (here or on another member) applies
// once; kv keeps the same session as a second line (it remembers
// responses after smr's table evicted the client).
func (s *Server) propose(ctx context.Context, kind byte, req kv.Request) (kv.Response, error) {
	enc := kv.EncodeRequest(req)
	cmd := make([]byte, 0, 1+len(enc))
	cmd = append(append(cmd, kind), enc...)
	var (
		res []byte
		err error
	)
	if req.Session.Client != 0 {
		res, err = s.member.ProposeRequest(ctx, smr.RequestID{Client: req.Session.Client, Seq: req.Session.Seq}, cmd)
	} else {
		res, err = s.member.Propose(ctx, cmd)
	}
	if err != nil {
		return kv.Response{}, s.mapErr(err)
	}
	return decode(res)
}

// read runs req as a linearizable query at the leader.
func (s *Server) read(ctx context.Context, req kv.Request) (kv.Response, error) {
	res, err := s.member.Read(ctx, kv.EncodeRequest(req))
	if err != nil {
		return kv.Response{}, s.mapErr(err)
	}
	return decode(res)
}

func decode(res []byte) (kv.Response, error) {
	r, err := kv.DecodeResponse(res)
	if err != nil {
		return kv.Response{}, fmt.Errorf("server: undecodable state machine response: %w", err)
	}
	return r, nil
}

// mapErr turns smr's errors into this package's.
func (s *Server) mapErr(err error) error {
	var nl *smr.NotLeaderError
	switch {
	case errors.As(err, &nl):
		if nl.Leader == 0 {
			return fmt.Errorf("%w: no leader elected yet", ErrUnavailable)
		}
		return &NotLeaderError{Leader: uint64(nl.Leader), HTTPAddr: s.HTTPAddrOf(uint64(nl.Leader))}
	case errors.Is(err, smr.ErrMembership):
		return fmt.Errorf("%w: %w", ErrMembership, err)
	case errors.Is(err, smr.ErrInvalidConfig):
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	case errors.Is(err, smr.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, smr.ErrStaleRequest):
		return fmt.Errorf("%w: %w", ErrStaleSession, err)
	case errors.Is(err, smr.ErrBusy), errors.Is(err, smr.ErrTimeout), errors.Is(err, smr.ErrProposalLost):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.Is(err, smr.ErrStopped):
		return fmt.Errorf("%w: %w", ErrStopped, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: no answer in time (no quorum?): %w", ErrUnavailable, err)
	}
	return err
}

// Status is a member's state for operators.
type Status struct {
	ID, ClusterID      uint64
	Role               string
	Leader             uint64
	LeaderHTTP         string
	Commit, Applied    uint64
	LastSlot, SnapSlot uint64
	Members            []uint64
	PeerAddr, HTTPAddr string
}

// Status returns the member's state as of its last step.
func (s *Server) Status() Status {
	st := s.member.Status()
	out := Status{
		ID: s.cfg.ID, ClusterID: s.cfg.ClusterID, Role: st.Role, Leader: uint64(st.Leader),
		Commit: st.Commit, Applied: st.Applied, LastSlot: st.LastSlot, SnapSlot: st.SnapshotSlot,
		PeerAddr: s.cfg.PeerAddr, HTTPAddr: s.cfg.HTTPAddr,
	}
	if out.Leader != 0 {
		out.LeaderHTTP = s.HTTPAddrOf(out.Leader)
	}
	for _, id := range st.Members {
		out.Members = append(out.Members, uint64(id))
	}
	return out
}

// Digest returns the hex sha256 of this member's state (the catalog and
// every paxos namespace) and the number of commands applied to it. Members
// that applied the same number of commands have the same digest. It costs a
// pass over the state when it changed since the last call.
func (s *Server) Digest() (digest string, commands uint64) { return s.sm.digest() }

// Member is one member as this server knows it.
type Member struct {
	ID                 uint64
	PeerAddr, HTTPAddr string
	Leader             bool
}

// Members lists the membership in force, with the addresses this server
// was configured with.
func (s *Server) Members() (leader uint64, members []Member) {
	st := s.member.Status()
	for _, id := range st.Members {
		members = append(members, Member{
			ID: uint64(id), PeerAddr: s.cfg.Peers[uint64(id)], HTTPAddr: s.HTTPAddrOf(uint64(id)),
			Leader: id == st.Leader,
		})
	}
	return uint64(st.Leader), members
}

// HTTPAddrOf returns the HTTP address of member id ("" if unknown): from
// --http-peers, else as recorded through the log by AddMember.
func (s *Server) HTTPAddrOf(id uint64) string {
	if a, ok := s.cfg.HTTPPeers[id]; ok {
		return a
	}
	return s.sm.httpAddr(id)
}

// AddMember adds member id to the cluster: the HTTP addresses of every
// member this one knows, the new one included, go through the log first (so
// every member can forward to it, and it to them), then smr's AddMember
// (its peer address, then the membership change). Start the new member
// with Join. Only the leader can; elsewhere *NotLeaderError.
func (s *Server) AddMember(ctx context.Context, id uint64, peerAddr, httpAddr string) error {
	if id == 0 {
		return fmt.Errorf("%w: member id 0 is reserved", ErrBadRequest)
	}
	if err := checkHostPort("peer_addr", peerAddr); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := checkHostPort("http_addr", httpAddr); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	// smr commits the peer address before the membership change and would
	// re-point an existing member at it even though the change is then
	// refused: check here (a concurrent change can still slip between).
	for _, m := range s.member.Status().Members {
		if uint64(m) == id {
			return fmt.Errorf("%w: member %d is already in the cluster", ErrMembership, id)
		}
	}
	book := s.sm.httpAddrBook()
	maps.Copy(book, s.cfg.HTTPPeers)
	book[id] = httpAddr
	if _, err := s.member.Propose(ctx, encodeHTTPAddrs(book)); err != nil {
		return s.mapErr(err)
	}
	if err := s.member.AddMember(ctx, smr.MemberID(id), peerAddr); err != nil {
		return s.mapErr(err)
	}
	s.log.Info("member added", "member", id, "peer", peerAddr, "http", httpAddr)
	return nil
}

// RemoveMember removes member id from the cluster. Only the leader can.
func (s *Server) RemoveMember(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("%w: member id 0 is reserved", ErrBadRequest)
	}
	if err := s.member.RemoveMember(ctx, smr.MemberID(id)); err != nil {
		return s.mapErr(err)
	}
	s.log.Info("member removed", "member", id)
	return nil
}

// Close stops the backends and the member.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.groupsDone != nil {
		close(s.stopGroups)
		<-s.groupsDone
	}
	s.mu.Lock()
	backends := s.backends
	s.backends = nil
	s.mu.Unlock()
	var errs []error
	for ns, b := range backends {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close backend of %s: %w", ns, err))
		}
	}
	if s.host != nil {
		if err := s.host.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.member.Close(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("member stopped", "id", s.cfg.ID)
	return errors.Join(errs...)
}
