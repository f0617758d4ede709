package kv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/tidwall/btree"
)

// Machine is the deterministic key-value state machine. Members that apply
// the same commands at the same indexes, from the same state, hold
// byte-identical state (equal Digest) and return byte-identical responses.
//
// A Machine is not safe for concurrent use: the caller applies, queries
// and snapshots from one goroutine (the threading contract of
// smr.StateMachine), or guards it with a lock.
type Machine struct {
	cfg        Config
	applied    uint64
	namespaces *btree.BTreeG[*namespace] // by name
	sessions   sessionTable
	undo       []undoEntry // scratch of the txn being applied
	nsPivot    namespace   // scratch search key for namespaces
}

// New returns an empty Machine. Zero fields of cfg take their defaults.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg.withDefaults()}
	m.reset()
	return m, nil
}

func (m *Machine) reset() {
	m.applied = 0
	m.namespaces = newNamespaceTree()
	m.sessions = newSessionTable()
}

func newNamespaceTree() *btree.BTreeG[*namespace] {
	return btree.NewBTreeGOptions(namespaceLess, btree.Options{NoLocks: true})
}

// Config returns the machine's configuration, defaults filled in.
func (m *Machine) Config() Config { return m.cfg }

// AppliedIndex is the index of the last command given to Apply (or of the
// restored snapshot); 0 for a new Machine.
func (m *Machine) AppliedIndex() uint64 { return m.applied }

// Stats summarizes the state.
func (m *Machine) Stats() Stats {
	s := Stats{Namespaces: m.namespaces.Len(), Sessions: m.sessions.len()}
	m.namespaces.Scan(func(ns *namespace) bool {
		s.Keys += uint64(ns.keys.Len())
		s.Bytes += ns.bytes
		return true
	})
	return s
}

