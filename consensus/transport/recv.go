package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// serveStream accepts a peer's message stream: after the checks it takes
// over the connection and steps every frame into raft until the peer
// closes it, a frame is malformed, the stream is silent for ReadTimeout,
// or the transport stops.
func (t *Transport) serveStream(w http.ResponseWriter, r *http.Request) {
	from, rf, ok := t.checkHeaders(w, r)
	if !ok {
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), upgradeProto) {
		http.Error(w, "expected Upgrade: "+upgradeProto, http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	if !t.trackConn(conn, from) {
		return
	}
	defer t.untrackConn(conn)
	conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + upgradeProto + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	conn.SetWriteDeadline(time.Time{})
	t.log.Debug("peer: accepted stream", "peer", fmt.Sprintf("%x", from))
	var p *peer
	t.mu.RLock()
	p = t.peers[from]
	t.mu.RUnlock()
	br := brw.Reader
	var hdr [4]byte
	var buf []byte
	for {
		conn.SetReadDeadline(time.Now().Add(t.cfg.ReadTimeout))
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.streamEnded(from, err)
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size == 0 {
			continue // keep-alive
		}
		if size > maxFrameBytes {
			t.log.Warn("peer: stream frame too large, closing", "peer", fmt.Sprintf("%x", from), "bytes", size)
			return
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			t.streamEnded(from, err)
			return
		}
		var m raftpb.Message // Unmarshal copies entry data out of buf
		if err := m.Unmarshal(buf); err != nil {
			t.log.Warn("peer: malformed message, closing stream", "peer", fmt.Sprintf("%x", from), "err", err)
			return
		}
		if m.From != from || m.To != t.cfg.ID || m.Type == raftpb.MsgSnap {
			t.log.Warn("peer: unexpected message on stream, closing it", "peer", fmt.Sprintf("%x", from),
				"type", m.Type, "from", fmt.Sprintf("%x", m.From), "to", fmt.Sprintf("%x", m.To))
			return
		}
		if m.Type == raftpb.MsgHeartbeatResp && p != nil {
			p.heartbeatResp()
		}
		if err := rf.Step(t.ctx, m); err != nil {
			t.log.Debug("peer: step", "peer", fmt.Sprintf("%x", from), "err", err)
			return
		}
	}
}

func (t *Transport) streamEnded(from uint64, err error) {
	select {
	case <-t.ctx.Done():
		return
	default:
	}
	t.log.Debug("peer: incoming stream ended", "peer", fmt.Sprintf("%x", from), "err", err)
}

// serveSnapshot receives a MsgSnap frame followed by its image, and steps
// the message with the image attached. It answers 204 once raft has the
// message (the member then saves and restores it), an error otherwise.
func (t *Transport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	from, rf, ok := t.checkHeaders(w, r)
	if !ok {
		return
	}
	start := time.Now()
	br := bufio.NewReaderSize(r.Body, 64<<10)
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		http.Error(w, "read snapshot message: "+err.Error(), http.StatusBadRequest)
		return
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size == 0 || size > maxFrameBytes {
		http.Error(w, "bad snapshot message length", http.StatusBadRequest)
		return
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(br, frame); err != nil {
		http.Error(w, "read snapshot message: "+err.Error(), http.StatusBadRequest)
		return
	}
	var m raftpb.Message
	if err := m.Unmarshal(frame); err != nil || m.Type != raftpb.MsgSnap || m.Snapshot == nil || m.From != from || m.To != t.cfg.ID {
		http.Error(w, "not a MsgSnap for this member", http.StatusBadRequest)
		return
	}
	var image bytes.Buffer
	if n, err := strconv.ParseInt(r.Header.Get(hdrSnapSize), 10, 64); err == nil && n >= 0 && n <= t.cfg.MaxSnapshotBytes {
		image.Grow(int(n))
	}
	n, err := image.ReadFrom(io.LimitReader(br, t.cfg.MaxSnapshotBytes+1))
	if err != nil {
		t.log.Warn("peer: receiving snapshot failed", "peer", fmt.Sprintf("%x", from), "index", m.Snapshot.Metadata.Index, "err", err)
		http.Error(w, "read snapshot image: "+err.Error(), http.StatusBadRequest)
		return
	}
	if n > t.cfg.MaxSnapshotBytes {
		http.Error(w, fmt.Sprintf("snapshot image larger than %d bytes", t.cfg.MaxSnapshotBytes), http.StatusRequestEntityTooLarge)
		return
	}
	m.Snapshot.Data = image.Bytes()
	if m.Snapshot.Data == nil {
		m.Snapshot.Data = []byte{}
	}
	if err := rf.Step(r.Context(), m); err != nil {
		http.Error(w, "step snapshot: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	t.log.Info("peer: received snapshot", "peer", fmt.Sprintf("%x", from), "index", m.Snapshot.Metadata.Index,
		"term", m.Snapshot.Metadata.Term, "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
	w.WriteHeader(http.StatusNoContent)
}
