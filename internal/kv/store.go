package kv

import (
	"bytes"
	"maps"

	"github.com/tidwall/btree"
)

// item is one key in a namespace's tree. The key and value share one
// allocation (key first), which saves a slice header and an allocation per
// key; a put replaces buf whole, so a KeyValue handed out earlier (which
// aliases buf) never changes under its reader.
type item struct {
	buf     []byte // key then value
	keyLen  uint32
	version uint64
	create  uint64
	mod     uint64
}

func (it *item) key() []byte   { return it.buf[:it.keyLen:it.keyLen] }
func (it *item) value() []byte { return it.buf[it.keyLen:] }
func (it *item) size() uint64  { return uint64(len(it.buf)) }

// kv returns the item as a KeyValue aliasing its storage.
func (it *item) kv() KeyValue {
	return KeyValue{
		Key: it.key(), Value: nilIfEmpty(it.value()),
		Version: it.version, CreateIndex: it.create, ModIndex: it.mod,
	}
}

func (it *item) encodedBytes() int {
	return kvEncodedBytes(it.key(), it.value(), it.version, it.create, it.mod)
}

func itemLess(a, b *item) bool { return bytes.Compare(a.key(), b.key()) < 0 }

// btreeDegree: tidwall's default. Nodes of up to 63 pointers keep the
// tree shallow (four levels for ten million keys).
const btreeDegree = 32

func newItemTree() *btree.BTreeG[*item] {
	// NoLocks: a Machine is single-threaded by contract.
	return btree.NewBTreeGOptions(itemLess, btree.Options{Degree: btreeDegree, NoLocks: true})
}

// namespace is one namespace: its spec and its ordered keys.
type namespace struct {
	spec   NamespaceSpec
	create uint64
	keys   *btree.BTreeG[*item]
	bytes  uint64 // sum of item sizes
	pivot  item   // scratch search key, so lookups do not allocate
}

func newNamespace(spec NamespaceSpec, create uint64) *namespace {
	spec.Params = maps.Clone(spec.Params)
	if len(spec.Params) == 0 {
		spec.Params = nil
	}
	return &namespace{spec: spec, create: create, keys: newItemTree()}
}

func namespaceLess(a, b *namespace) bool { return a.spec.Name < b.spec.Name }

func (ns *namespace) info() NamespaceInfo {
	spec := ns.spec
	spec.Params = maps.Clone(spec.Params)
	return NamespaceInfo{Spec: spec, Keys: uint64(ns.keys.Len()), Bytes: ns.bytes, CreateIndex: ns.create}
}

// search returns a pivot for key, valid until the next call.
func (ns *namespace) search(key []byte) *item {
	ns.pivot = item{buf: key, keyLen: uint32(len(key))}
	return &ns.pivot
}

func (ns *namespace) get(key []byte) *item {
	it, _ := ns.keys.Get(ns.search(key))
	return it
}

// insert adds it, which must be absent.
func (ns *namespace) insert(it *item) {
	ns.keys.Set(it)
	ns.bytes += it.size()
}

// remove deletes it, which must be present.
func (ns *namespace) remove(it *item) {
	ns.keys.Delete(it)
	ns.bytes -= it.size()
}

// put sets key to value at index. It returns the item and, when the key
// existed, a copy of the item as it was (for PrevKV and the undo log).
func (ns *namespace) put(key, value []byte, index uint64) (it *item, prev item, existed bool) {
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	if it = ns.get(key); it != nil {
		prev = *it
		ns.bytes += uint64(len(buf)) - it.size()
		it.buf = buf
		if !plant.noVersionBump {
			it.version++
		}
		it.mod = index
		return it, prev, true
	}
	it = &item{buf: buf, keyLen: uint32(len(key)), version: 1, create: index, mod: index}
	ns.insert(it)
	return it, item{}, false
}

// scan calls fn for each item of [key, end) in order, until fn returns
// false. end follows Op.End: nil is key alone, "\x00" is unbounded.
func (ns *namespace) scan(key, end []byte, fn func(*item) bool) {
	if len(end) == 0 {
		if it := ns.get(key); it != nil {
			fn(it)
		}
		return
	}
	unbounded := len(end) == 1 && end[0] == 0
	if !unbounded && bytes.Compare(key, end) >= 0 {
		return
	}
	ns.keys.Ascend(ns.search(key), func(it *item) bool {
		if !unbounded && bytes.Compare(it.key(), end) >= 0 {
			return false
		}
		return fn(it)
	})
}
