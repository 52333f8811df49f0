package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// peer sends to one remote member: a bounded queue drained by one stream
// writer goroutine, and at most one snapshot sender at a time.
type peer struct {
	t  *Transport
	id uint64

	mu   sync.Mutex
	urls []string
	conn net.Conn // current stream, for reconnect

	q       chan raftpb.Message
	stopc   chan struct{}
	stopped sync.Once
	ctx     context.Context
	cancel  context.CancelFunc

	snapping atomic.Bool
	active   atomic.Bool
	success  atomic.Uint64
	fail     atomic.Uint64
	lastErr  string // logged once per distinct error; owned by run
	everUp   bool   // a stream was connected once; owned by run

	// heartbeat round trips, for leader stats
	hbSent  atomic.Int64 // unix ns of the last MsgHeartbeat written
	latency latency
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		t: t, id: id, urls: append([]string(nil), urls...),
		q: make(chan raftpb.Message, t.cfg.QueueSize), stopc: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
}

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	p.urls = append([]string(nil), urls...)
	p.mu.Unlock()
}

func (p *peer) getURLs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

// reconnect closes the current stream; the writer redials.
func (p *peer) reconnect() {
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

func (p *peer) stop() {
	p.stopped.Do(func() {
		close(p.stopc)
		p.cancel()
		p.reconnect()
	})
}

func (p *peer) enqueue(m raftpb.Message) {
	select {
	case p.q <- m:
	default:
		p.fail.Add(1)
		p.t.reportUnreachable(m.To)
	}
}

// run keeps a stream to the peer open until stopped.
func (p *peer) run() {
	backoff := minBackoff
	for {
		conn, br, err := p.dial()
		if err != nil {
			p.logDown(err)
			// Drop what queued up meanwhile: raft resends what matters,
			// and stale heartbeats or votes are worse than none.
			if n := p.dropQueued(); n > 0 {
				p.t.reportUnreachable(p.id)
			}
			select {
			case <-p.stopc:
				return
			case <-time.After(backoff + rand.N(backoff/2)):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if p.lastErr != "" || !p.everUp {
			p.t.log.Info("peer: stream connected", "peer", fmt.Sprintf("%x", p.id))
			p.lastErr = ""
		}
		p.everUp = true
		err = p.stream(conn, br)
		if err == errStopped {
			return
		}
		p.logDown(err)
	}
}

// logDown reports a failed stream once per distinct error: at Warn once
// the peer was reached, at Info while it has never been (it is starting).
func (p *peer) logDown(err error) {
	select {
	case <-p.stopc:
		return
	default:
	}
	if msg := err.Error(); msg != p.lastErr {
		p.lastErr = msg
		if p.everUp {
			p.t.log.Warn("peer: stream to peer is down", "peer", fmt.Sprintf("%x", p.id), "err", err)
		} else {
			p.t.log.Info("peer: waiting for peer", "peer", fmt.Sprintf("%x", p.id), "err", err)
		}
	}
}

func (p *peer) dropQueued() int {
	n := 0
	for {
		select {
		case <-p.q:
			n++
		default:
			p.fail.Add(uint64(n))
			return n
		}
	}
}

// dial opens a stream to the first of the peer's URLs that accepts one.
func (p *peer) dial() (net.Conn, *bufio.Reader, error) {
	var errs []error
	for _, u := range p.getURLs() {
		conn, br, err := p.dialURL(u)
		if err == nil {
			return conn, br, nil
		}
		errs = append(errs, err)
		select {
		case <-p.stopc:
			return nil, nil, errStopped
		default:
		}
	}
	if len(errs) == 0 {
		return nil, nil, fmt.Errorf("peer %x has no URLs", p.id)
	}
	return nil, nil, errs[len(errs)-1]
}

func (p *peer) dialURL(rawURL string) (net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("peer URL %q: %w", rawURL, err)
	}
	cfg := &p.t.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(p.ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	conn.SetDeadline(time.Now().Add(cfg.DialTimeout + cfg.WriteTimeout))
	if u.Scheme == "https" {
		tc := tls.Client(conn, clientTLS(cfg.TLS, u.Hostname()))
		if err := tc.HandshakeContext(p.ctx); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("TLS handshake with %s: %w", rawURL, err)
		}
		conn = tc
	}
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\nContent-Length: 0\r\n%s: %x\r\n%s: %x\r\n%s: %x\r\n\r\n",
		StreamPath, u.Host, upgradeProto, hdrFrom, cfg.ID, hdrTo, p.id, hdrClusterID, cfg.ClusterID)
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("open stream to %s: %w", rawURL, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("open stream to %s: %w", rawURL, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		if resp.StatusCode == http.StatusGone {
			p.t.removedByPeer(p.id)
		}
		return nil, nil, fmt.Errorf("open stream to %s: %s: %s", rawURL, resp.Status, bytes.TrimSpace(body))
	}
	conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// stream writes queued messages to conn in batches until a write fails,
// the peer closes the connection or the peer is stopped.
func (p *peer) stream(conn net.Conn, br *bufio.Reader) error {
	p.attach(conn)
	defer p.detach(conn)
	closed := watchClose(conn, br)
	fw := frameWriter{bw: bufio.NewWriterSize(conn, 64<<10)}
	keepAlive := time.NewTicker(keepAliveInterval)
	defer keepAlive.Stop()
	wrote := false
	cfg := &p.t.cfg
	batch := make([]raftpb.Message, maxBatch)
	for {
		select {
		case <-p.stopc:
			return errStopped
		case <-closed:
			return fmt.Errorf("peer %x closed the stream", p.id)
		case <-keepAlive.C:
			if wrote {
				wrote = false
				continue
			}
			conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if _, err := conn.Write([]byte{0, 0, 0, 0}); err != nil {
				return fmt.Errorf("write keep-alive: %w", err)
			}
			continue
		case batch[0] = <-p.q:
		}
		n := p.fillBatch(batch)
		heartbeat, err := fw.write(batch[:n])
		if err != nil {
			return err
		}
		conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if err := fw.bw.Flush(); err != nil {
			p.fail.Add(uint64(n))
			p.t.reportUnreachable(p.id)
			return fmt.Errorf("write %d messages: %w", n, err)
		}
		if heartbeat {
			p.hbSent.CompareAndSwap(0, time.Now().UnixNano())
		}
		p.success.Add(uint64(n))
		wrote = true
		clear(batch[:n]) // do not keep entries alive
	}
}

// attach makes conn the peer's current stream (reconnect closes it).
func (p *peer) attach(conn net.Conn) {
	p.mu.Lock()
	p.conn = conn
	p.mu.Unlock()
	p.active.Store(true)
}

// detach undoes attach and closes conn.
func (p *peer) detach(conn net.Conn) {
	p.active.Store(false)
	p.mu.Lock()
	p.conn = nil
	p.mu.Unlock()
	conn.Close()
}

// watchClose returns a channel closed when the stream's read side ends.
// The receiver never writes after the upgrade: a read returning means
// the connection is gone, which a writer alone notices only on its
// next write.
func watchClose(conn net.Conn, br *bufio.Reader) <-chan struct{} {
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, br)
		close(closed)
		conn.Close()
	}()
	return closed
}

// fillBatch adds to batch, whose first message is set, whatever else is
// queued, up to len(batch), without waiting; it returns the count.
func (p *peer) fillBatch(batch []raftpb.Message) int {
	n := 1
	for n < len(batch) {
		select {
		case m := <-p.q:
			batch[n] = m
			n++
		default:
			return n
		}
	}
	return n
}

// frameWriter buffers messages each prefixed by its 4-byte big-endian
// length, reusing one encoding buffer.
type frameWriter struct {
	bw  *bufio.Writer
	buf []byte
}

// write buffers msgs (the caller flushes) and reports whether one is a heartbeat.
func (w *frameWriter) write(msgs []raftpb.Message) (heartbeat bool, err error) {
	for i := range msgs {
		m := &msgs[i]
		size := m.Size()
		if cap(w.buf) < 4+size {
			w.buf = make([]byte, 4+size)
		}
		w.buf = w.buf[:4+size]
		binary.BigEndian.PutUint32(w.buf, uint32(size))
		if _, err := m.MarshalTo(w.buf[4:]); err != nil {
			return heartbeat, fmt.Errorf("marshal %s: %w", m.Type, err)
		}
		w.bw.Write(w.buf)
		heartbeat = heartbeat || m.Type == raftpb.MsgHeartbeat
	}
	return heartbeat, nil
}

// heartbeatResp records a heartbeat round trip when the peer answers one.
func (p *peer) heartbeatResp() {
	if sent := p.hbSent.Swap(0); sent != 0 {
		p.latency.add(time.Duration(time.Now().UnixNano() - sent))
	}
}

func (p *peer) stats() PeerStats {
	return PeerStats{Success: p.success.Load(), Fail: p.fail.Load(), Latency: p.latency.stats(), Active: p.active.Load()}
}

// sendSnapshot sends m with its image on a connection of its own and
// reports the outcome to raft. Raft sends one snapshot per peer at a time;
// a second one while the first is in flight is reported failed.
func (p *peer) sendSnapshot(m raftpb.Message) {
	if !p.snapping.CompareAndSwap(false, true) {
		p.fail.Add(1)
		go p.t.reportSnapshot(m.To, raft.SnapshotFailure)
		return
	}
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		defer p.snapping.Store(false)
		start := time.Now()
		n, err := p.postSnapshot(m)
		if err != nil {
			p.fail.Add(1)
			p.t.log.Warn("peer: sending snapshot failed", "peer", fmt.Sprintf("%x", p.id), "index", m.Snapshot.Metadata.Index, "err", err)
			p.t.reportSnapshot(m.To, raft.SnapshotFailure)
			return
		}
		p.success.Add(1)
		p.t.log.Info("peer: sent snapshot", "peer", fmt.Sprintf("%x", p.id), "index", m.Snapshot.Metadata.Index,
			"bytes", n, "duration", time.Since(start).Round(time.Millisecond))
		p.t.reportSnapshot(m.To, raft.SnapshotFinish)
	}()
}

