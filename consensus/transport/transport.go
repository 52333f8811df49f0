// Package transport carries raft messages between cluster members over
// HTTP on their peer URLs.
//
// Every member runs one stream writer per remote peer: a long-lived TCP
// connection, opened with an HTTP/1.1 upgrade request to the peer's
// /raft/stream, on which the member writes length-prefixed raftpb.Message
// frames (u32 big-endian length, then the marshalled message; a zero
// length is a keep-alive). Messages for a peer wait in a bounded queue of
// their own, and the writer drains whatever is queued into one write, so
// one slow or dead follower never delays the others: when its queue is
// full, messages for it are dropped and raft is told it is unreachable.
// A connection that fails is redialled with exponential backoff; while it
// is down, queued messages are dropped (raft retransmits what matters).
//
// Snapshots (MsgSnap) are sent on a connection of their own, a POST to
// /raft/snapshot whose body is the message frame followed by the state
// machine image, streamed from the source rather than held in memory. The
// outcome is reported to raft with ReportSnapshot.
//
// Peers identify themselves with X-Server-From and the cluster they belong
// to with X-Etcd-Cluster-ID; a receiver refuses a stream or snapshot from
// another cluster (412) or addressed to another member (412), so members
// of different clusters never exchange raft messages.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Raft is the part of a raft member the transport drives: it delivers
// received messages to Step and reports delivery failures.
type Raft interface {
	// Step hands a received message to raft; it may block until there is
	// room, until ctx ends.
	Step(ctx context.Context, m raftpb.Message) error
	// ReportUnreachable must not block.
	ReportUnreachable(id uint64)
	// ReportSnapshot may block; it is never called from Send.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// Snapshot is an outgoing snapshot image. Metadata describes the image
// actually streamed, which may be newer than the one raft asked to send.
type Snapshot struct {
	Metadata raftpb.SnapshotMetadata
	Image    io.ReadCloser
	// Size is the image length in bytes, or -1 if unknown.
	Size int64
}

// SnapshotSource opens the image to send for a MsgSnap whose snapshot has
// metadata md (raft's MsgSnap carries no image).
type SnapshotSource func(md raftpb.SnapshotMetadata) (*Snapshot, error)

// Config configures a Transport.
type Config struct {
	ID        uint64 // this member
	ClusterID uint64
	// Snapshots opens images for outgoing MsgSnap; required to send them.
	Snapshots SnapshotSource
	Logger    *slog.Logger
	// QueueSize bounds the messages waiting for one peer (default 4096).
	QueueSize int
	// DialTimeout bounds connecting to a peer (default 1s).
	DialTimeout time.Duration
	// WriteTimeout bounds one batched write to a stream (default 5s): a
	// peer that does not read for that long is disconnected.
	WriteTimeout time.Duration
	// ReadTimeout ends an incoming stream silent for that long (default
	// 5s; writers send a keep-alive frame every second when idle).
	ReadTimeout time.Duration
	// MaxSnapshotBytes bounds a received snapshot image (default 8 GiB).
	MaxSnapshotBytes int64
	// TLS is used to dial peers whose URL is https:// (the member's client
	// certificate and the CAs peers must chain to); nil dials them with
	// an empty config (system roots, no client certificate). http:// peers
	// are dialled in the clear.
	TLS *tls.Config
	// OnRemoved is called (once, from a transport goroutine) when a peer
	// refuses this member's stream with 410 Gone: the cluster removed it.
	OnRemoved func()
}

const (
	defaultQueueSize    = 4096
	defaultDialTimeout  = time.Second
	defaultWriteTimeout = 5 * time.Second
	defaultReadTimeout  = 5 * time.Second
	keepAliveInterval   = time.Second
	maxFrameBytes       = 256 << 20 // a MsgApp is capped at ~1 MiB of entries
	maxBatch            = 1024      // messages per write
	minBackoff          = 50 * time.Millisecond
	maxBackoff          = time.Second

	hdrFrom      = "X-Server-From"
	hdrTo        = "X-Raft-To"
	hdrClusterID = "X-Etcd-Cluster-ID"
	hdrSnapSize  = "X-Snapshot-Size"
	upgradeProto = "strata-raft/1"
	// StreamPath and SnapshotPath are the peer endpoints Handler serves.
	StreamPath   = "/raft/stream"
	SnapshotPath = "/raft/snapshot"
)

// Transport sends raft messages to peers and receives theirs. Send is safe
// to call from the raft loop: it never blocks.
type Transport struct {
	cfg Config
	log *slog.Logger

	raftMu sync.RWMutex
	raft   Raft

	mu      sync.RWMutex
	peers   map[uint64]*peer
	removed map[uint64]bool // removed members: their requests get 410
	stopped bool

	removedOnce sync.Once

	ctx    context.Context // ends at Stop: cancels dials, steps and streams
	cancel context.CancelFunc
	wg     sync.WaitGroup

	snapClient *http.Client // posts snapshots; TLS for https peers

	connsMu sync.Mutex
	conns   map[io.Closer]uint64 // incoming hijacked streams -> sending peer, closed at Stop
}

// New returns a Transport with no peers. Set the raft member with SetRaft
// before messages can be received.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = defaultReadTimeout
	}
	if cfg.MaxSnapshotBytes <= 0 {
		cfg.MaxSnapshotBytes = 8 << 30
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg: cfg, log: cfg.Logger.With("member", fmt.Sprintf("%x", cfg.ID)),
		peers: make(map[uint64]*peer), removed: make(map[uint64]bool), ctx: ctx, cancel: cancel,
		conns: make(map[io.Closer]uint64),
	}
	t.snapClient = newSnapshotClient(cfg.TLS)
	return t
}

