package httpd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/engine"
)

// Connection states: a Shutdown closes idle connections at once and lets
// active ones finish their request.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

const fastBufSize = 4 << 10 // as net/http: a head must fit to take the lean path

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastBufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fastBufSize) }}
)

// fastConn is one client connection on the lean path.
type fastConn struct {
	f     *Front
	c     net.Conn
	cr    connReader // br's source: c, plus what a close watch read
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32
	// leanServed: a request was answered here; isTLS: c is a *tls.Conn.
	// Either sends a handover to the HTTP/1-only server.
	leanServed, isTLS bool
	// replay, when set, is what net/http must read when it takes over:
	// bytes the lean path consumed, then the rest.
	replay io.Reader

	req  fastRequest
	resp fastResponse
	hdr  []byte // response head scratch
}

func newFastConn(f *Front, c net.Conn) *fastConn {
	fc := &fastConn{f: f, c: c}
	fc.cr.c = c
	fc.br = readerPool.Get().(*bufio.Reader)
	fc.br.Reset(&fc.cr)
	fc.bw = writerPool.Get().(*bufio.Writer)
	fc.bw.Reset(c)
	fc.resp.h = make(http.Header, 8)
	return fc
}

func (fc *fastConn) closeIfIdle() {
	if fc.state.CompareAndSwap(connIdle, connClosed) {
		fc.c.Close()
	}
}

// release returns the buffers to their pools; the reader only when the
// connection was not handed over (net/http reads on from it).
func (fc *fastConn) release(closeConn bool) {
	if closeConn {
		fc.c.Close()
		fc.br.Reset(nil)
		readerPool.Put(fc.br)
	}
	fc.bw.Reset(nil)
	writerPool.Put(fc.bw)
}

func (fc *fastConn) serve() {
	handed := false
	defer func() {
		fc.f.track(fc, false)
		fc.release(!handed)
	}()
	idle, headerTimeout := fc.f.hs.IdleTimeout, fc.f.hs.ReadHeaderTimeout
	if idle == 0 {
		idle = fc.f.hs.ReadTimeout
	}
	// The first request's head must be complete within headerTimeout of
	// the connection's start, as net/http has it: a client that connects
	// and stays silent does not get the (longer) idle timeout.
	first := true
	for {
		if fc.br.Buffered() == 0 {
			if err := fc.bw.Flush(); err != nil {
				return
			}
			if first && headerTimeout > 0 {
				fc.c.SetReadDeadline(time.Now().Add(headerTimeout))
			} else if idle > 0 {
				fc.c.SetReadDeadline(time.Now().Add(idle))
			}
			if _, err := fc.br.Peek(1); err != nil {
				return
			}
		}
		if !fc.state.CompareAndSwap(connIdle, connActive) {
			return // closed by Shutdown
		}
		if headerTimeout > 0 {
			if !first {
				fc.c.SetReadDeadline(time.Now().Add(headerTimeout))
			}
		} else if idle > 0 {
			fc.c.SetReadDeadline(time.Time{})
		}
		first = false
		ok, err := fc.serveOne()
		if err != nil {
			fc.bw.Flush() // answers to pipelined requests already served
			return
		}
		if !ok {
			// net/http takes the connection, unread bytes and all.
			if fc.bw.Flush() != nil {
				return
			}
			if headerTimeout > 0 || idle > 0 {
				fc.c.SetReadDeadline(time.Time{})
			}
			handed = true
			to := fc.f.handoff
			if fc.leanServed || fc.isTLS {
				to = fc.f.handoff1
			}
			var r io.Reader = fc.br
			if fc.replay != nil {
				r = fc.replay
			}
			to.hand(&bufferedConn{Conn: fc.c, r: r})
			return
		}
		fc.leanServed = true
		if fc.req.close || fc.f.shutting.Load() {
			fc.bw.Flush()
			return
		}
		if !fc.state.CompareAndSwap(connActive, connIdle) {
			return
		}
	}
}

// serveOne answers the next request if the lean path can; ok is false,
// with nothing consumed, when net/http must.
func (fc *fastConn) serveOne() (ok bool, err error) {
	head, err := fc.peekHead()
	if err != nil || head == nil {
		return false, err
	}
	start := time.Now() // request metrics (metrics.go)
	r := &fc.req
	if !r.parse(head, fc.f.api) {
		return false, nil
	}
	// The head's bytes are reused by the next read: keep what outlives it.
	target := string(r.target)
	_, rawQuery, _ := strings.Cut(target, "?")
	if r.method == http.MethodGet {
		// Watches need net/http's connection handling (close
		// notification, streaming): hand the connection over.
		if !r.form.parse("", rawQuery) {
			return false, nil
		}
		if _, wait := r.form.get("wait"); wait {
			return false, nil
		}
	}
	var body string
	if n := len(head) + r.contentLength; r.contentLength > 0 && n <= fc.br.Size() {
		// A body cut short by EOF is net/http's to answer: check before
		// consuming anything.
		if _, err := fc.br.Peek(n); err != nil {
			if isTimeout(err) {
				return false, err
			}
			return false, nil
		}
	}
	var headCopy []byte
	if len(head)+r.contentLength > fc.br.Size() {
		headCopy = append([]byte(nil), head...)
	}
	if _, err := fc.br.Discard(len(head)); err != nil {
		return false, err
	}
	if r.contentLength > 0 {
		b := make([]byte, r.contentLength)
		if n, err := io.ReadFull(fc.br, b); err != nil {
			if isTimeout(err) {
				return false, err
			}
			// Cut short: hand net/http the bytes read so far first.
			fc.replay = io.MultiReader(bytes.NewReader(headCopy), bytes.NewReader(b[:n]), fc.br)
			return false, nil
		}
		body = string(b)
	}
	fc.serveKeys(target, body)
	fc.f.api.metrics.fast(r.method, fc.resp.code(), start)
	fc.f.fastServed.Add(1)
	return true, fc.writeResponse()
}

