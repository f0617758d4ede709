package kv

import "strconv"

// RequestKind says what a Request does. The zero value is invalid.
type RequestKind uint8

// Request kinds.
const (
	KindCreateNamespace   RequestKind = 1 // Spec
	KindDeleteNamespace   RequestKind = 2 // Namespace; deletes its keys too
	KindListNamespaces    RequestKind = 3 // every namespace, by name
	KindDescribeNamespace RequestKind = 4 // Namespace
	KindTxn               RequestKind = 5 // Namespace, Txn
)

func (k RequestKind) String() string {
	switch k {
	case KindCreateNamespace:
		return "create-namespace"
	case KindDeleteNamespace:
		return "delete-namespace"
	case KindListNamespaces:
		return "list-namespaces"
	case KindDescribeNamespace:
		return "describe-namespace"
	case KindTxn:
		return "txn"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Request is one command (through Apply) or query (through Query).
type Request struct {
	// Session makes a command exactly-once: Client 0 means no
	// deduplication. Query ignores it.
	Session Session
	Kind    RequestKind
	// Namespace names the namespace of a Txn, DeleteNamespace or
	// DescribeNamespace. For CreateNamespace the name is Spec.Name, or
	// Namespace when Spec.Name is empty (the encoding keeps one name).
	Namespace string
	// Spec is the namespace to create (KindCreateNamespace).
	Spec NamespaceSpec
	// Txn is the transaction of a KindTxn request.
	Txn Txn
}

// Session identifies a client's command for exactly-once execution. A
// client numbers its commands with increasing Seq and has one outstanding
// at a time; a retry carries the same Seq.
type Session struct{ Client, Seq uint64 }

// NamespaceSpec is what a namespace is created with.
type NamespaceSpec struct {
	Name string // [A-Za-z0-9._-]{1,64}, not "." or ".."
	// Mode is the replication mode; opaque to kv ([a-z0-9-]{1,32}).
	Mode string
	// Params are mode-specific settings, opaque to kv: at most ParamsMax,
	// keys [a-z0-9._-]{1,64}, values at most ParamValueBytesMax bytes.
	// Encoded sorted by key.
	Params map[string]string
}

// Txn is a transaction: if every compare holds, Then runs, else Else runs.
// No compares means Then runs. All ops of the branch apply, or none.
type Txn struct {
	Compares []Compare
	Then     []Op
	Else     []Op
}

// OpType says what an Op does. The zero value is invalid.
type OpType uint8

// Op types.
const (
	OpPut         OpType = 1 // Key, Value; PrevKV
	OpDelete      OpType = 2 // Key; PrevKV
	OpGet         OpType = 3 // Key
	OpRange       OpType = 4 // [Key, End), Limit
	OpDeleteRange OpType = 5 // [Key, End); PrevKV returns the deleted KVs in KVs
)

func (t OpType) String() string {
	switch t {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpGet:
		return "get"
	case OpRange:
		return "range"
	case OpDeleteRange:
		return "delete-range"
	}
	return "op(" + strconv.Itoa(int(t)) + ")"
}

// Op is one operation of a Txn. Fields that do not belong to its Type
// must be zero.
type Op struct {
	Type OpType
	Key  []byte
	// End closes a Range or DeleteRange: [Key, End). Empty End means Key
	// alone; End "\x00" means every key >= Key (etcd's convention), so Key
	// "" with End "\x00" is the whole namespace. End <= Key is an empty
	// range.
	End   []byte
	Value []byte // Put
	// Limit is the most KVs a Range returns: 0 means ScanLimitMax, and a
	// larger value is capped to it. To page, pass Key = last key + "\x00".
	Limit int
	// PrevKV asks a Put or Delete for the key's previous KeyValue, and a
	// DeleteRange for every KeyValue it deleted.
	PrevKV bool
}

// CompareTarget says what a Compare looks at. The zero value is invalid.
type CompareTarget uint8

// Compare targets.
const (
	TargetValue       CompareTarget = 1 // Compare.Value, bytewise; false for a missing key
	TargetVersion     CompareTarget = 2 // Compare.Version; 0 for a missing key
	TargetModIndex    CompareTarget = 3 // Compare.Index; 0 for a missing key
	TargetCreateIndex CompareTarget = 4 // Compare.Index; 0 for a missing key
	TargetExists      CompareTarget = 5 // Compare.Exists; Equal or NotEqual only
)

func (t CompareTarget) String() string {
	switch t {
	case TargetValue:
		return "value"
	case TargetVersion:
		return "version"
	case TargetModIndex:
		return "mod-index"
	case TargetCreateIndex:
		return "create-index"
	case TargetExists:
		return "exists"
	}
	return "target(" + strconv.Itoa(int(t)) + ")"
}

// CompareResult is the relation a Compare asks for: the key's current
// target, on the left, against the Compare's operand. The zero value is
// invalid.
type CompareResult uint8

// Compare results.
const (
	Equal    CompareResult = 1
	NotEqual CompareResult = 2
	Less     CompareResult = 3 // current < operand
	Greater  CompareResult = 4 // current > operand
)

func (r CompareResult) String() string {
	switch r {
	case Equal:
		return "=="
	case NotEqual:
		return "!="
	case Less:
		return "<"
	case Greater:
		return ">"
	}
	return "result(" + strconv.Itoa(int(r)) + ")"
}

// Compare is one condition of a Txn. Only the operand of its Target is
// used; the others must be zero.
type Compare struct {
	Key     []byte
	Target  CompareTarget
	Result  CompareResult
	Value   []byte // TargetValue
	Version uint64 // TargetVersion
	Index   uint64 // TargetModIndex, TargetCreateIndex
	Exists  bool   // TargetExists
}

// KeyValue is a key with its value and history.
type KeyValue struct {
	Key, Value []byte
	// Version is 1 when the key is created and grows by one at each put;
	// a deleted key is gone, and a new put starts it at 1 again (etcd).
	Version uint64
	// CreateIndex is the log index of the put that created the key,
	// ModIndex that of its last put.
	CreateIndex, ModIndex uint64
}

// Code is a response's outcome. Its String is stable: the HTTP API and CLI
// may show it.
type Code uint8

// Response codes.
const (
	CodeOK           Code = 0
	CodeBadRequest   Code = 1 // malformed or invalid request; nothing changed
	CodeNotFound     Code = 2 // the namespace does not exist
	CodeExists       Code = 3 // the namespace to create already exists
	CodeTooLarge     Code = 4 // a key, value, count or the response is over a limit; nothing changed
	CodeStaleSession Code = 5 // Seq below the last one applied for the client; nothing changed
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeBadRequest:
		return "bad_request"
	case CodeNotFound:
		return "not_found"
	case CodeExists:
		return "exists"
	case CodeTooLarge:
		return "too_large"
	case CodeStaleSession:
		return "stale_session"
	}
	return "code_" + strconv.Itoa(int(c))
}

// Response is the outcome of a Request.
type Response struct {
	Code    Code
	Message string // human detail for a non-OK code (at most MessageBytesMax)
	// Index is the log index at which the command was applied (Apply; for
	// a deduplicated retry, the index of the first application), or the
	// applied index (Query).
	Index uint64
	// Succeeded says whether a Txn's compares held (its Then branch ran).
	Succeeded bool
	// Results has one entry per op of the branch that ran, in order.
	Results []OpResult
	// Namespaces answers ListNamespaces (sorted by name) and
	// DescribeNamespace (one entry).
	Namespaces []NamespaceInfo
	// ResultsDropped says that this is a retry's answer from the session
	// table, whose Results were too large to keep (over
	// SessionResponseBytesMax). The command was applied once, at Index.
	ResultsDropped bool
}

// OpResult is the result of one Op.
type OpResult struct {
	KVs []KeyValue // Get, Range; DeleteRange with PrevKV
	// More says that a Range stopped early (at its limit or at
	// ResponseBytesMax) and that more keys lie in its range.
	More    bool
	Deleted uint64    // Delete, DeleteRange
	PrevKV  *KeyValue // Put, Delete with PrevKV, when the key existed
}

// NamespaceInfo describes a namespace.
type NamespaceInfo struct {
	Spec        NamespaceSpec
	Keys        uint64 // number of keys
	Bytes       uint64 // bytes of keys and values
	CreateIndex uint64 // log index of its creation
}

// Stats is a summary of a Machine's state.
type Stats struct {
	Namespaces int
	Keys       uint64 // over all namespaces
	Bytes      uint64 // of keys and values, over all namespaces
	Sessions   int
}
