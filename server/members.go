package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// Membership is replicated state. Raft's configuration (and a snapshot's
// ConfState) holds only member IDs; each member's name and URLs are
// engine cluster records written by the state machine when it applies
// the conf change that carries them (or a published attributes entry),
// so they survive restarts and travel inside snapshot images:
//
//	member/<id, 16 hex>  -> memberRecord JSON
//	removed/<id>         -> ""   (a removed ID is never accepted again)
//	refused/<raft index> -> why the conf change at that index was refused
const (
	recMember  = "member/"
	recRemoved = "removed/"
	recRefused = "refused/"
)

func recKey(prefix string, v uint64) string { return fmt.Sprintf("%s%016x", prefix, v) }

// memberRecord is one member's replicated details.
type memberRecord struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

// confContext is the Context of the conf changes this package proposes
// (and of the bootstrap ones): the member's details, as etcd carries a
// JSON member in its conf changes.
type confContext struct {
	Name     string   `json:"name,omitempty"`
	PeerURLs []string `json:"peerURLs"`
}

// Errors of membership changes, with etcd's messages.
var (
	errNotEnoughStarted = errors.New("etcdserver: re-configuration failed due to not enough started members")
	errUnhealthy        = errors.New("etcdserver: unhealthy cluster")
)

// memberSet is the member list as last read from the records (or, before
// any record exists, as given by --initial-cluster or the cluster joined).
type memberSet struct {
	members map[uint64]memberRecord
	removed map[uint64]bool
}

func loadMembership(eng *engine.Engine) (memberSet, error) {
	ms := memberSet{members: map[uint64]memberRecord{}, removed: map[uint64]bool{}}
	recs, err := eng.ClusterRecords("")
	if err != nil {
		return ms, err
	}
	for k, v := range recs {
		switch {
		case strings.HasPrefix(k, recMember):
			var m memberRecord
			if err := json.Unmarshal(v, &m); err != nil {
				return ms, fmt.Errorf("member record %s: %w", k, err)
			}
			ms.members[m.ID] = m
		case strings.HasPrefix(k, recRemoved):
			id, err := strconv.ParseUint(strings.TrimPrefix(k, recRemoved), 16, 64)
			if err != nil {
				return ms, fmt.Errorf("removed member record %s: %w", k, err)
			}
			ms.removed[id] = true
		}
	}
	return ms, nil
}

// peerURLConflict reports whether another member than id uses one of urls.
func (ms memberSet) peerURLConflict(id uint64, urls []string) bool {
	for _, m := range ms.members {
		if m.ID == id {
			continue
		}
		for _, u := range m.PeerURLs {
			for _, v := range urls {
				if u == v {
					return true
				}
			}
		}
	}
	return false
}

// decide is the apply-time check of a membership change, as etcd's
// ValidateConfigurationChange: deterministic on the replicated records.
func (ms memberSet) decide(cc raftpb.ConfChange, ctx confContext) error {
	id := cc.NodeID
	if ms.removed[id] {
		return membership.ErrIDRemoved
	}
	_, exists := ms.members[id]
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if exists {
			return membership.ErrIDExists
		}
		if ms.peerURLConflict(id, ctx.PeerURLs) {
			return membership.ErrPeerURLExists
		}
	case raftpb.ConfChangeUpdateNode:
		if !exists {
			return membership.ErrNotFound
		}
		if ms.peerURLConflict(id, ctx.PeerURLs) {
			return membership.ErrPeerURLExists
		}
	case raftpb.ConfChangeRemoveNode:
		// A member known to raft but without a record (a data dir from
		// before records existed) may still be removed.
	}
	return nil
}

