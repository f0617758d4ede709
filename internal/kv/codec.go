package kv

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/chorus-project/chorus/internal/wire"
)

// Format versions; see doc.go for the layouts.
const (
	requestVersion  uint8 = 1
	responseVersion uint8 = 1
)

// Smallest encodings of list elements, so that a count can be checked
// against the bytes that remain before anything is allocated.
const (
	compareBytesMin = 7 // key len, target, result, value len, version, index, exists
	opBytesMin      = 6 // type, key len, end len, value len, limit, prevkv
	paramBytesMin   = 2 // key len, value len
	kvBytesMin      = 5 // key len, value len, version, create, mod
	resultBytesMin  = 4 // kv count, more, deleted, prevkv flag
	nsInfoBytesMin  = 6 // name len, mode len, params count, keys, bytes, create
)

// EncodeRequest returns the canonical encoding of req: decoding it gives
// back req (with empty byte strings as nil, and for KindCreateNamespace
// Namespace set to Spec.Name), and equal requests encode to equal bytes.
// Only the fields of req.Kind are encoded. A negative Op.Limit encodes to a
// value DecodeRequest rejects.
func EncodeRequest(req Request) []byte {
	w := wire.NewBuffer(make([]byte, 0, requestSizeHint(req)))
	w.Uint8(requestVersion)
	w.Uint8(uint8(req.Kind))
	w.Uvarint(req.Session.Client)
	w.Uvarint(req.Session.Seq)
	switch req.Kind {
	case KindCreateNamespace:
		spec := req.Spec
		if spec.Name == "" {
			spec.Name = req.Namespace
		}
		encodeSpec(w, spec)
	case KindDeleteNamespace, KindDescribeNamespace:
		w.String(req.Namespace)
	case KindListNamespaces:
	case KindTxn:
		w.String(req.Namespace)
		w.Uvarint(uint64(len(req.Txn.Compares)))
		for _, c := range req.Txn.Compares {
			w.LenBytes(c.Key)
			w.Uint8(uint8(c.Target))
			w.Uint8(uint8(c.Result))
			w.LenBytes(c.Value)
			w.Uvarint(c.Version)
			w.Uvarint(c.Index)
			w.Bool(c.Exists)
		}
		encodeOps(w, req.Txn.Then)
		encodeOps(w, req.Txn.Else)
	}
	return w.Bytes()
}

func requestSizeHint(req Request) int {
	n := 32 + len(req.Namespace)
	for _, c := range req.Txn.Compares {
		n += 16 + len(c.Key) + len(c.Value)
	}
	for _, ops := range [][]Op{req.Txn.Then, req.Txn.Else} {
		for _, op := range ops {
			n += 16 + len(op.Key) + len(op.End) + len(op.Value)
		}
	}
	return n
}

func encodeOps(w *wire.Buffer, ops []Op) {
	w.Uvarint(uint64(len(ops)))
	for _, op := range ops {
		w.Uint8(uint8(op.Type))
		w.LenBytes(op.Key)
		w.LenBytes(op.End)
		w.LenBytes(op.Value)
		w.Uvarint(uint64(op.Limit)) // a negative limit becomes huge, and is refused
		w.Bool(op.PrevKV)
	}
}

func encodeSpec(w *wire.Buffer, s NamespaceSpec) {
	w.String(s.Name)
	w.String(s.Mode)
	keys := make([]string, 0, len(s.Params))
	for k := range s.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // map order must never reach the bytes
	w.Uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.String(k)
		w.String(s.Params[k])
	}
}

// decodeErr wraps a wire error met at field: ErrTooLarge for a length over
// a limit, ErrBadRequest otherwise.
func decodeErr(sentinel error, field string, err error) error {
	if errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: %s: %w", ErrTooLarge, field, err)
	}
	return fmt.Errorf("%w: %s: %w", sentinel, field, err)
}

// DecodeRequest decodes a request, checking every length and count against
// cfg (zero fields take their defaults) before it allocates. It checks the
// layout only; Apply and Query validate the meaning. Byte strings of the
// result alias b. Errors wrap ErrBadRequest or, for a length over a limit,
// ErrTooLarge.
func DecodeRequest(b []byte, cfg Config) (Request, error) {
	cfg = cfg.withDefaults()
	r := wire.NewReader(b)
	var req Request
	if v := r.Uint8(); r.Err() == nil && v != requestVersion {
		return Request{}, fmt.Errorf("%w: version %d, want %d", ErrBadRequest, v, requestVersion)
	}
	req.Kind = RequestKind(r.Uint8())
	req.Session.Client = r.Uvarint()
	req.Session.Seq = r.Uvarint()
	if err := r.Err(); err != nil {
		return Request{}, decodeErr(ErrBadRequest, "header", err)
	}
	switch req.Kind {
	case KindCreateNamespace:
		spec, err := decodeSpec(r, NamespaceNameBytesMax)
		if err != nil {
			return Request{}, decodeErr(ErrBadRequest, "spec", err)
		}
		req.Spec = spec
		req.Namespace = spec.Name
	case KindDeleteNamespace, KindDescribeNamespace:
		req.Namespace = r.String(NamespaceNameBytesMax)
	case KindListNamespaces:
	case KindTxn:
		req.Namespace = r.String(NamespaceNameBytesMax)
		if err := r.Err(); err != nil {
			return Request{}, decodeErr(ErrBadRequest, "namespace", err)
		}
		txn, err := decodeTxn(r, cfg)
		if err != nil {
			return Request{}, err
		}
		req.Txn = txn
	default:
		return Request{}, fmt.Errorf("%w: unknown kind %d", ErrBadRequest, req.Kind)
	}
	if err := r.Done(); err != nil {
		return Request{}, decodeErr(ErrBadRequest, "request", err)
	}
	return req, nil
}

