package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// clusterFile records, in a data dir, which cluster and member it belongs
// to: "cluster <hex id>\nmember <hex id>\n", then "joined\n" for a member
// that joined a running cluster (its ID is not derived from the flags).
const clusterFile = "cluster"

// identity is a data dir's recorded cluster and member IDs.
type identity struct {
	cluster, member uint64
	joined          bool
}

func (d *dataDir) readIdentity() (identity, bool, error) {
	b, err := os.ReadFile(d.sub(clusterFile))
	if errors.Is(err, os.ErrNotExist) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, fmt.Errorf("read cluster ID of data dir %s: %w", d.path, err)
	}
	var id identity
	if _, err := fmt.Sscanf(string(b), "cluster %x\nmember %x\n", &id.cluster, &id.member); err != nil {
		return identity{}, false, fmt.Errorf("data dir %s: malformed %s file %q: %w", d.path, clusterFile, b, err)
	}
	id.joined = strings.HasSuffix(string(b), "\njoined\n")
	return id, true, nil
}

func (d *dataDir) writeIdentity(id identity) error {
	p := d.sub(clusterFile)
	tmp := p + ".tmp"
	text := fmt.Sprintf("cluster %x\nmember %x\n", id.cluster, id.member)
	if id.joined {
		text += "joined\n"
	}
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return fmt.Errorf("record cluster ID in %s: %w", d.path, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("record cluster ID in %s: %w", d.path, err)
	}
	return nil
}

// hasRaftState reports whether the data dir already holds a raft log.
func (d *dataDir) hasRaftState() bool {
	des, err := os.ReadDir(filepath.Join(d.sub("member"), "wal"))
	return err == nil && len(des) > 0
}

// bootstrap works out the member's identity and initial peers from the
// flags (as etcd does: member IDs hash the peer URLs and the cluster
// token, the cluster ID hashes the member IDs), and checks them against
// what the data dir recorded. A data dir from another cluster, or of
// another member, is refused with a one-line explanation.
func (s *Server) bootstrap() ([]consensus.Peer, error) {
	cfg := &s.cfg
	s.id = MemberID(cfg.PeerURLs, cfg.ClusterToken)
	if len(cfg.InitialPeers) == 0 {
		return nil, errors.New("--initial-cluster names no member")
	}
	have, ok, err := s.dir.readIdentity()
	if err != nil {
		return nil, err
	}
	switch {
	case ok && have.joined:
		// Joined a running cluster: the recorded IDs are the truth; the
		// members are in the replicated records (reloadMembers).
		s.id, s.clusterID, s.join = have.member, have.cluster, true
		s.leader.enabled = true
		return nil, nil
	case !ok && cfg.ClusterState == "existing" && !s.dir.hasRaftState():
		return s.joinExisting()
	}
	names := make([]string, 0, len(cfg.InitialPeers))
	for name := range cfg.InitialPeers {
		names = append(names, name)
	}
	sort.Strings(names)
	var ids []uint64
	var peers []consensus.Peer
	self := false
	seen := map[uint64]string{}
	for _, name := range names {
		urls := cfg.InitialPeers[name]
		id := MemberID(urls, cfg.ClusterToken)
		if other, dup := seen[id]; dup {
			return nil, fmt.Errorf("--initial-cluster: members %s and %s have the same peer URLs %v", other, name, urls)
		}
		seen[id] = name
		ids = append(ids, id)
		cctx, _ := json.Marshal(confContext{Name: name, PeerURLs: urls})
		peers = append(peers, consensus.Peer{ID: id, URLs: urls, Context: cctx})
		m := membership.Member{ID: id, Name: name, PeerURLs: urls}
		if id == s.id {
			if name != cfg.Name {
				return nil, fmt.Errorf("--initial-cluster names this member's peer URLs %v %q, but --name is %q", cfg.PeerURLs, name, cfg.Name)
			}
			m.ClientURLs = cfg.ClientURLs
			self = true
		}
		s.members.fallback = append(s.members.fallback, m)
	}
	if !self {
		if urls, ok := cfg.InitialPeers[cfg.Name]; ok {
			return nil, fmt.Errorf("--initial-cluster gives %s the peer URLs %v, but --initial-advertise-peer-urls is %v: they must match",
				cfg.Name, urls, cfg.PeerURLs)
		}
		return nil, fmt.Errorf("--initial-cluster has no member named %q (--name) with peer URLs %v (--initial-advertise-peer-urls)", cfg.Name, cfg.PeerURLs)
	}
	want := identity{cluster: ClusterID(ids), member: s.id}
	switch {
	case ok && have.cluster != want.cluster:
		return nil, fmt.Errorf("data dir %s belongs to cluster %x, but --initial-cluster and --initial-cluster-token describe cluster %x: start with the flags the member was created with, or use a new --data-dir",
			s.dir.path, have.cluster, want.cluster)
	case ok && have.member != want.member:
		return nil, fmt.Errorf("data dir %s belongs to member %x of cluster %x, but --initial-advertise-peer-urls and --initial-cluster-token give member %x: start with the flags the member was created with, or use a new --data-dir",
			s.dir.path, have.member, have.cluster, want.member)
	case !ok:
		// A new member, or one from before IDs were recorded.
		if err := s.dir.writeIdentity(want); err != nil {
			return nil, err
		}
	}
	s.clusterID = want.cluster
	s.leader.enabled = len(peers) > 1
	return peers, nil
}

