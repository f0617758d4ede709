package kv

import "container/list"

// session is what the table keeps of one client: its last Seq, the index
// at which that command was applied, and its encoded response.
type session struct {
	client, seq, index uint64
	resp               []byte
}

// sessionTable keeps the sessions of at most SessionsMax clients. The list
// is ordered by index, oldest first: indexes grow, so recording moves a
// session to the back, and the front is the one to evict. The map is only
// for lookup; its order never reaches output.
type sessionTable struct {
	byClient map[uint64]*list.Element // of *session
	lru      *list.List
}

func newSessionTable() sessionTable {
	return sessionTable{byClient: make(map[uint64]*list.Element), lru: list.New()}
}

func (t *sessionTable) len() int { return t.lru.Len() }

func (t *sessionTable) get(client uint64) *session {
	if e, ok := t.byClient[client]; ok {
		return e.Value.(*session)
	}
	return nil
}

// record stores the response of client's command seq, applied at index
// (above every index recorded before). A new client evicts the client whose
// last command has the smallest index when the table is full.
func (t *sessionTable) record(client, seq, index uint64, resp []byte, sessionsMax int) {
	if e, ok := t.byClient[client]; ok {
		s := e.Value.(*session)
		s.seq, s.index, s.resp = seq, index, resp
		t.lru.MoveToBack(e)
		return
	}
	for t.lru.Len() >= sessionsMax {
		oldest := t.lru.Front()
		delete(t.byClient, oldest.Value.(*session).client)
		t.lru.Remove(oldest)
	}
	t.byClient[client] = t.lru.PushBack(&session{client: client, seq: seq, index: index, resp: resp})
}

// each calls fn for every session, oldest first.
func (t *sessionTable) each(fn func(*session)) {
	for e := t.lru.Front(); e != nil; e = e.Next() {
		fn(e.Value.(*session))
	}
}