// SetRaft sets the member that receives messages and failure reports.
// Until it is set, incoming connections are refused with 503.
func (t *Transport) SetRaft(r Raft) {
	t.raftMu.Lock()
	t.raft = r
	t.raftMu.Unlock()
}

func (t *Transport) getRaft() Raft {
	t.raftMu.RLock()
	defer t.raftMu.RUnlock()
	return t.raft
}

func (t *Transport) reportUnreachable(id uint64) {
	if r := t.getRaft(); r != nil {
		r.ReportUnreachable(id)
	}
}

func (t *Transport) reportSnapshot(id uint64, st raft.SnapshotStatus) {
	if r := t.getRaft(); r != nil {
		r.ReportSnapshot(id, st)
	}
}

// AddPeer starts sending to peer id at urls (the first that answers is
// used). Adding a known peer updates its URLs.
func (t *Transport) AddPeer(id uint64, urls []string) {
	if id == t.cfg.ID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if p, ok := t.peers[id]; ok {
		p.setURLs(urls)
		return
	}
	p := newPeer(t, id, urls)
	t.peers[id] = p
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		p.run()
	}()
}

// UpdatePeer changes the URLs of a known peer; the stream reconnects to
// them on its next dial.
func (t *Transport) UpdatePeer(id uint64, urls []string) {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p != nil {
		p.setURLs(urls)
		p.reconnect()
	}
}

// RemovePeer stops sending to peer id, which was removed from the
// cluster, and drops what is queued for it. From then on its streams and
// snapshots are refused with 410 Gone, which tells it it was removed.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.removed[id] = true
	t.mu.Unlock()
	t.connsMu.Lock()
	for c, from := range t.conns {
		if from == id {
			c.Close() // its incoming stream: it redials and gets 410
		}
	}
	t.connsMu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Send queues messages for their peers and returns at once. A message for
// an unknown peer, or for a peer whose queue is full, is dropped (raft is
// told the peer is unreachable; a dropped MsgSnap is reported failed).
// Messages are sent after Send returns: their contents must not change,
// which holds for raft's Ready messages.
func (t *Transport) Send(msgs []raftpb.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return
	}
	for i := range msgs {
		m := msgs[i]
		p, ok := t.peers[m.To]
		if !ok {
			t.log.Debug("peer: dropped message to unknown peer", "to", fmt.Sprintf("%x", m.To), "type", m.Type)
			continue
		}
		if m.Type == raftpb.MsgSnap {
			p.sendSnapshot(m)
			continue
		}
		p.enqueue(m)
	}
}

