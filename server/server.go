// Package server assembles a Strata member: the data directory, the
// backend, the engine and the raft replica, and exposes them to the HTTP API.
// Data flows one way: a command is proposed to raft, committed, applied by
// the engine to the backend, and only then answered.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// Config configures a member.
type Config struct {
	Name          string
	DataDir       string
	Backend       string
	ClientURLs    []string            // advertised client URLs
	PeerURLs      []string            // advertised peer URLs
	InitialPeers  map[string][]string // name -> peer URLs (--initial-cluster)
	ClusterToken  string
	SnapshotCount uint64
	HistorySize   int
	UnsafeNoFsync bool
	Logger        *slog.Logger

	// ClusterState is "new" (bootstrap with InitialPeers) or "existing".
	ClusterState string
	// PeerListeners serve the peer endpoints (raft messages, /members);
	// the server closes them at Stop.
	PeerListeners []net.Listener
	// PeerTLS dials https:// peer URLs (client certificate, trusted CAs);
	// nil dials them with system roots and no certificate. TLS on the
	// peer listeners is the listeners' own (see PeerListeners).
	PeerTLS *tls.Config
	// HeartbeatInterval is raft's tick (default 100ms); ElectionTimeout
	// (default 1s) is rounded down to a whole number of ticks.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// SnapshotCatchUpEntries: entries kept behind a snapshot for slow
	// followers (default 5000).
	SnapshotCatchUpEntries uint64
	// ForceNewCluster restarts the member as the only one of its cluster,
	// with all its data (etcd's --force-new-cluster; consensus.Config).
	ForceNewCluster bool
	// MaxSnapshots and MaxWALSegments bound the files kept (consensus.Config).
	MaxSnapshots, MaxWALSegments int
	// SpaceReserve: writes are refused (NOSPACE alarm) while the data dir's
	// file system has fewer free bytes (0: spaceReserve(Backend); negative:
	// only on actual ENOSPC). See space.go.
	SpaceReserve int64
	// QuotaBackendBytes, when positive, refuses writes other than deletes
	// once the backend's files exceed it (etcd's --quota-backend-bytes).
	QuotaBackendBytes int64
}

// Server is a running member.
type Server struct {
	cfg       Config
	log       *slog.Logger
	dir       *dataDir
	be        backends.Backend
	eng       *engine.Engine
	replica   *replica
	id        uint64
	clusterID uint64
	members   memberTable
	startTime time.Time
	appends   appendStats // raft appends sent and received, for /v2/stats/self
	tr        *transport.Transport
	peerHTTP  *http.Server
	leader    leaderTracker
	join      bool // joined a running cluster: raft starts without bootstrap

	removedc    chan struct{} // closed when this member was removed (members.go)
	removedOnce sync.Once

	overQuota atomic.Bool

	stop       chan struct{}
	expiryDone chan struct{}
	leaderDone chan struct{}
	stopOnce   sync.Once
}

// Start opens the data directory and brings the member up: storage, then
// the peer endpoints and membership, then the raft replica, then the
// member's background work.
func Start(cfg Config) (_ *Server, err error) {
	s := newServer(cfg)
	if s.dir, err = openDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.stopPeers()
			s.closeStorage()
		}
	}()
	if err = s.openStorage(); err != nil {
		return nil, err
	}
	peers, err := s.bootstrap()
	if err != nil {
		return nil, err
	}
	// Peers are served before raft starts: an election needs them.
	s.startPeers(peers)
	s.members.self = membership.Member{ID: s.id, Name: s.cfg.Name, ClientURLs: s.cfg.ClientURLs}
	s.reloadMembers() // membership from the replicated records, if any
	if err = s.openReplica(peers); err != nil {
		return nil, err
	}
	if err = s.awaitFirstLeader(peers); err != nil {
		return nil, err
	}
	go s.runExpiry()
	go s.watchQuota()
	go s.watchLeader()
	go s.publish()
	return s, nil
}

// newServer is a Server for cfg, with cfg's defaults filled in.
func newServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClusterToken == "" {
		cfg.ClusterToken = "etcd-cluster"
	}
	return &Server{cfg: cfg, log: cfg.Logger, startTime: time.Now(), stop: make(chan struct{}),
		expiryDone: make(chan struct{}), leaderDone: make(chan struct{}), removedc: make(chan struct{})}
}