// postSnapshot streams the frame of m, then the image, as one POST body.
func (p *peer) postSnapshot(m raftpb.Message) (int64, error) {
	if m.Snapshot == nil {
		return 0, fmt.Errorf("MsgSnap without snapshot metadata")
	}
	src := p.t.cfg.Snapshots
	if src == nil {
		return 0, fmt.Errorf("no snapshot source configured")
	}
	snap, err := src(m.Snapshot.Metadata)
	if err != nil {
		return 0, fmt.Errorf("open snapshot image: %w", err)
	}
	defer snap.Image.Close()
	m.Snapshot = &raftpb.Snapshot{Metadata: snap.Metadata}
	frame := make([]byte, 4+m.Size())
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := m.MarshalTo(frame[4:]); err != nil {
		return 0, fmt.Errorf("marshal MsgSnap: %w", err)
	}
	var sent int64 // image bytes read by the attempts so far
	var lastErr error
	for _, u := range p.getURLs() {
		if sent > 0 {
			break // the image was partly consumed: cannot retry here
		}
		att := &attempt{r: snap.Image}
		body := io.MultiReader(bytes.NewReader(frame), att)
		req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, u+SnapshotPath, body)
		if err != nil {
			return 0, err
		}
		if snap.Size >= 0 {
			req.ContentLength = int64(len(frame)) + snap.Size
			req.Header.Set(hdrSnapSize, strconv.FormatInt(snap.Size, 10))
		}
		req.Header.Set(hdrFrom, strconv.FormatUint(p.t.cfg.ID, 16))
		req.Header.Set(hdrTo, strconv.FormatUint(p.id, 16))
		req.Header.Set(hdrClusterID, strconv.FormatUint(p.t.cfg.ClusterID, 16))
		resp, err := p.t.snapClient.Do(req)
		sent += att.end()
		if err != nil {
			lastErr = fmt.Errorf("post snapshot to %s: %w", u, err)
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return sent, fmt.Errorf("post snapshot to %s: %s: %s", u, resp.Status, bytes.TrimSpace(msg))
		}
		return sent, nil
	}
	return sent, lastErr
}

