package kv

import (
	"errors"
	"fmt"
)

// Errors of package kv. They are wrapped with detail; test with errors.Is.
var (
	// ErrConfig is returned by Config.Validate and New for a bad Config.
	ErrConfig = errors.New("kv: invalid config")
	// ErrBadRequest is returned by DecodeRequest for bytes that are not a
	// request (malformed, truncated, trailing bytes, unknown version).
	ErrBadRequest = errors.New("kv: bad request")
	// ErrTooLarge is returned by DecodeRequest when a length or count is
	// over a limit of the Config; Apply answers CodeTooLarge.
	ErrTooLarge = errors.New("kv: request over a limit")
	// ErrBadResponse is returned by DecodeResponse for bytes that are not a
	// response.
	ErrBadResponse = errors.New("kv: bad response")
	// ErrCorruptSnapshot is returned by Restore for a stream that is
	// truncated, corrupt, of another version or over the machine's limits.
	ErrCorruptSnapshot = errors.New("kv: corrupt snapshot")
)

// Config bounds what a Machine accepts. A zero field takes its default (see
// DefaultConfig); a negative one is an error. Every member of a cluster must
// use the same Config: the limits decide which commands are rejected, and a
// rejection is part of the replicated state.
type Config struct {
	KeyBytesMax      int // longest key; default 1 KiB
	ValueBytesMax    int // longest value; default 1 MiB
	TxnOpsMax        int // compares + then + else ops of one txn; default 128
	ScanLimitMax     int // most KVs one Range returns; default 10,000
	ResponseBytesMax int // a Range stops (More=true) before the response would exceed this; default 4 MiB
	NamespacesMax    int // default 1024
	SessionsMax      int // client sessions kept for exactly-once; default 100,000
	// SessionResponseBytesMax is the largest response a session keeps for
	// a retry; a larger one is kept without its Results (ResultsDropped).
	// It bounds the session table to about SessionsMax times this. Default
	// 4 KiB: enough for any write (a PrevKV of a small value), not for the
	// pages of a scan, which a client re-reads rather than retries.
	SessionResponseBytesMax int
}

// Defaults, each with its reason.
const (
	// DefaultKeyBytesMax: etcd allows 1.5 MiB keys in principle, but keys
	// are compared on every tree step; 1 KiB covers paths and ids.
	DefaultKeyBytesMax = 1 << 10
	// DefaultValueBytesMax: etcd's default request limit is 1.5 MiB; a
	// 1 MiB value keeps a log entry well inside one WAL batch.
	DefaultValueBytesMax = 1 << 20
	// DefaultTxnOpsMax: etcd's --max-txn-ops default is 128.
	DefaultTxnOpsMax = 128
	// DefaultScanLimitMax bounds the work and memory of one Range.
	DefaultScanLimitMax = 10_000
	// DefaultResponseBytesMax: four of the largest values, so a page of a
	// scan always fits at least one of them.
	DefaultResponseBytesMax = 4 << 20
	// DefaultNamespacesMax: namespaces are few and long-lived.
	DefaultNamespacesMax = 1024
	// DefaultSessionsMax: smr keeps the same number of clients.
	DefaultSessionsMax = 100_000
	// DefaultSessionResponseBytesMax: see Config.SessionResponseBytesMax.
	DefaultSessionResponseBytesMax = 4 << 10
)

// Hard ceilings that Validate enforces, so that a Config cannot ask a
// decoder to accept absurd lengths.
const (
	keyBytesCeiling      = 64 << 10
	valueBytesCeiling    = 64 << 20
	txnOpsCeiling        = 1 << 16
	scanLimitCeiling     = 1 << 24
	responseBytesCeiling = 1 << 30
	namespacesCeiling    = 1 << 16
	sessionsCeiling      = 1 << 24
	// sessionResponseBytesFloor leaves room for a response kept without its
	// results (code, index, message).
	sessionResponseBytesFloor = 2048
	// responseOverheadBytes is what a response takes besides its KVs, with
	// room to spare; ResponseBytesMax must leave room for it and one KV.
	responseOverheadBytes = 1 << 10
)

// Limits on a namespace's spec. They are fixed, not configured: the spec is
// metadata, and every member must agree on it.
const (
	NamespaceNameBytesMax = 64   // [A-Za-z0-9._-]{1,64}, not "." or ".."
	ModeBytesMax          = 32   // [a-z0-9-]{1,32}
	ParamsMax             = 32   // entries in NamespaceSpec.Params
	ParamKeyBytesMax      = 64   // [a-z0-9._-]{1,64}
	ParamValueBytesMax    = 1024 // any bytes
	// MessageBytesMax bounds Response.Message.
	MessageBytesMax = 1024
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		KeyBytesMax:             DefaultKeyBytesMax,
		ValueBytesMax:           DefaultValueBytesMax,
		TxnOpsMax:               DefaultTxnOpsMax,
		ScanLimitMax:            DefaultScanLimitMax,
		ResponseBytesMax:        DefaultResponseBytesMax,
		NamespacesMax:           DefaultNamespacesMax,
		SessionsMax:             DefaultSessionsMax,
		SessionResponseBytesMax: DefaultSessionResponseBytesMax,
	}
}

// withDefaults fills every zero field with its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.KeyBytesMax, d.KeyBytesMax)
	fill(&c.ValueBytesMax, d.ValueBytesMax)
	fill(&c.TxnOpsMax, d.TxnOpsMax)
	fill(&c.ScanLimitMax, d.ScanLimitMax)
	fill(&c.ResponseBytesMax, d.ResponseBytesMax)
	fill(&c.NamespacesMax, d.NamespacesMax)
	fill(&c.SessionsMax, d.SessionsMax)
	fill(&c.SessionResponseBytesMax, d.SessionResponseBytesMax)
	return c
}

// Validate reports the first field out of range, wrapping ErrConfig. Zero
// fields are valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	check := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return fmt.Errorf("%w: %s is %d, want %d..%d", ErrConfig, name, v, lo, hi)
		}
		return nil
	}
	for _, f := range []struct {
		name      string
		v, lo, hi int
	}{
		{"KeyBytesMax", c.KeyBytesMax, 1, keyBytesCeiling},
		{"ValueBytesMax", c.ValueBytesMax, 1, valueBytesCeiling},
		{"TxnOpsMax", c.TxnOpsMax, 1, txnOpsCeiling},
		{"ScanLimitMax", c.ScanLimitMax, 1, scanLimitCeiling},
		{"ResponseBytesMax", c.ResponseBytesMax, 1, responseBytesCeiling},
		{"NamespacesMax", c.NamespacesMax, 1, namespacesCeiling},
		{"SessionsMax", c.SessionsMax, 1, sessionsCeiling},
		{"SessionResponseBytesMax", c.SessionResponseBytesMax, sessionResponseBytesFloor, responseBytesCeiling},
	} {
		if err := check(f.name, f.v, f.lo, f.hi); err != nil {
			return err
		}
	}
	// One KV of the largest size must fit in an empty response, or a scan
	// could never get past it.
	if need := c.KeyBytesMax + c.ValueBytesMax + responseOverheadBytes; c.ResponseBytesMax < need {
		return fmt.Errorf("%w: ResponseBytesMax is %d, want at least KeyBytesMax + ValueBytesMax + %d = %d",
			ErrConfig, c.ResponseBytesMax, responseOverheadBytes, need)
	}
	return nil
}