// openStorage opens the backend in the locked data directory, and the
// engine on it. On an error the caller closes what was opened
// (closeStorage).
func (s *Server) openStorage() (err error) {
	if err = s.dir.checkBackend(s.cfg.Backend); err != nil {
		return err
	}
	if s.be, err = openBackend(s.dir, s.cfg.Backend, s.cfg.UnsafeNoFsync, s.log); err != nil {
		return err
	}
	s.eng, err = engine.Open(s.be, engine.Options{HistorySize: s.cfg.HistorySize})
	return err
}

// openReplica starts the raft replica on the engine (through the fsm) and
// the peer transport, and hands the transport what it received.
func (s *Server) openReplica(peers []consensus.Peer) (err error) {
	fsm := newFSM(s.eng, s.be)
	fsm.where = fmt.Sprintf("backend %s in %s", s.cfg.Backend, s.dir.sub("db"))
	fsm.onMembers = s.reloadMembers
	tr, raftFor := s.peerFaults()
	if tr != nil {
		tr = countSends{&s.appends, tr}
	}
	tick := s.tickInterval()
	s.replica, err = consensus.Open(consensus.Config{
		ID:                     s.id,
		Peers:                  peers,
		Join:                   s.join,
		ForceNewCluster:        s.cfg.ForceNewCluster,
		MaxSnapshots:           s.cfg.MaxSnapshots,
		MaxWALSegments:         s.cfg.MaxWALSegments,
		DataDir:                s.dir.sub("member"),
		SnapshotCount:          s.cfg.SnapshotCount,
		SnapshotCatchUpEntries: s.cfg.SnapshotCatchUpEntries,
		TickInterval:           tick,
		ElectionTicks:          max(1, int(s.electionTimeout()/tick)),
		HeartbeatTicks:         1,
		UnsafeNoFsync:          s.cfg.UnsafeNoFsync,
		ProposalTimeout:        requestTimeout,
		Logger:                 s.log,
		Transport:              tr,
		SpaceReserve:           spaceReserve(s.cfg.Backend, s.cfg.SpaceReserve),
	}, fsm)
	if err != nil {
		return err
	}
	s.tr.SetRaft(countRecvs{&s.appends, raftFor(s.replica)})
	return nil
}

// awaitFirstLeader waits for a lone member to elect itself, so the first
// client request is not refused for want of a leader; a member of a larger
// cluster finds its leader later, without holding up the start.
func (s *Server) awaitFirstLeader(peers []consensus.Peer) error {
	if len(peers) != 1 || s.join {
		s.log.Info("cluster member starting", "cluster", fmt.Sprintf("%x", s.clusterID), "peers", peerList(peers))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := s.WaitLeader(ctx)
	cancel()
	if err != nil {
		s.replica.Stop()
		return errors.New("raft elected no leader within 10s")
	}
	return nil
}

// Stop shuts the member down: no new proposals, the raft replica stops, the
// backend closes and the data dir is unlocked.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() {
		s.handOffLeadership()
		close(s.stop)
		<-s.expiryDone
		<-s.leaderDone
		err = s.replica.Stop()
		s.stopPeers()
		s.closeStorage()
	})
	return err
}

func (s *Server) closeStorage() {
	if s.be != nil {
		if err := s.be.Close(); err != nil {
			s.log.Error("close backend", "err", err)
		}
	}
	s.dir.close()
}

// ID is this member's ID.
func (s *Server) ID() uint64 { return s.id }

// Engine exposes the engine (for tools and tests).
func (s *Server) Engine() *engine.Engine { return s.eng }

// requestTimeout bounds how long a write waits to be applied, as etcd's
// default request timeout (5 s plus an election's worth).
const requestTimeout = 7 * time.Second

// errTimeout is etcd's message for a write that was not committed in time.
var errTimeout = errors.New("etcdserver: request timed out")

// Propose implements httpd.Store.
func (s *Server) Propose(ctx context.Context, c engine.Command) (*engine.Event, error) {
	if err := s.admit(c); err != nil { // out of space or past the quota
		return nil, err
	}
	r, err := s.propose(ctx, c.Marshal()) // waits for a leader, bounded
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Event == nil {
		// Applied by an earlier attempt of a batch the backend failed
		// (fsm.TryApply): the command took effect, its result is lost.
		return nil, errors.New("apply result lost: the entry was applied before its batch was retried")
	}
	return r.Event, nil
}

