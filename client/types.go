package client

// The JSON bodies of the HTTP API (docs/api.md). The server
// (internal/httpapi) encodes exactly these types, so a client and a server
// of the same version agree byte for byte. Keys and values are []byte, which
// encoding/json writes as standard base64.

// KeyValue is a key with its value and bookkeeping.
type KeyValue struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
	// Version is 1 when the key is created and grows by one per put; a
	// deleted and recreated key starts at 1 again (etcd's rule).
	Version uint64 `json:"version"`
	// CreateIndex and ModIndex are the log indexes of the put that created
	// the key and of its last change.
	CreateIndex uint64 `json:"create_index"`
	ModIndex    uint64 `json:"mod_index"`
}

// PutResult answers PUT /v1/ns/{ns}/kv/{key}.
type PutResult struct {
	// Index is the log index at which the put was applied.
	Index uint64 `json:"index"`
	// PrevKV is the previous key-value, with ?prev_kv=true and when the key
	// existed.
	PrevKV *KeyValue `json:"prev_kv,omitempty"`
}

// GetResult answers GET /v1/ns/{ns}/kv/{key}.
type GetResult struct {
	// Index is the applied index the read observed.
	Index uint64   `json:"index"`
	KV    KeyValue `json:"kv"`
}

// DeleteResult answers DELETE /v1/ns/{ns}/kv/{key}.
type DeleteResult struct {
	Index   uint64    `json:"index"`
	Deleted uint64    `json:"deleted"`
	PrevKV  *KeyValue `json:"prev_kv,omitempty"`
}

// ScanResult answers GET /v1/ns/{ns}/scan.
type ScanResult struct {
	Index uint64     `json:"index"`
	KVs   []KeyValue `json:"kvs"`
	// More says the range holds more keys than returned; PageToken, passed
	// back as ?page_token=, continues after the last key returned.
	More      bool   `json:"more"`
	PageToken string `json:"page_token,omitempty"`
}

// Compare targets and results, as spelled in JSON.
const (
	TargetValue       = "value"
	TargetVersion     = "version"
	TargetModIndex    = "mod_index"
	TargetCreateIndex = "create_index"
	TargetExists      = "exists"

	ResultEqual    = "equal"
	ResultNotEqual = "not_equal"
	ResultLess     = "less"
	ResultGreater  = "greater"
)

// Compare is one condition of a transaction.
type Compare struct {
	Key []byte `json:"key"`
	// Target is what is compared: value, version, mod_index, create_index or
	// exists.
	Target string `json:"target"`
	// Result is the relation that must hold: equal, not_equal, less or
	// greater (exists takes equal or not_equal).
	Result string `json:"result"`
	// The operand, by target: Value for value, Version for version, Index
	// for mod_index and create_index, Exists for exists.
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version,omitempty"`
	Index   uint64 `json:"index,omitempty"`
	Exists  bool   `json:"exists,omitempty"`
}

// Operation types, as spelled in JSON.
const (
	OpPut         = "put"
	OpDelete      = "delete"
	OpGet         = "get"
	OpRange       = "range"
	OpDeleteRange = "delete_range"
)

// Op is one operation of a transaction branch.
type Op struct {
	// Type is put, delete, get, range or delete_range.
	Type string `json:"type"`
	Key  []byte `json:"key"`
	// End bounds range and delete_range: [Key, End). Empty End means just
	// Key; End "\x00" (AA== in base64) means every key >= Key.
	End   []byte `json:"end,omitempty"`
	Value []byte `json:"value,omitempty"`
	// Limit caps a range (0: the server's maximum).
	Limit int `json:"limit,omitempty"`
	// PrevKV asks a put or delete for the previous key-value.
	PrevKV bool `json:"prev_kv,omitempty"`
}

// Txn is a transaction: if every Compare holds, Then runs, else Else; the
// whole is one atomic command.
type Txn struct {
	Compares []Compare `json:"compare,omitempty"`
	Then     []Op      `json:"then,omitempty"`
	Else     []Op      `json:"else,omitempty"`
}

// OpResult is the result of one Op, in order.
type OpResult struct {
	KVs     []KeyValue `json:"kvs,omitempty"`
	More    bool       `json:"more,omitempty"`
	Deleted uint64     `json:"deleted,omitempty"`
	PrevKV  *KeyValue  `json:"prev_kv,omitempty"`
}

// TxnResult answers POST /v1/ns/{ns}/txn (with 200 when the compares held,
// 409 with the same body when they did not).
type TxnResult struct {
	Index     uint64     `json:"index"`
	Succeeded bool       `json:"succeeded"`
	Results   []OpResult `json:"results"`
}

// NamespaceSpec is the body of POST /v1/namespaces.
type NamespaceSpec struct {
	Name string `json:"name"`
	// Mode is the replication mode: paxos, or active once it is available.
	Mode   string            `json:"mode"`
	Params map[string]string `json:"params,omitempty"`
}