// peekHead returns the request head (request line to blank line) without
// consuming it, or nil when net/http must read it: it does not fit the
// buffer, a line ends in a bare LF (net/http accepts those; the lean
// parser knows only CRLF), or it starts with an empty line.
func (fc *fastConn) peekHead() ([]byte, error) {
	line, next := 0, 0 // start of the current line; where to look for LF
	for {
		buf, _ := fc.br.Peek(fc.br.Buffered())
		for {
			i := bytes.IndexByte(buf[next:], '\n')
			if i < 0 {
				next = len(buf)
				break
			}
			i += next
			if i == 0 || buf[i-1] != '\r' || i-1 == 0 {
				return nil, nil
			}
			if i-1 == line {
				return buf[:i+1], nil
			}
			line, next = i+1, i+1
		}
		if len(buf) >= fc.br.Size() {
			return nil, nil
		}
		if _, err := fc.br.Peek(len(buf) + 1); err != nil {
			// A partial head, then EOF or an error: net/http decides what
			// that gets (a 400), except that between requests it closes
			// silently when fewer than 4 bytes came (its Peek(4)).
			if len(buf) > 0 && !isTimeout(err) && (!fc.leanServed || len(buf) >= 4) {
				return nil, nil
			}
			return nil, err
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// serveKeys runs the same parsing and handlers as handleKeys.
func (fc *fastConn) serveKeys(target, body string) {
	s, w := fc.f.api, &fc.resp
	w.reset()
	s.cors.addHeaders(w.h, fc.req.origin) // as corsHandler on net/http's path
	w.h["X-Etcd-Cluster-Id"] = s.clusterIDHeader
	p, rawQuery, _ := strings.Cut(target, "?")
	if strings.IndexByte(p, '%') >= 0 {
		p, _ = url.PathUnescape(p) // validated by parse
	}
	f := &fc.req.form
	if fc.req.method != http.MethodGet && !f.parse(body, rawQuery) {
		// Something only url.ParseQuery gets exactly right: let it.
		pf, err := url.ParseQuery(body)
		q, qerr := url.ParseQuery(rawQuery)
		if err == nil {
			err = qerr
		}
		if err != nil {
			writeParseError(w, requestError(engine.EcodeInvalidForm, err.Error()))
			return
		}
		for k, v := range q {
			pf[k] = append(pf[k], v...)
		}
		f.values = pf
	}
	kr, verr := s.parseKeyParams(fc.req.method, p, f)
	if verr != nil {
		writeParseError(w, verr)
		return
	}
	ctx := context.Background()
	if kr.method != http.MethodGet || kr.quorum {
		// A write waits for its commit and a quorum read for the leader:
		// end the wait if the client hangs up, as net/http's path does.
		var stop func()
		ctx, stop = fc.watchClose()
		defer stop()
	}
	if !s.allowKeys(ctx, w, fc.req.authz, p[len(keysPrefix):], kr) {
		return
	}
	s.serveKey(ctx, w, kr)
}

// watchClose returns a context that ends when the client closes or resets
// the connection, found by a read in the background as net/http's
// connReader does; a byte that read takes (a pipelined request) is kept
// for br. stop must be called before the connection is read again.
func (fc *fastConn) watchClose() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cr := &fc.cr
	cr.c.SetReadDeadline(time.Time{}) // the head's deadline is not the wait's: net/http clears it too
	go func() {
		defer close(done)
		n, err := cr.c.Read(cr.b[:])
		if n == 1 {
			cr.hasByte = true
		} else if err != nil && !isTimeout(err) {
			cancel()
		}
	}()
	return ctx, func() {
		cr.c.SetReadDeadline(aLongTimeAgo) // unblocks the read
		<-done
		cr.c.SetReadDeadline(time.Time{})
		cancel()
	}
}

// aLongTimeAgo is a deadline that makes a pending read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// connReader reads the connection, first the byte a close watch took.
type connReader struct {
	c       net.Conn
	hasByte bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte && len(p) > 0 {
		p[0], r.hasByte = r.b[0], false
		return 1, nil
	}
	return r.c.Read(p)
}

// writeResponse writes the response head as net/http would for the same
// handler output (headers sorted, then Date and Content-Length), and the
// body; it is flushed when no further request is already buffered.
func (fc *fastConn) writeResponse() error {
	w := &fc.resp
	if !w.wrote {
		w.status = http.StatusOK
	}
	h := w.h
	if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.body)}
	}
	b := fc.hdr[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, "\r\n"...)
	keys := w.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	w.keys = keys
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(w.body)), 10)
	b = append(b, "\r\n"...)
	if fc.req.close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	fc.hdr = b
	if _, err := fc.bw.Write(b); err != nil {
		return err
	}
	if _, err := fc.bw.Write(w.body); err != nil {
		return err
	}
	if cap(w.body) > 64<<10 {
		w.body = nil // do not pin a huge listing
	}
	if fc.br.Buffered() == 0 {
		return fc.bw.Flush()
	}
	return nil
}

// fastResponse collects a handler's response for writeResponse.
type fastResponse struct {
	h      http.Header
	status int
	wrote  bool
	body   []byte
	keys   []string
}

func (w *fastResponse) reset() {
	clear(w.h)
	w.status, w.wrote, w.body = 0, false, w.body[:0]
}

func (w *fastResponse) Header() http.Header { return w.h }

func (w *fastResponse) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
}

func (w *fastResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}