// Get implements httpd.Store.
func (s *Server) Get(ctx context.Context, p string, recursive, sorted, quorum bool) (*engine.Event, error) {
	if quorum {
		if err := s.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	return s.eng.Get(p, recursive, sorted)
}

// Watch implements httpd.Store.
func (s *Server) Watch(p string, recursive, stream bool, waitIndex uint64) (*engine.Watcher, error) {
	return s.eng.Watch(p, recursive, stream, waitIndex)
}

// Track counts applied changes below dir (the auth API caches what it
// read from its directory until this count moves).
func (s *Server) Track(dir string) *engine.Tracker { return s.eng.Track(dir) }

// RaftStatus implements httpd.Store.
func (s *Server) RaftStatus() (uint64, uint64) { return s.replica.Progress() }

// ClusterID implements httpd.Cluster.
func (s *Server) ClusterID() uint64 { return s.clusterID }

// Members implements httpd.Cluster.
func (s *Server) Members() []membership.Member { return s.members.list() }

// StoreStats implements httpd.Cluster.
func (s *Server) StoreStats() engine.StoreStats { return s.eng.Stats() }

// Healthy implements httpd.Cluster: the member has a leader and can pass
// a linearizable read barrier.
func (s *Server) Healthy(ctx context.Context) error {
	if err := s.replica.SpaceErr(); err != nil {
		return fmt.Errorf("ALARM NOSPACE: %w", err)
	}
	if s.overQuota.Load() {
		return fmt.Errorf("ALARM NOSPACE: %w", ErrQuota)
	}
	if s.replica.Status().Lead == 0 {
		return errors.New("no leader")
	}
	return s.replica.ReadIndex(ctx)
}

type leaderInfo struct {
	Leader    string    `json:"leader"`
	Uptime    string    `json:"uptime"`
	StartTime time.Time `json:"startTime"`
}

type selfStats struct {
	Name                 string     `json:"name"`
	ID                   string     `json:"id"`
	State                string     `json:"state"`
	StartTime            time.Time  `json:"startTime"`
	LeaderInfo           leaderInfo `json:"leaderInfo"`
	RecvAppendRequestCnt uint64     `json:"recvAppendRequestCnt"`
	RecvPkgRate          float64    `json:"recvPkgRate,omitempty"`
	RecvBandwidthRate    float64    `json:"recvBandwidthRate,omitempty"`
	SendAppendRequestCnt uint64     `json:"sendAppendRequestCnt"`
	SendPkgRate          float64    `json:"sendPkgRate,omitempty"`
	SendBandwidthRate    float64    `json:"sendBandwidthRate,omitempty"`
	// UnsafeNoFsync warns that acknowledged writes may not survive a power
	// loss; absent (as in etcd) when the log is fsync'd.
	UnsafeNoFsync bool `json:"unsafeNoFsync,omitempty"`
}

// SelfStats implements httpd.Cluster with etcd's /v2/stats/self fields.
func (s *Server) SelfStats() any {
	st := s.replica.Status()
	state := "StateFollower"
	if st.Lead == s.id {
		state = "StateLeader"
	}
	now := time.Now()
	out := selfStats{
		Name: s.cfg.Name, ID: fmt.Sprintf("%x", s.id), State: state, StartTime: s.startTime,
		LeaderInfo:    leaderInfo{Leader: fmt.Sprintf("%x", st.Lead), Uptime: time.Since(s.startTime).String(), StartTime: s.startTime},
		UnsafeNoFsync: s.cfg.UnsafeNoFsync,
	}
	out.RecvAppendRequestCnt, out.RecvPkgRate, out.RecvBandwidthRate = s.appends.recv.rates(now)
	out.SendAppendRequestCnt, out.SendPkgRate, out.SendBandwidthRate = s.appends.send.rates(now)
	return out
}

// LeaderStats implements httpd.Cluster.
func (s *Server) LeaderStats() (any, bool) {
	if !s.replica.IsLeader() {
		return nil, false
	}
	return s.leaderStats(), true
}

// Failed is closed when the raft replica stopped on its own (a failed disk):
// the process should exit; Stop returns the cause.
func (s *Server) Failed() <-chan struct{} { return s.replica.Done() }

// ReplicaStatus reports the raft replica's state and counters.
func (s *Server) ReplicaStatus() consensus.Status { return s.replica.Status() }