// Namespace describes a namespace.
type Namespace struct {
	Name        string            `json:"name"`
	Mode        string            `json:"mode"`
	Params      map[string]string `json:"params,omitempty"`
	Keys        uint64            `json:"keys"`
	CreateIndex uint64            `json:"create_index"`
}

// NamespaceList answers GET /v1/namespaces.
type NamespaceList struct {
	Namespaces []Namespace `json:"namespaces"`
}

// Member is one member of the cluster.
type Member struct {
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Leader   bool   `json:"leader"`
}

// MemberAdd is the body of POST /v1/members.
type MemberAdd struct {
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr"`
	HTTPAddr string `json:"http_addr"`
}

// MemberList answers GET /v1/members.
type MemberList struct {
	// Leader is the leader the answering member knows (0: none).
	Leader  uint64   `json:"leader"`
	Members []Member `json:"members"`
}

// View is a group view: an id and its members in rank order.
type View struct {
	// Namespace is the active namespace whose group the view belongs to
	// ("" for the Multi-Paxos membership, which serves every paxos
	// namespace).
	Namespace string   `json:"namespace,omitempty"`
	ID        uint64   `json:"id"`
	Members   []uint64 `json:"members"`
	// Source says where the view comes from: "paxos" (the Multi-Paxos
	// membership: ID 0, member ids) or "group" (the view of an active
	// namespace's process group: view id, members in rank order).
	Source string `json:"source"`
}

// GroupStatus is this member's share of an active namespace's group.
type GroupStatus struct {
	Namespace string   `json:"namespace"`
	ViewID    uint64   `json:"view_id"`
	Members   []uint64 `json:"members"`
	Rank      int      `json:"rank"`
	// Digest is the hex sha256 of this member's copy of the namespace
	// after Applied commands; members at the same Applied agree.
	Digest  string `json:"digest"`
	Applied uint64 `json:"applied"`
}

// ViewList answers GET /v1/views.
type ViewList struct {
	Views []View `json:"views"`
}

// Status answers GET /v1/status: one member's state.
type Status struct {
	ID         uint64 `json:"id"`
	ClusterID  uint64 `json:"cluster_id"`
	Version    string `json:"version,omitempty"`
	Role       string `json:"role"`
	Leader     uint64 `json:"leader"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	// Log positions: committed, applied here, last in the log, and the slot
	// of the latest snapshot.
	Commit       uint64   `json:"commit"`
	Applied      uint64   `json:"applied"`
	LastSlot     uint64   `json:"last_slot"`
	SnapshotSlot uint64   `json:"snapshot_slot"`
	Members      []uint64 `json:"members"`
	// Digest is the hex sha256 of the member's replicated state (catalog and
	// paxos namespaces) after DigestCommands applied commands; members at
	// the same DigestCommands have equal digests.
	Digest         string `json:"digest"`
	DigestCommands uint64 `json:"digest_commands"`
	// Groups are the active namespaces' groups this member runs.
	Groups []GroupStatus `json:"groups,omitempty"`
}

// Health answers GET /v1/health.
type Health struct {
	// Status is "ok" when the member knows a leader, else "unavailable"
	// (with HTTP 503).
	Status string `json:"status"`
	Leader uint64 `json:"leader"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// HTTP headers of the API.
const (
	// HeaderSession carries a client session, "<client>:<seq>" in decimal,
	// on writes: a retried request with the same session applies once.
	HeaderSession = "Chorus-Session"
	// HeaderLeader is set on responses to the leader's HTTP address
	// (host:port) when the answering member knows it.
	HeaderLeader = "Chorus-Leader"
	// HeaderForwarded marks a request a follower forwarded to the leader;
	// it is not forwarded again.
	HeaderForwarded = "Chorus-Forwarded"
)

// BatchOp is one operation of POST /v1/batch: a put, delete or get of one
// key, each its own command (or read) with its own session, sharing one
// HTTP request with the others. The client batches concurrent Put, Delete
// and Get calls this way.
type BatchOp struct {
	Namespace string `json:"ns"`
	// Type is put, delete or get.
	Type  string `json:"type"`
	Key   []byte `json:"key"`
	Value []byte `json:"value,omitempty"`
	// Session is a Chorus-Session value ("<client>:<seq>") for a put or
	// delete; empty for none.
	Session string `json:"session,omitempty"`
	PrevKV  bool   `json:"prev_kv,omitempty"`
}

// BatchRequest is the body of POST /v1/batch.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchResult is the outcome of one BatchOp: Status is the HTTP status the
// operation would have had on its own endpoint; on success the fields of
// its result, else Code and Message.
type BatchResult struct {
	Status  int       `json:"status"`
	Index   uint64    `json:"index,omitempty"`
	KV      *KeyValue `json:"kv,omitempty"`
	PrevKV  *KeyValue `json:"prev_kv,omitempty"`
	Deleted uint64    `json:"deleted,omitempty"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
}

// BatchResponse answers POST /v1/batch: one result per op, in order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}
