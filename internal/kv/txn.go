package kv

import (
	"bytes"
	"cmp"
	"fmt"
)

// undoEntry reverses one change of the txn being applied. A txn is
// validated before it runs, so the only failure left once it changes
// something is a response too large to send (PrevKVs over
// ResponseBytesMax); the undo log puts everything back in that case.
type undoEntry struct {
	kind undoKind
	ns   *namespace
	it   *item
	prev item // undoUpdate: the item's content before the put
}

type undoKind uint8

const (
	undoInsert undoKind = iota + 1 // remove it again
	undoUpdate                     // restore prev into it
	undoDelete                     // insert it again
)

// Per-response and per-result overheads of the encoding, rounded up: the
// budget that keeps a response under ResponseBytesMax counts them.
const (
	responseHeaderBytesMax = 32 // version, code, empty message, index, flags, counts
	resultHeaderBytesMax   = 16 // kv count, more, deleted, prevkv flag
)

// runTxn evaluates txn's compares and runs the branch they choose. The
// request was validated; the response is OK unless its PrevKVs would
// exceed ResponseBytesMax, in which case nothing changes.
func (m *Machine) runTxn(index uint64, ns *namespace, txn Txn) Response {
	succeeded := true
	for _, c := range txn.Compares {
		if !compareHolds(ns, c) {
			succeeded = false
			break
		}
	}
	ops := txn.Then
	if !succeeded {
		ops = txn.Else
	}
	resp := Response{Index: index, Succeeded: succeeded}
	if len(ops) == 0 {
		return resp
	}
	resp.Results = make([]OpResult, len(ops))
	used := responseHeaderBytesMax + resultHeaderBytesMax*len(ops)
	fits := func(n int) bool { return used+n <= m.cfg.ResponseBytesMax }
	defer func() {
		clear(m.undo) // drop the references to items
		m.undo = m.undo[:0]
	}()
	for i, op := range ops {
		res := &resp.Results[i]
		tooLarge := false
		switch op.Type {
		case OpGet, OpRange:
			limit := op.Limit
			if limit == 0 || limit > m.cfg.ScanLimitMax {
				limit = m.cfg.ScanLimitMax
			}
			ns.scan(op.Key, op.End, func(it *item) bool {
				n := it.encodedBytes()
				if len(res.KVs) == limit || !fits(n) {
					res.More = true
					return false
				}
				used += n
				res.KVs = append(res.KVs, it.kv())
				return true
			})
		case OpPut:
			it, prev, existed := ns.put(op.Key, op.Value, index)
			if existed {
				m.undo = append(m.undo, undoEntry{kind: undoUpdate, ns: ns, it: it, prev: prev})
				if op.PrevKV {
					if n := prev.encodedBytes(); fits(n) {
						used += n
						kv := prev.kv()
						res.PrevKV = &kv
					} else {
						tooLarge = true
					}
				}
			} else {
				m.undo = append(m.undo, undoEntry{kind: undoInsert, ns: ns, it: it})
			}
		case OpDelete:
			if it := ns.get(op.Key); it != nil {
				ns.remove(it)
				m.undo = append(m.undo, undoEntry{kind: undoDelete, ns: ns, it: it})
				res.Deleted = 1
				if op.PrevKV {
					if n := it.encodedBytes(); fits(n) {
						used += n
						kv := it.kv()
						res.PrevKV = &kv
					} else {
						tooLarge = true
					}
				}
			}
		case OpDeleteRange:
			var doomed []*item
			ns.scan(op.Key, op.End, func(it *item) bool {
				doomed = append(doomed, it)
				return true
			})
			for _, it := range doomed {
				ns.remove(it)
				m.undo = append(m.undo, undoEntry{kind: undoDelete, ns: ns, it: it})
				if op.PrevKV && !tooLarge {
					if n := it.encodedBytes(); fits(n) {
						used += n
						res.KVs = append(res.KVs, it.kv())
					} else {
						tooLarge = true
					}
				}
			}
			res.Deleted = uint64(len(doomed))
		}
		if tooLarge {
			if !plant.noRollback {
				m.rollback()
			}
			return Response{Code: CodeTooLarge, Index: index, Message: fmt.Sprintf(
				"%s: the previous key-values asked for exceed ResponseBytesMax (%d bytes); nothing was changed",
				branchOp(succeeded, i), m.cfg.ResponseBytesMax)}
		}
	}
	return resp
}

func branchOp(then bool, i int) string {
	if then {
		return fmt.Sprintf("then[%d]", i)
	}
	return fmt.Sprintf("else[%d]", i)
}

// rollback undoes the txn's changes, newest first.
func (m *Machine) rollback() {
	for i := len(m.undo) - 1; i >= 0; i-- {
		u := &m.undo[i]
		switch u.kind {
		case undoInsert:
			u.ns.remove(u.it)
		case undoUpdate:
			u.ns.bytes = u.ns.bytes - u.it.size() + u.prev.size()
			*u.it = u.prev
		case undoDelete:
			u.ns.insert(u.it)
		}
	}
}

// compareHolds evaluates c against the current state of ns. As in etcd, a
// missing key has version, create and mod index 0, and a value compare on
// it is false.
func compareHolds(ns *namespace, c Compare) bool {
	it := ns.get(c.Key)
	var order int
	switch c.Target {
	case TargetExists:
		if c.Result == Equal {
			return (it != nil) == c.Exists
		}
		return (it != nil) != c.Exists
	case TargetValue:
		if it == nil {
			return false
		}
		order = bytes.Compare(it.value(), c.Value)
	case TargetVersion:
		order = cmp.Compare(fieldOf(it, func(it *item) uint64 { return it.version }), c.Version)
	case TargetModIndex:
		order = cmp.Compare(fieldOf(it, func(it *item) uint64 { return it.mod }), c.Index)
	case TargetCreateIndex:
		order = cmp.Compare(fieldOf(it, func(it *item) uint64 { return it.create }), c.Index)
	}
	switch c.Result {
	case Equal:
		return order == 0
	case NotEqual:
		return order != 0
	case Less:
		return order < 0
	case Greater:
		return order > 0
	}
	return false
}

func fieldOf(it *item, f func(*item) uint64) uint64 {
	if it == nil {
		return 0
	}
	return f(it)
}