// startPeers creates the transport and serves the peer endpoints on the
// configured listeners: /raft/stream and /raft/snapshot for raft, and, as
// etcd's peer port, /members and /version.
func (s *Server) startPeers(peers []consensus.Peer) {
	s.tr = transport.New(transport.Config{
		ID: s.id, ClusterID: s.clusterID, Logger: s.log, TLS: s.cfg.PeerTLS, OnRemoved: s.markRemoved,
		Snapshots: func(raftpb.SnapshotMetadata) (*transport.Snapshot, error) {
			md, rc, err := s.replica.PeerSnapshot()
			if err != nil {
				return nil, err
			}
			return &transport.Snapshot{Metadata: md, Image: rc, Size: -1}, nil
		},
	})
	for _, p := range peers {
		s.tr.AddPeer(p.ID, p.URLs)
	}
	mux := http.NewServeMux()
	mux.Handle("/raft/", s.tr.Handler())
	mux.HandleFunc("/members", s.servePeerMembers)
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"etcdserver":%q,"etcdcluster":%q}`, membership.EtcdVersion, membership.EtcdClusterVersion)
	})
	s.peerHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	for _, ln := range s.cfg.PeerListeners {
		go func(ln net.Listener) {
			if err := s.peerHTTP.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("peer listener failed", "addr", ln.Addr().String(), "err", err)
			}
		}(ln)
	}
}

// stopPeers closes the peer listeners and every peer connection.
func (s *Server) stopPeers() {
	if s.peerHTTP != nil {
		s.peerHTTP.Close()
	} else {
		for _, ln := range s.cfg.PeerListeners {
			ln.Close()
		}
	}
	if s.tr != nil {
		s.tr.Stop()
	}
}

// servePeerMembers answers the peer port's /members as etcd does: a JSON
// array with numeric IDs.
func (s *Server) servePeerMembers(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Etcd-Cluster-ID", strconv.FormatUint(s.clusterID, 16))
	w.Header().Set("Content-Type", "application/json")
	membership.EncodePeerList(w, s.Members())
}

// errNoLeader is etcd's message for a request a member cannot serve
// because it knows no leader (partitioned, or the cluster lost quorum).
var errNoLeader = errors.New("etcdserver: no leader")

// leaderWait bounds how long a request waits for a leader to be elected:
// two election timeouts cover an election after a leader failure.
func (s *Server) leaderWait() time.Duration { return 2 * s.electionTimeout() }

func (s *Server) electionTimeout() time.Duration {
	if s.cfg.ElectionTimeout > 0 {
		return s.cfg.ElectionTimeout
	}
	return time.Second
}

// awaitLeader returns nil once the member knows a leader, errNoLeader if
// it knows none after leaderWait (or by deadline), or ctx's error.
func (s *Server) awaitLeader(ctx context.Context, deadline time.Time) error {
	if s.replica.Leader() != 0 {
		return nil
	}
	deadline = minTime(deadline, time.Now().Add(s.leaderWait()))
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.replica.Leader() == 0 {
		if time.Now().After(deadline) {
			return errNoLeader
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return consensus.ErrStopped
		case <-t.C:
		}
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// leaderTracker hands out a context per leader term of office, canceled
// when the member's view of the leader moves off a known leader: a proposal
// forwarded to a leader that then fails would otherwise wait for the full
// request timeout. The view is keyed by leader ID, so a proposal made under
// a new leader is never canceled by a late notice of the change to it.
type leaderTracker struct {
	enabled bool // several members: set once by bootstrap
	mu      sync.Mutex
	lead    uint64 // the leader the current context belongs to (0: none)
	ctx     context.Context
	cancel  context.CancelFunc
}

// under returns lead's term-of-office context (lead is the proposer's view
// of the leader now; 0 changes nothing).
func (l *leaderTracker) under(lead uint64) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	if lead != 0 {
		l.moveLocked(lead)
	}
	return l.ctx
}

// observe records the member's view of the leader, ending the term of a
// known leader it moves off.
func (l *leaderTracker) observe(lead uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.moveLocked(lead)
}

func (l *leaderTracker) moveLocked(lead uint64) {
	if lead == l.lead {
		return
	}
	// From no leader to one is an election: nothing was forwarded meanwhile.
	if l.lead != 0 && l.cancel != nil {
		l.cancel()
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	l.lead = lead
}

// errLeaderFail is etcd's message for a request whose leader was lost
// before it was answered: it may or may not have been applied.
var errLeaderFail = errors.New("etcdserver: request timed out, possibly due to previous leader failure")

// propose replicates cmd. A proposal raft drops because no leader is
// known (it was never appended, so retrying is safe) waits for a leader
// and is proposed again; without one it fails with errNoLeader within
// leaderWait, and in any case by requestTimeout.
func (s *Server) propose(ctx context.Context, cmd []byte) (engine.Result, error) {
	deadline := time.Now().Add(requestTimeout)
	for {
		if err := s.awaitLeader(ctx, deadline); err != nil {
			return engine.Result{}, err
		}
		res, err := s.proposeOnce(ctx, cmd)
		if errors.Is(err, raft.ErrProposalDropped) && time.Now().Before(deadline) {
			select { // a leadership change in progress: let it settle
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return engine.Result{}, ctx.Err()
			}
			continue
		}
		if errors.Is(err, consensus.ErrTimeout) {
			if s.replica.Leader() == 0 {
				return engine.Result{}, errNoLeader
			}
			return engine.Result{}, errTimeout
		}
		return res, err
	}
}

// proposeOnce proposes cmd once. In a cluster, a change of leader while
// it waits fails it with errLeaderFail (its entry may still commit, as
// after any timeout) rather than leave it waiting on a lost leader.
func (s *Server) proposeOnce(ctx context.Context, cmd []byte) (engine.Result, error) {
	if !s.leader.enabled {
		return s.replica.Propose(ctx, cmd)
	}
	term := s.leader.under(s.replica.Leader())
	pctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(term, cancel)
	res, err := s.replica.Propose(pctx, cmd)
	stop()
	cancel()
	if err != nil && errors.Is(err, context.Canceled) && term.Err() != nil && ctx.Err() == nil {
		return engine.Result{}, errLeaderFail
	}
	return res, err
}

// readBarrier is the linearizable read barrier of quorum reads: a raft
// ReadIndex, retried when the leader changes under it, bounded as propose.
func (s *Server) readBarrier(ctx context.Context) error {
	deadline := time.Now().Add(requestTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		if err := s.awaitLeader(ctx, deadline); err != nil {
			if errors.Is(err, context.DeadlineExceeded) && time.Now().After(deadline) {
				return errTimeout
			}
			return err
		}
		err := s.replica.ReadIndex(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, consensus.ErrLeaderChanged):
			continue
		case errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(deadline):
			if s.replica.Leader() == 0 {
				return errNoLeader
			}
			return errTimeout
		default:
			return err
		}
	}
}

// watchLeader ends every open watch when the member loses its leader, so
// clients see their watch end and re-watch (possibly on another member)
// instead of waiting on a member that no longer hears of new writes.
func (s *Server) watchLeader() {
	defer close(s.leaderDone)
	t := time.NewTicker(s.tickInterval())
	defer t.Stop()
	lead := s.replica.Leader()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.replica.Leader()
		if now == lead {
			continue
		}
		s.leader.observe(now) // fails proposals made under the lost leader
		// Any change away from a known leader ends the open watches, not
		// only a change to "none": this poll can miss a candidate's brief
		// leaderless state (it may win within one tick).
		lost := lead
		lead = now
		if lost != 0 {
			// etcd's "Raft Internal Error" (300): the client re-watches elsewhere.
			cause := engine.NewError(engine.EcodeRaftInternal,
				fmt.Sprintf("member %x lost its leader %x", s.id, lost), s.eng.Index())
			if n := s.eng.EndWatches(cause); n > 0 {
				s.log.Warn("lost the leader: ended open watches", "watches", n, "lost_leader", fmt.Sprintf("%x", lost))
			}
		}
	}
}

func (s *Server) tickInterval() time.Duration {
	if s.cfg.HeartbeatInterval > 0 {
		return s.cfg.HeartbeatInterval
	}
	return 100 * time.Millisecond
}

// WaitLeader blocks until the member knows a leader (a cluster member
// waits for its peers to start), or ctx ends.
func (s *Server) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.replica.Leader() == 0 {
		select {
		case <-s.removedc:
			return ErrRemoved
		case <-ctx.Done():
			return fmt.Errorf("waiting for a leader: %w", ctx.Err())
		case <-s.replica.Done():
			return fmt.Errorf("waiting for a leader: %w", consensus.ErrStopped)
		case <-t.C:
		}
	}
	return nil
}

// peerList formats IDs for logs.
func peerList(ps []consensus.Peer) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%x=%s", p.ID, strings.Join(p.URLs, "|"))
	}
	return b.String()
}

// followerStats is one follower in /v2/stats/leader, in etcd's key order.
type followerStats struct {
	Latency struct {
		Current           float64 `json:"current"`
		Average           float64 `json:"average"`
		StandardDeviation float64 `json:"standardDeviation"`
		Minimum           float64 `json:"minimum"`
		Maximum           float64 `json:"maximum"`
	} `json:"latency"`
	Counts struct {
		Fail    uint64 `json:"fail"`
		Success uint64 `json:"success"`
	} `json:"counts"`
}

// leaderStats fills /v2/stats/leader from the transport's measurements:
// latency is the heartbeat round trip to each follower (seconds), success
// counts messages written to its stream, fail those dropped (queue full,
// follower down, write failed).
func (s *Server) leaderStats() any {
	out := struct {
		Leader    string                    `json:"leader"`
		Followers map[string]*followerStats `json:"followers"`
	}{fmt.Sprintf("%x", s.id), map[string]*followerStats{}}
	if s.tr == nil {
		return out
	}
	for id, st := range s.tr.Stats() {
		f := &followerStats{}
		f.Latency.Current, f.Latency.Average = st.Latency.Current, st.Latency.Average
		f.Latency.StandardDeviation = st.Latency.StandardDeviation
		f.Latency.Minimum, f.Latency.Maximum = st.Latency.Minimum, st.Latency.Maximum
		f.Counts.Fail, f.Counts.Success = st.Fail, st.Success
		out.Followers[fmt.Sprintf("%x", id)] = f
	}
	return out
}

// handOffLeadership is called when a leader is stopped cleanly: it hands
// leadership to a connected follower (raft's leader transfer, the
// follower with the lowest heartbeat latency) and waits up to an election
// timeout for it to take over, so the cluster does not go an election
// timeout without a leader. Proposals made meanwhile are retried by
// propose once the new leader is known. Best effort: on failure the
// member just stops, as after a crash.
func (s *Server) handOffLeadership() {
	if !s.leader.enabled || s.tr == nil || !s.replica.IsLeader() {
		return
	}
	var to uint64
	best := 0.0
	for id, st := range s.tr.Stats() {
		if st.Active && (to == 0 || st.Latency.Average < best) {
			to, best = id, st.Latency.Average
		}
	}
	if to == 0 {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.electionTimeout())
	defer cancel()
	if err := s.replica.Step(ctx, raftpb.Message{Type: raftpb.MsgTransferLeader, From: to}); err != nil {
		s.log.Warn("stopping leader: leadership transfer not started", "to", fmt.Sprintf("%x", to), "err", err)
		return
	}
	for s.replica.IsLeader() || s.replica.Leader() == 0 {
		if ctx.Err() != nil {
			s.log.Warn("stopping leader: leadership transfer did not finish", "to", fmt.Sprintf("%x", to), "waited", time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.log.Info("stopping leader: handed leadership over", "to", fmt.Sprintf("%x", s.replica.Leader()), "took", time.Since(start).Round(time.Millisecond))
}