// newSnapshotClient returns the client that posts snapshots: no overall
// timeout (images can be large), but a peer must accept the connection
// and answer once the body is sent. https peers are dialled with tlsCfg.
func newSnapshotClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: defaultDialTimeout}).DialContext,
		TLSClientConfig:       clientTLS(tlsCfg, ""),
		TLSHandshakeTimeout:   defaultDialTimeout + defaultWriteTimeout,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
	}}
}

// clientTLS returns a copy of cfg (an empty config if nil) that requires
// TLS 1.2 or newer and, when serverName is set, verifies the peer's
// certificate for that name.
func clientTLS(cfg *tls.Config, serverName string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	c := cfg.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if serverName != "" && c.ServerName == "" {
		c.ServerName = serverName
	}
	return c
}

// attempt is one POST's view of the snapshot image. net/http may go on
// reading a request body after Do returns an error, so end cuts the attempt
// off before the image is counted or offered to another URL.
type attempt struct {
	mu    sync.Mutex
	r     io.Reader
	n     int64
	ended bool
}

var errAttemptEnded = errors.New("snapshot post ended")

func (a *attempt) Read(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return 0, errAttemptEnded
	}
	n, err := a.r.Read(b)
	a.n += int64(n)
	return n, err
}

// end stops further reads and returns the bytes this attempt read.
func (a *attempt) end() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ended = true
	return a.n
}