// Digest is a SHA-256 over the canonical state: the bytes Snapshot writes.
// Two machines with equal digests answer every future command alike.
func (m *Machine) Digest() [32]byte {
	h := sha256.New()
	if err := m.Snapshot(h); err != nil {
		// A hash never fails to write; Snapshot fails only on its writer.
		panic(fmt.Sprintf("kv: snapshot into a hash: %v", err))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Apply executes one encoded command at log position index. Indexes must
// grow strictly from call to call (they need not be consecutive); an index
// at or below AppliedIndex is refused with CodeBadRequest and changes
// nothing. Every other command advances AppliedIndex to index, even one
// that is rejected: it was a log entry.
//
// Apply never panics on bad input: a malformed command yields
// CodeBadRequest (CodeTooLarge for a length over a limit). It returns the
// encoded Response; the caller owns the bytes.
func (m *Machine) Apply(index uint64, cmd []byte) []byte {
	if index <= m.applied {
		return EncodeResponse(Response{
			Code:    CodeBadRequest,
			Message: fmt.Sprintf("index %d is not above the applied index %d", index, m.applied),
			Index:   m.applied,
		})
	}
	m.applied = index
	req, err := DecodeRequest(cmd, m.cfg)
	if err != nil {
		// No session is recorded: the same bytes give the same answer.
		return EncodeResponse(errResponse(index, err))
	}
	client, seq := req.Session.Client, req.Session.Seq
	if client != 0 {
		if s := m.sessions.get(client); s != nil {
			switch {
			case seq == s.seq && !plant.noDedup:
				return slices.Clone(s.resp)
			case seq < s.seq && !plant.noDedup:
				return EncodeResponse(Response{
					Code:    CodeStaleSession,
					Message: fmt.Sprintf("seq %d of client %d is below its last applied seq %d", seq, client, s.seq),
					Index:   index,
				})
			}
		}
	}
	out := EncodeResponse(m.execute(index, req))
	if client != 0 {
		m.sessions.record(client, seq, index, m.keptResponse(out), m.cfg.SessionsMax)
	}
	return out
}

// keptResponse is what the session table keeps of out: out itself, or
// without its results when it is over SessionResponseBytesMax.
func (m *Machine) keptResponse(out []byte) []byte {
	if len(out) <= m.cfg.SessionResponseBytesMax {
		return slices.Clone(out)
	}
	resp, err := DecodeResponse(out)
	if err != nil {
		panic(fmt.Sprintf("kv: own response does not decode: %v", err))
	}
	return EncodeResponse(Response{
		Code: resp.Code, Message: resp.Message, Index: resp.Index,
		Succeeded: resp.Succeeded, ResultsDropped: true,
	})
}

// Query executes a read-only encoded request against the current state
// without changing it: a Txn of Get and Range ops without compares or Else
// ops, ListNamespaces or DescribeNamespace. Its Session is ignored. The
// response's Index is AppliedIndex.
func (m *Machine) Query(req []byte) []byte {
	r, err := DecodeRequest(req, m.cfg)
	if err != nil {
		return EncodeResponse(errResponse(m.applied, err))
	}
	switch r.Kind {
	case KindListNamespaces, KindDescribeNamespace:
	case KindTxn:
		if err := validateReadOnly(r.Txn); err != nil {
			return EncodeResponse(errResponse(m.applied, err))
		}
	default:
		return EncodeResponse(Response{
			Code: CodeBadRequest, Index: m.applied,
			Message: fmt.Sprintf("%s changes the state: apply it, do not query it", r.Kind),
		})
	}
	return EncodeResponse(m.execute(m.applied, r))
}

// execute runs a decoded request at index. Every path validates the whole
// request before it changes anything.
func (m *Machine) execute(index uint64, req Request) Response {
	switch req.Kind {
	case KindCreateNamespace:
		return m.createNamespace(index, req)
	case KindDeleteNamespace:
		ns, resp := m.lookup(index, req.Namespace)
		if ns == nil {
			return resp
		}
		m.namespaces.Delete(ns)
		return Response{Index: index}
	case KindListNamespaces:
		resp := Response{Index: index}
		m.namespaces.Scan(func(ns *namespace) bool {
			resp.Namespaces = append(resp.Namespaces, ns.info())
			return true
		})
		return resp
	case KindDescribeNamespace:
		ns, resp := m.lookup(index, req.Namespace)
		if ns == nil {
			return resp
		}
		return Response{Index: index, Namespaces: []NamespaceInfo{ns.info()}}
	case KindTxn:
		ns, resp := m.lookup(index, req.Namespace)
		if ns == nil {
			return resp
		}
		if err := validateTxn(req.Txn, m.cfg); err != nil {
			return errResponse(index, err)
		}
		return m.runTxn(index, ns, req.Txn)
	}
	// DecodeRequest refuses unknown kinds.
	return Response{Code: CodeBadRequest, Index: index, Message: fmt.Sprintf("unknown kind %d", req.Kind)}
}

func (m *Machine) createNamespace(index uint64, req Request) Response {
	spec := req.Spec
	if spec.Name == "" {
		spec.Name = req.Namespace
	}
	if err := validateSpec(spec); err != nil {
		return errResponse(index, err)
	}
	if m.findNamespace(spec.Name) != nil {
		return Response{Code: CodeExists, Index: index, Message: fmt.Sprintf("namespace %q exists", spec.Name)}
	}
	if m.namespaces.Len() >= m.cfg.NamespacesMax {
		return Response{Code: CodeTooLarge, Index: index,
			Message: fmt.Sprintf("%d namespaces exist, NamespacesMax is %d", m.namespaces.Len(), m.cfg.NamespacesMax)}
	}
	ns := newNamespace(spec, index)
	m.namespaces.Set(ns)
	return Response{Index: index, Namespaces: []NamespaceInfo{ns.info()}}
}

// lookup finds a namespace, or returns the response that says why not.
func (m *Machine) lookup(index uint64, name string) (*namespace, Response) {
	if err := validateName(name); err != nil {
		return nil, errResponse(index, err)
	}
	ns := m.findNamespace(name)
	if ns == nil {
		return nil, Response{Code: CodeNotFound, Index: index, Message: fmt.Sprintf("namespace %q does not exist", name)}
	}
	return ns, Response{}
}

func (m *Machine) findNamespace(name string) *namespace {
	m.nsPivot.spec.Name = name
	ns, _ := m.namespaces.Get(&m.nsPivot)
	return ns
}

// errResponse turns a validation or decoding error into a response.
func errResponse(index uint64, err error) Response {
	code := CodeBadRequest
	if errors.Is(err, ErrTooLarge) {
		code = CodeTooLarge
	}
	return Response{Code: code, Index: index, Message: truncate(err.Error(), MessageBytesMax)}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // a continuation byte: back off
		n--
	}
	return s[:n]
}
