package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/modes/active"
	"github.com/chorus-project/chorus/internal/vsync"
)

// Active namespaces (DESIGN.md section 2, mode active) run in process
// groups, one per namespace, over one group.Host per server (GroupAddr).
// The catalog entry that creates such a namespace goes through the Paxos
// log like any other; every member then starts its share of the group on
// its own, from the catalog it applied (reconcileGroups), not when a
// request first names the namespace: a member that never served one would
// otherwise never join, and the others would wait for it.
//
// Who founds and who joins. The members of GroupPeers found the group
// together (group.Config.Founders, incarnation 1), each the first time it
// starts the namespace; it records that in DataDir/groups/<namespace>
// (fsynced) before it joins, so that a restarted member never founds again
// and never reuses incarnation 1: it joins through the other members with
// a new incarnation and receives the state by transfer. A member that was
// down when the namespace was created founds late, finds the group moved
// on without it, and rejoins (see group.Config.Founders).
//
// The data of an active namespace is in memory only (the mode's promise):
// it survives while a member of the group's current view lives.

// reconcileInterval is how often a member compares the catalog it applied
// with the groups it runs.
const reconcileInterval = 100 * time.Millisecond

// groupJoinTimeout bounds one attempt to start a namespace's group.
const groupJoinTimeout = 30 * time.Second

func (s *Server) startGroups() error {
	if s.cfg.GroupAddr == "" {
		return nil
	}
	h, err := group.NewHost(group.HostConfig{ID: group.MemberID(s.cfg.ID), ClusterID: s.cfg.ClusterID,
		ListenAddr: s.cfg.GroupAddr, Logger: s.log})
	if err != nil {
		return fmt.Errorf("%w: listen-group: %w", ErrConfig, err)
	}
	s.host = h
	s.factories[ModeActive] = s.activeBackend
	s.groupsDone = make(chan struct{})
	go s.reconcileGroups()
	return nil
}

// reconcileGroups starts the group of every active namespace in the
// applied catalog that this member does not run yet, and closes those of
// namespaces deleted since.
func (s *Server) reconcileGroups() {
	defer close(s.groupsDone)
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	// starting holds the namespaces whose group a goroutine is starting:
	// one namespace slow to join (its group busy with a view change)
	// does not hold up the others.
	starting := map[string]bool{}
	started := make(chan string)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-s.stopGroups:
			return
		case ns := <-started:
			delete(starting, ns)
			continue
		case <-t.C:
		}
		cat := s.sm.catalogCopy()
		s.mu.Lock()
		var missing []string
		for ns, mode := range cat {
			if mode == ModeActive && s.backends[ns] == nil && !starting[ns] {
				missing = append(missing, ns)
			}
		}
		for ns, b := range s.backends {
			if cat[ns] == "" {
				delete(s.backends, ns)
				s.backendsOpen.Add(-1)
				go b.Close()
			}
		}
		s.mu.Unlock()
		slices.Sort(missing)
		for _, ns := range missing {
			starting[ns] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.startGroup(ns)
				select {
				case started <- ns:
				case <-s.stopGroups:
				}
			}()
		}
	}
}

// startGroup starts this member's share of namespace ns and records it,
// unless the server closed meanwhile.
func (s *Server) startGroup(ns string) {
	b, err := s.activeBackend(kv.NamespaceSpec{Name: ns, Mode: ModeActive})
	if err != nil {
		s.log.Warn("active namespace: group not started; retrying", "namespace", ns, "err", err)
		return
	}
	s.mu.Lock()
	if s.closed || s.backends[ns] != nil {
		s.mu.Unlock()
		b.Close()
		return
	}
	s.backends[ns] = b
	s.backendsOpen.Add(1)
	s.mu.Unlock()
	s.log.Info("active namespace: group started", "namespace", ns)
}

// activeBackend starts this member's share of an active namespace.
func (s *Server) activeBackend(spec kv.NamespaceSpec) (Backend, error) {
	marker := filepath.Join(s.cfg.DataDir, "groups", spec.Name)
	// Commands travel in Safe order (internal/modes/active): a command
	// waits until every member reported holding it. Reporting after every
	// message, rather than every 64 or every 5 ticks, keeps that wait at
	// a round trip when a few clients write.
	vcfg := vsync.DefaultConfig()
	vcfg.Order.ReportEveryMessages = 1
	gcfg := group.Config{Host: s.host, TickInterval: 10 * time.Millisecond, VSync: vcfg}
	_, err := os.Stat(marker)
	switch {
	case err == nil: // started here before: join as a new incarnation
		for _, id := range sortedIDs(s.cfg.GroupPeers) {
			if id != s.cfg.ID {
				gcfg.Contacts = append(gcfg.Contacts, group.Member{ID: group.MemberID(id), Addr: s.cfg.GroupPeers[id]})
			}
		}
	case errors.Is(err, os.ErrNotExist): // first start: found with the others
		if err := writeMarker(marker); err != nil {
			return nil, err
		}
		for _, id := range sortedIDs(s.cfg.GroupPeers) {
			gcfg.Founders = append(gcfg.Founders, group.Member{ID: group.MemberID(id), Addr: s.cfg.GroupPeers[id], Incarnation: 1})
		}
		gcfg.Incarnation = 1
	default:
		return nil, fmt.Errorf("server: active namespace %s: %w", spec.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupJoinTimeout)
	defer cancel()
	go func() { // Close does not wait out a join
		select {
		case <-s.stopGroups:
			cancel()
		case <-ctx.Done():
		}
	}()
	return active.Start(ctx, active.Config{Group: gcfg, Spec: spec, KV: s.cfg.KV})
}

// writeMarker creates path durably: the file and its directory entry are
// fsynced before the member founds the group.
func writeMarker(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("server: group marker: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("server: group marker: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("server: group marker: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("server: group marker: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("server: group marker: %w", err)
	}
	return nil
}

// GroupView is the view of an active namespace's group at this member.
type GroupView struct {
	Namespace string
	View      group.View
	Digest    [32]byte
	Applied   uint64
}

// GroupViews lists the groups this member runs, by namespace.
func (s *Server) GroupViews() []GroupView {
	s.mu.Lock()
	var out []GroupView
	for ns, b := range s.backends {
		if ab, ok := b.(*active.Backend); ok {
			d, applied := ab.Digest()
			out = append(out, GroupView{Namespace: ns, View: ab.View(), Digest: d, Applied: applied})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b GroupView) int {
		if a.Namespace < b.Namespace {
			return -1
		}
		if a.Namespace > b.Namespace {
			return 1
		}
		return 0
	})
	return out
}

// catalogCopy returns the namespace modes as this member last applied them.
func (m *machine) catalogCopy() map[string]string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]string, len(m.catalog))
	for k, v := range m.catalog {
		out[k] = v
	}
	return out
}