// ApplyConfChange implements consensus.MembershipStateMachine: it decides
// the change on the records, writes the outcome at index (the member's
// record, or why it was refused) and tells the server to reload.
func (f *fsm) ApplyConfChange(index uint64, cc raftpb.ConfChange) error {
	if index <= f.eng.AppliedIndex() {
		// Already applied before a restart: the same decision again.
		recs, err := f.eng.ClusterRecords(recKey(recRefused, index))
		if err != nil {
			panic(fmt.Sprintf("strata: read membership decision at %d: %v", index, err))
		}
		if why, ok := recs[recKey(recRefused, index)]; ok {
			return errors.New(string(why))
		}
		return nil
	}
	var ctx confContext
	if len(cc.Context) > 0 {
		if err := json.Unmarshal(cc.Context, &ctx); err != nil {
			ctx = confContext{} // not ours: a change without details
		}
	}
	ms, err := loadMembership(f.eng)
	if err != nil {
		panic(fmt.Sprintf("strata: read membership at %d: %v", index, err))
	}
	recs := map[string][]byte{}
	refused := ms.decide(cc, ctx)
	switch {
	case refused != nil:
		recs[recKey(recRefused, index)] = []byte(refused.Error())
	case cc.Type == raftpb.ConfChangeRemoveNode:
		recs[recKey(recMember, cc.NodeID)] = nil
		recs[recKey(recRemoved, cc.NodeID)] = []byte{}
	case cc.Type == raftpb.ConfChangeUpdateNode:
		m := ms.members[cc.NodeID]
		m.PeerURLs = ctx.PeerURLs
		recs[recKey(recMember, cc.NodeID)], _ = json.Marshal(m)
	default: // add
		m := memberRecord{ID: cc.NodeID, Name: ctx.Name, PeerURLs: ctx.PeerURLs}
		recs[recKey(recMember, cc.NodeID)], _ = json.Marshal(m)
	}
	if err := f.eng.ApplyCluster(index, recs); err != nil {
		panic(fmt.Sprintf("strata: cannot apply the membership change at %d: %v", index, err))
	}
	if refused == nil && f.onMembers != nil {
		f.onMembers()
	}
	return refused
}

// applyAttributes records a published name and client URLs at index.
func (f *fsm) applyAttributes(index uint64, data []byte) {
	var a memberRecord
	if err := json.Unmarshal(data, &a); err != nil {
		return // not decodable: nothing to record (deterministic everywhere)
	}
	ms, err := loadMembership(f.eng)
	if err != nil {
		panic(fmt.Sprintf("strata: read membership at %d: %v", index, err))
	}
	if ms.removed[a.ID] {
		return
	}
	m, ok := ms.members[a.ID]
	if !ok {
		// No record yet: a data dir from before records existed, or one
		// restored from a backup (which carries no membership).
		m = memberRecord{ID: a.ID}
	}
	if len(m.PeerURLs) == 0 {
		m.PeerURLs = a.PeerURLs // never overrides URLs a conf change set
	}
	m.Name, m.ClientURLs = a.Name, a.ClientURLs
	b, _ := json.Marshal(m)
	if err := f.eng.ApplyCluster(index, map[string][]byte{recKey(recMember, a.ID): b}); err != nil {
		panic(fmt.Sprintf("strata: cannot apply member attributes at %d: %v", index, err))
	}
	if f.onMembers != nil {
		f.onMembers()
	}
}

// memberTable is the member list served by /v2/members, /v2/machines and
// the peer port's /members: the replicated records, or until a record
// exists (a new member before it catches up, a data dir from before
// records), the members given at start.
//
// This member's own entry shows its configured name and client URLs until
// its published attributes are applied, so it is never listed without
// them (a client that syncs its endpoints from it finds it).
type memberTable struct {
	mu       sync.Mutex
	self     membership.Member // this member's own name and client URLs
	fallback []membership.Member
	cur      memberSet
	loaded   bool
}