// Stop closes every connection and waits for the transport's goroutines.
// Messages sent afterwards are dropped.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.stop()
	}
	t.connsMu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.connsMu.Unlock()
	t.wg.Wait()
}

// PeerStats is what the transport measured about one peer.
type PeerStats struct {
	// Success counts messages written to the peer's stream (and
	// snapshots sent), Fail messages dropped (queue full, peer down, write
	// failed) and snapshots that failed.
	Success, Fail uint64
	// Latency is the round trip of the heartbeats this member sent as
	// leader to the peer (seconds): current, average, standard deviation,
	// minimum and maximum over all samples. Zero without samples.
	Latency LatencyStats
	Active  bool // a stream to the peer is connected
}

// Stats returns per-peer statistics.
func (t *Transport) Stats() map[uint64]PeerStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[uint64]PeerStats, len(t.peers))
	for id, p := range t.peers {
		out[id] = p.stats()
	}
	return out
}

// Handler serves the peer endpoints StreamPath and SnapshotPath.
func (t *Transport) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(StreamPath, t.serveStream)
	mux.HandleFunc(SnapshotPath, t.serveSnapshot)
	return mux
}

// checkHeaders validates an incoming peer request; it answers and returns
// false when the request must be refused.
func (t *Transport) checkHeaders(w http.ResponseWriter, r *http.Request) (from uint64, rf Raft, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return 0, nil, false
	}
	w.Header().Set(hdrClusterID, strconv.FormatUint(t.cfg.ClusterID, 16))
	cid, err := strconv.ParseUint(r.Header.Get(hdrClusterID), 16, 64)
	if err != nil || cid != t.cfg.ClusterID {
		t.log.Warn("peer: refused a connection from another cluster", "remote", r.RemoteAddr,
			"remote_cluster", r.Header.Get(hdrClusterID), "local_cluster", fmt.Sprintf("%x", t.cfg.ClusterID))
		http.Error(w, "cluster ID mismatch", http.StatusPreconditionFailed)
		return 0, nil, false
	}
	if to, err := strconv.ParseUint(r.Header.Get(hdrTo), 16, 64); err != nil || to != t.cfg.ID {
		http.Error(w, fmt.Sprintf("member ID mismatch: this is member %x", t.cfg.ID), http.StatusPreconditionFailed)
		return 0, nil, false
	}
	from, err = strconv.ParseUint(r.Header.Get(hdrFrom), 16, 64)
	if err != nil || from == 0 {
		http.Error(w, "missing or invalid "+hdrFrom, http.StatusBadRequest)
		return 0, nil, false
	}
	t.mu.RLock()
	gone := t.removed[from]
	t.mu.RUnlock()
	if gone {
		http.Error(w, ErrMemberRemoved.Error(), http.StatusGone)
		return 0, nil, false
	}
	if rf = t.getRaft(); rf == nil {
		http.Error(w, "member is starting", http.StatusServiceUnavailable)
		return 0, nil, false
	}
	return from, rf, true
}

func (t *Transport) trackConn(c io.Closer, from uint64) bool {
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	select {
	case <-t.ctx.Done():
		return false
	default:
	}
	t.conns[c] = from
	return true
}

func (t *Transport) untrackConn(c io.Closer) {
	t.connsMu.Lock()
	delete(t.conns, c)
	t.connsMu.Unlock()
}

// ErrMemberRemoved is etcd's message for a member that was removed from
// its cluster: peers answer its requests with 410 Gone and this text.
var ErrMemberRemoved = errors.New("the member has been permanently removed from the cluster")

// removedByPeer handles a peer's 410 Gone: this member was removed.
func (t *Transport) removedByPeer(peer uint64) {
	t.removedOnce.Do(func() {
		t.log.Warn("peer: a peer says this member was removed from the cluster", "peer", fmt.Sprintf("%x", peer))
		if t.cfg.OnRemoved != nil {
			go t.cfg.OnRemoved()
		}
	})
}

// errStopped ends peer goroutines at Stop or RemovePeer.
var errStopped = errors.New("transport stopped")