func decodeTxn(r *wire.Reader, cfg Config) (Txn, error) {
	var txn Txn
	left := cfg.TxnOpsMax // compares + then + else
	n := r.Count(left, compareBytesMin)
	if err := r.Err(); err != nil {
		return Txn{}, decodeErr(ErrBadRequest, "compare count", err)
	}
	left -= n
	if n > 0 {
		txn.Compares = make([]Compare, n)
	}
	for i := range txn.Compares {
		c := &txn.Compares[i]
		c.Key = nilIfEmpty(r.LenBytes(cfg.KeyBytesMax))
		c.Target = CompareTarget(r.Uint8())
		c.Result = CompareResult(r.Uint8())
		c.Value = nilIfEmpty(r.LenBytes(cfg.ValueBytesMax))
		c.Version = r.Uvarint()
		c.Index = r.Uvarint()
		c.Exists = r.Bool()
		if err := r.Err(); err != nil {
			return Txn{}, decodeErr(ErrBadRequest, fmt.Sprintf("compare %d", i), err)
		}
	}
	var err error
	if txn.Then, left, err = decodeOps(r, cfg, left, "then"); err != nil {
		return Txn{}, err
	}
	if txn.Else, _, err = decodeOps(r, cfg, left, "else"); err != nil {
		return Txn{}, err
	}
	return txn, nil
}

func decodeOps(r *wire.Reader, cfg Config, left int, branch string) ([]Op, int, error) {
	n := r.Count(left, opBytesMin)
	if err := r.Err(); err != nil {
		return nil, 0, decodeErr(ErrBadRequest, branch+" count (compares + then + else over TxnOpsMax?)", err)
	}
	if n == 0 {
		return nil, left, nil
	}
	ops := make([]Op, n)
	for i := range ops {
		op := &ops[i]
		op.Type = OpType(r.Uint8())
		// A range bound may be one byte over KeyBytesMax: the next page
		// after a key of the largest size starts at that key + "\x00".
		field := "key"
		op.Key = nilIfEmpty(r.LenBytes(cfg.KeyBytesMax + 1))
		if r.Err() == nil {
			field = "end"
			op.End = nilIfEmpty(r.LenBytes(cfg.KeyBytesMax + 1))
		}
		if r.Err() == nil {
			field = "value"
			op.Value = nilIfEmpty(r.LenBytes(cfg.ValueBytesMax))
		}
		if r.Err() == nil {
			field = "limit or prevkv"
		}
		limit := r.Uvarint()
		op.PrevKV = r.Bool()
		if err := r.Err(); err != nil {
			return nil, 0, decodeErr(ErrBadRequest, fmt.Sprintf("%s[%d].%s", branch, i, field), err)
		}
		if limit > math.MaxInt32 {
			return nil, 0, fmt.Errorf("%w: %s[%d]: limit %d out of range", ErrBadRequest, branch, i, limit)
		}
		op.Limit = int(limit)
	}
	return ops, left - n, nil
}

// decodeSpec reads a NamespaceSpec; its params must be sorted by key with
// no duplicates, so that the encoding stays canonical.
func decodeSpec(r *wire.Reader, nameMax int) (NamespaceSpec, error) {
	var s NamespaceSpec
	s.Name = r.String(nameMax)
	s.Mode = r.String(ModeBytesMax)
	n := r.Count(ParamsMax, paramBytesMin)
	if err := r.Err(); err != nil {
		return NamespaceSpec{}, err
	}
	if n > 0 {
		s.Params = make(map[string]string, n)
	}
	prev := ""
	for i := range n {
		k := r.String(ParamKeyBytesMax)
		v := r.String(ParamValueBytesMax)
		if err := r.Err(); err != nil {
			return NamespaceSpec{}, err
		}
		if i > 0 && k <= prev {
			return NamespaceSpec{}, fmt.Errorf("%w: params not sorted by key", wire.ErrMalformed)
		}
		s.Params[k] = v
		prev = k
	}
	return s, nil
}

func nilIfEmpty(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}

// EncodeResponse returns the canonical encoding of resp.
func EncodeResponse(resp Response) []byte {
	return appendResponse(make([]byte, 0, responseSizeHint(resp)), resp)
}

