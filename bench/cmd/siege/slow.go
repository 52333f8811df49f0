package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Slow-client modes.
const (
	modeHead   = "head"   // a request head, a few bytes at a time, never finished
	modeBody   = "body"   // a whole head announcing a body that then trickles
	modeSilent = "silent" // connect and send nothing
)

var slowModes = []string{modeHead, modeBody, modeSilent}

// slowHeadPrefix is what a head-mode client trickles first; afterwards it
// repeats slowHeadFill forever (never the blank line that ends a head).
const (
	slowHeadPrefix = "GET /v2/keys/siege/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	slowHeadFill   = "X-Slow: a\r\n"
	slowBodyLen    = 8192 // > the lean path's buffer: the body is read as it comes
)

func slowBodyHead() string {
	return "PUT /v2/keys/siege/slowbody HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
		strconv.Itoa(slowBodyLen) + "\r\n\r\n"
}

// slowStream yields the bytes a slow client of mode sends: first is sent at
// once on connect, then next(n) gives the following n bytes each tick (nil
// for silent).
type slowStream struct {
	mode  string
	first string
	off   int // bytes of the endless part already produced
}

func newSlowStream(mode string) *slowStream {
	s := &slowStream{mode: mode}
	if mode == modeBody {
		s.first = slowBodyHead()
	}
	return s
}

func (s *slowStream) next(n int) []byte {
	switch s.mode {
	case modeHead:
		b := make([]byte, 0, n)
		for len(b) < n {
			if s.off < len(slowHeadPrefix) {
				b = append(b, slowHeadPrefix[s.off])
			} else {
				f := (s.off - len(slowHeadPrefix)) % len(slowHeadFill)
				b = append(b, slowHeadFill[f])
			}
			s.off++
		}
		return b
	case modeBody:
		b := make([]byte, 0, n)
		for len(b) < n {
			if s.off < len("value=") {
				b = append(b, "value="[s.off])
			} else {
				b = append(b, 'v')
			}
			s.off++
		}
		return b
	}
	return nil
}

// modeFor spreads modes over clients: "mix" cycles through all of them.
func modeFor(mode string, i int) string {
	if mode == "mix" {
		return slowModes[i%len(slowModes)]
	}
	return mode
}

// slowStats counts what the slow clients saw.
type slowStats struct {
	open      atomic.Int64 // connections open now
	conns     atomic.Int64 // connections made
	cuts      atomic.Int64 // connections the server ended
	answered  atomic.Int64 // of which with a response (e.g. 400/408/413)
	dialErrs  atomic.Int64
	bytesSent atomic.Int64

	mu     sync.Mutex
	held   map[string][]time.Duration // by mode: how long each cut connection lasted
	status map[string]int64
}

func (s *slowStats) cut(mode string, held time.Duration, status string) {
	s.cuts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string][]time.Duration{}
	}
	if len(s.held[mode]) < 1<<20 {
		s.held[mode] = append(s.held[mode], held)
	}
	if status != "" {
		s.answered.Add(1)
		if s.status == nil {
			s.status = map[string]int64{}
		}
		s.status[status]++
	}
}

// statusOf returns "HTTP/1.1 400" from a response's first bytes, or "".
func statusOf(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	if !strings.HasPrefix(line, "HTTP/") {
		return ""
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[0] + " " + f[1]
}

// runSlow keeps one slow client of mode connected to addr until ctx ends,
// reconnecting whenever the server cuts it. Every interval it sends chunk
// bytes (head, body modes) and checks whether the server has closed.
func runSlow(ctx context.Context, addr, mode string, interval time.Duration, chunk int, st *slowStats, start time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(start):
	}
	for ctx.Err() == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			st.dialErrs.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
			continue
		}
		st.conns.Add(1)
		st.open.Add(1)
		held, status, cut := slowOnce(ctx, c, mode, interval, chunk, st)
		c.Close()
		st.open.Add(-1)
		if cut {
			st.cut(mode, held, status)
		}
	}
}

// slowOnce runs one connection; cut reports that the server ended it
// (rather than ctx).
func slowOnce(ctx context.Context, c net.Conn, mode string, interval time.Duration, chunk int, st *slowStats) (held time.Duration, status string, cut bool) {
	t0 := time.Now()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	s := newSlowStream(mode)
	if s.first != "" {
		if _, err := io.WriteString(c, s.first); err != nil {
			return time.Since(t0), "", ctx.Err() == nil
		}
		st.bytesSent.Add(int64(len(s.first)))
	}
	br := bufio.NewReaderSize(c, 64)
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(interval))
		n, err := br.Read(buf)
		if ctx.Err() != nil {
			return time.Since(t0), "", false
		}
		if n > 0 || err != nil && !isTimeout(err) {
			// The server answered or closed: the connection is over for us.
			return time.Since(t0), statusOf(buf[:n]), true
		}
		if b := s.next(chunk); len(b) > 0 {
			c.SetWriteDeadline(time.Now().Add(interval))
			if _, err := c.Write(b); err != nil {
				return time.Since(t0), "", ctx.Err() == nil
			}
			st.bytesSent.Add(int64(len(b)))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