func (t *memberTable) list() []membership.Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []membership.Member
	if !t.loaded || len(t.cur.members) == 0 {
		out = append(out, t.fallback...)
	} else {
		for _, m := range t.cur.members {
			out = append(out, membership.Member{ID: m.ID, Name: m.Name,
				PeerURLs: append([]string(nil), m.PeerURLs...), ClientURLs: append([]string(nil), m.ClientURLs...)})
		}
		// A data dir from before member records: members not yet
		// recorded, or recorded without peer URLs, as given at start.
		for _, f := range t.fallback {
			if _, ok := t.cur.members[f.ID]; !ok && !t.cur.removed[f.ID] {
				out = append(out, f)
			}
		}
		for i := range out {
			if len(out[i].PeerURLs) == 0 {
				for _, f := range t.fallback {
					if f.ID == out[i].ID {
						out[i].PeerURLs = f.PeerURLs
					}
				}
			}
		}
	}
	for i := range out {
		if out[i].ID == t.self.ID && (out[i].Name == "" || len(out[i].ClientURLs) == 0) {
			out[i].Name, out[i].ClientURLs = t.self.Name, append([]string(nil), t.self.ClientURLs...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (t *memberTable) isRemoved(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.removed[id]
}

func (t *memberTable) get(id uint64) (membership.Member, bool) {
	for _, m := range t.list() {
		if m.ID == id {
			return m, true
		}
	}
	return membership.Member{}, false
}

// reloadMembers re-reads the records after a membership change or a
// snapshot restore, and brings the transport in line: new members are
// added, changed peer URLs updated, removed members dropped (their
// traffic is refused from then on). Called from the raft loop (or from
// Open's replay): it must not wait on the node.
func (s *Server) reloadMembers() {
	ms, err := loadMembership(s.eng)
	if err != nil {
		s.log.Error("reload membership", "err", err)
		return
	}
	s.members.mu.Lock()
	old := s.members.cur
	s.members.cur, s.members.loaded = ms, true
	s.members.mu.Unlock()
	if s.tr != nil {
		for id, m := range ms.members {
			if id == s.id || len(m.PeerURLs) == 0 {
				continue
			}
			if o, ok := old.members[id]; ok && strings.Join(o.PeerURLs, ",") != strings.Join(m.PeerURLs, ",") {
				s.tr.UpdatePeer(id, m.PeerURLs)
			} else {
				s.tr.AddPeer(id, m.PeerURLs)
			}
		}
		for id := range ms.removed {
			if id != s.id {
				s.tr.RemovePeer(id)
			}
		}
	}
	if ms.removed[s.id] {
		s.markRemoved()
	}
}

// markRemoved records that this member was removed from the cluster: it
// stops serving (main exits once Removed is closed).
func (s *Server) markRemoved() {
	s.removedOnce.Do(func() {
		s.log.Warn(transport.ErrMemberRemoved.Error())
		close(s.removedc)
	})
}

// Removed is closed once this member knows it was removed from the
// cluster (it applied its removal, or a peer refused it with 410 Gone).
// The process should stop: the ID is never accepted again.
func (s *Server) Removed() <-chan struct{} { return s.removedc }

// ErrRemoved is why a removed member stops.
var ErrRemoved = transport.ErrMemberRemoved

// publish proposes this member's name and client URLs once it has a
// leader, until its record holds them (as etcd publishes its attributes
// after start). Retries every second until it succeeds or Stop.
func (s *Server) publish() {
	want := memberRecord{ID: s.id, Name: s.cfg.Name, PeerURLs: s.cfg.PeerURLs, ClientURLs: s.cfg.ClientURLs}
	b, _ := json.Marshal(want)
	data := append([]byte{attrsPrefix}, b...)
	for {
		s.members.mu.Lock()
		cur, ok := s.members.cur.members[s.id]
		s.members.mu.Unlock()
		if ok && cur.Name == want.Name && strings.Join(cur.ClientURLs, ",") == strings.Join(want.ClientURLs, ",") && len(cur.PeerURLs) > 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		_, err := s.propose(ctx, data)
		cancel()
		if err != nil {
			s.log.Debug("publish member attributes", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-s.removedc:
			return
		case <-time.After(time.Second):
		}
	}
}

// reconfigMu serializes this member's membership changes: raft refuses a
// conf change while another is being applied.
var reconfigMu sync.Mutex

// AddMember implements httpd.MemberAdmin: a new member with peerURLs
// (sorted, validated by the caller), its ID derived as etcd's for an
// added member (peer URLs and the current time), returned once the conf
// change is applied here. Refused as etcd with --strict-reconfig-check:
// while a voting member has never published its name and that would
// leave fewer started members than a quorum, or while this member is not
// connected to every other member.
func (s *Server) AddMember(ctx context.Context, peerURLs []string) (membership.Member, error) {
	id := MemberID(peerURLs, strconv.FormatInt(time.Now().Unix(), 10))
	m := membership.Member{ID: id, PeerURLs: peerURLs}
	members := s.members.list()
	started := 0
	for _, o := range members {
		if o.Name != "" {
			started++
		}
	}
	if n := len(members) + 1; !(started == 1 && n == 2) && started < n/2+1 {
		return m, errNotEnoughStarted
	}
	if !s.connectedToAll(members) {
		return m, errUnhealthy
	}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id}
	cc.Context, _ = json.Marshal(confContext{PeerURLs: peerURLs})
	return m, s.confChange(ctx, cc, func(ms memberSet) error { return ms.decide(cc, confContext{PeerURLs: peerURLs}) })
}

// RemoveMember implements httpd.MemberAdmin. Refused as etcd with
// --strict-reconfig-check when the members left would have fewer started
// members than a quorum, or fewer connected ones than a quorum.
func (s *Server) RemoveMember(ctx context.Context, id uint64) error {
	if s.members.isRemoved(id) {
		return membership.ErrIDRemoved
	}
	members := s.members.list()
	found := false
	n, started := 0, 0
	for _, o := range members {
		if o.ID == id {
			found = true
			continue
		}
		n++
		if o.Name != "" {
			started++
		}
	}
	if !found {
		return membership.ErrNotFound
	}
	if started < n/2+1 {
		return errNotEnoughStarted
	}
	if active := s.connected(members); active-1 < 1+(len(members)-1)/2 {
		return errUnhealthy
	}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}
	return s.confChange(ctx, cc, func(ms memberSet) error { return ms.decide(cc, confContext{}) })
}

// UpdateMember implements httpd.MemberAdmin: new peer URLs for member id.
func (s *Server) UpdateMember(ctx context.Context, id uint64, peerURLs []string) error {
	if _, ok := s.members.get(id); !ok {
		return membership.ErrNotFound
	}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: id}
	cc.Context, _ = json.Marshal(confContext{PeerURLs: peerURLs})
	return s.confChange(ctx, cc, func(ms memberSet) error { return ms.decide(cc, confContext{PeerURLs: peerURLs}) })
}

// LeaderMember implements httpd.MemberAdmin.
func (s *Server) LeaderMember() (membership.Member, bool) {
	lead := s.replica.Leader()
	if lead == 0 {
		return membership.Member{}, false
	}
	return s.members.get(lead)
}

// confChange checks cc against this member's view first (quick answers
// for the common mistakes), then proposes it and returns the apply-time
// decision. Waits for a leader like any write; one change at a time.
func (s *Server) confChange(ctx context.Context, cc raftpb.ConfChange, precheck func(memberSet) error) error {
	reconfigMu.Lock()
	defer reconfigMu.Unlock()
	s.members.mu.Lock()
	cur, loaded := s.members.cur, s.members.loaded && len(s.members.cur.members) > 0
	s.members.mu.Unlock()
	if loaded {
		if err := precheck(cur); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := s.awaitLeader(ctx, time.Now().Add(requestTimeout)); err != nil {
		return err
	}
	err := s.replica.ProposeConfChange(ctx, cc)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	}
	return err
}

// connected counts the members this one has a live stream to, itself
// included.
func (s *Server) connected(members []membership.Member) int {
	st := s.tr.Stats()
	n := 0
	for _, m := range members {
		if m.ID == s.id || st[m.ID].Active {
			n++
		}
	}
	return n
}

func (s *Server) connectedToAll(members []membership.Member) bool {
	return s.connected(members) == len(members)
}