// responseSizeHint is about the size of resp's encoding, so that it is
// allocated once.
func responseSizeHint(resp Response) int {
	n := 32 + len(resp.Message)
	for _, res := range resp.Results {
		n += 16
		for _, kv := range res.KVs {
			n += 32 + len(kv.Key) + len(kv.Value)
		}
		if res.PrevKV != nil {
			n += 32 + len(res.PrevKV.Key) + len(res.PrevKV.Value)
		}
	}
	return n + 64*len(resp.Namespaces)
}

func appendResponse(dst []byte, resp Response) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(responseVersion)
	w.Uint8(uint8(resp.Code))
	w.String(resp.Message)
	w.Uvarint(resp.Index)
	w.Bool(resp.Succeeded)
	w.Bool(resp.ResultsDropped)
	w.Uvarint(uint64(len(resp.Results)))
	for _, res := range resp.Results {
		w.Uvarint(uint64(len(res.KVs)))
		for _, kv := range res.KVs {
			encodeKV(w, kv)
		}
		w.Bool(res.More)
		w.Uvarint(res.Deleted)
		w.Bool(res.PrevKV != nil)
		if res.PrevKV != nil {
			encodeKV(w, *res.PrevKV)
		}
	}
	w.Uvarint(uint64(len(resp.Namespaces)))
	for _, ns := range resp.Namespaces {
		encodeSpec(w, ns.Spec)
		w.Uvarint(ns.Keys)
		w.Uvarint(ns.Bytes)
		w.Uvarint(ns.CreateIndex)
	}
	return w.Bytes()
}

func encodeKV(w *wire.Buffer, kv KeyValue) {
	w.LenBytes(kv.Key)
	w.LenBytes(kv.Value)
	w.Uvarint(kv.Version)
	w.Uvarint(kv.CreateIndex)
	w.Uvarint(kv.ModIndex)
}

// kvEncodedBytes is the exact size encodeKV gives kv.
func kvEncodedBytes(key, value []byte, version, create, mod uint64) int {
	return wire.UvarintLen(uint64(len(key))) + len(key) + wire.UvarintLen(uint64(len(value))) + len(value) +
		wire.UvarintLen(version) + wire.UvarintLen(create) + wire.UvarintLen(mod)
}

// DecodeResponse decodes what EncodeResponse wrote. Byte strings of the
// result alias b. Errors wrap ErrBadResponse.
func DecodeResponse(b []byte) (Response, error) {
	r := wire.NewReader(b)
	var resp Response
	if v := r.Uint8(); r.Err() == nil && v != responseVersion {
		return Response{}, fmt.Errorf("%w: version %d, want %d", ErrBadResponse, v, responseVersion)
	}
	resp.Code = Code(r.Uint8())
	resp.Message = r.String(MessageBytesMax)
	resp.Index = r.Uvarint()
	resp.Succeeded = r.Bool()
	resp.ResultsDropped = r.Bool()
	n := r.Count(math.MaxInt32, resultBytesMin)
	if err := r.Err(); err != nil {
		return Response{}, decodeErr(ErrBadResponse, "header", err)
	}
	if n > 0 {
		resp.Results = make([]OpResult, n)
	}
	for i := range resp.Results {
		res := &resp.Results[i]
		nkv := r.Count(math.MaxInt32, kvBytesMin)
		if nkv > 0 {
			res.KVs = make([]KeyValue, nkv)
		}
		for j := range res.KVs {
			res.KVs[j] = decodeKV(r)
		}
		res.More = r.Bool()
		res.Deleted = r.Uvarint()
		if r.Bool() {
			kv := decodeKV(r)
			res.PrevKV = &kv
		}
		if err := r.Err(); err != nil {
			return Response{}, decodeErr(ErrBadResponse, fmt.Sprintf("result %d", i), err)
		}
	}
	n = r.Count(namespacesCeiling, nsInfoBytesMin)
	if err := r.Err(); err != nil {
		return Response{}, decodeErr(ErrBadResponse, "namespace count", err)
	}
	if n > 0 {
		resp.Namespaces = make([]NamespaceInfo, n)
	}
	for i := range resp.Namespaces {
		ns := &resp.Namespaces[i]
		spec, err := decodeSpec(r, NamespaceNameBytesMax)
		if err != nil {
			return Response{}, decodeErr(ErrBadResponse, fmt.Sprintf("namespace %d", i), err)
		}
		ns.Spec = spec
		ns.Keys = r.Uvarint()
		ns.Bytes = r.Uvarint()
		ns.CreateIndex = r.Uvarint()
	}
	if err := r.Done(); err != nil {
		return Response{}, decodeErr(ErrBadResponse, "response", err)
	}
	return resp, nil
}

func decodeKV(r *wire.Reader) KeyValue {
	return KeyValue{
		Key:         nilIfEmpty(r.LenBytes(keyBytesCeiling)),
		Value:       nilIfEmpty(r.LenBytes(valueBytesCeiling)),
		Version:     r.Uvarint(),
		CreateIndex: r.Uvarint(),
		ModIndex:    r.Uvarint(),
	}
}
