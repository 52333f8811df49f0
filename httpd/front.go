package httpd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Front serves a client listener. Plain HTTP/1.1 reads and writes on
// /v2/keys, nearly all of a v2 cluster's traffic, are parsed and answered
// on a lean path that does a fraction of net/http's per-request work.
// Every other connection (HTTP/2 cleartext, HTTP/1.0) and every other
// request (watches, other endpoints, Expect, chunked bodies, heads larger
// than one buffer, anything unusual) is handed whole, bytes already read
// included, to the net/http server, which keeps that connection from then
// on. Both paths parse with the same code and answer through the same
// handlers, so a client sees the same bytes from either (tested).
type Front struct {
	api     *Server
	hs      *http.Server
	handoff *handoffListener
	served  chan error // the net/http server's Serve result

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*fastConn]struct{}
	shutting atomic.Bool

	fastServed atomic.Uint64 // requests the lean path answered (tests)
}

// NewFront serves what the lean path does not take with hs, whose Handler
// must route to api (it may wrap it, as a pprof mux does).
func NewFront(api *Server, hs *http.Server) *Front {
	f := &Front{
		api: api, hs: hs,
		handoff: &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})},
		served:  make(chan error, 1),
		lns:     make(map[net.Listener]struct{}),
		conns:   make(map[*fastConn]struct{}),
	}
	go func() { f.served <- hs.Serve(f.handoff) }()
	return f
}

// Serve accepts connections on ln until Shutdown or an accept error; it
// returns http.ErrServerClosed after Shutdown, as http.Server.Serve does.
func (f *Front) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.shutting.Load() {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	f.lns[ln] = struct{}{}
	f.mu.Unlock()
	f.handoff.setAddr(ln.Addr())
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.shutting.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // EMFILE and friends: wait, as net/http does
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		fc := newFastConn(f, c)
		if !f.track(fc, true) {
			c.Close()
			return http.ErrServerClosed
		}
		go fc.serve()
	}
}

func (f *Front) track(fc *fastConn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		if f.shutting.Load() {
			return false
		}
		f.conns[fc] = struct{}{}
	} else {
		delete(f.conns, fc)
	}
	return true
}

// Shutdown stops accepting, closes idle connections, and waits (until ctx
// ends, then closes them) for requests in progress on either path.
func (f *Front) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.shutting.Store(true)
	for ln := range f.lns {
		ln.Close()
	}
	f.mu.Unlock()
	herr := make(chan error, 1)
	go func() { herr <- f.hs.Shutdown(ctx) }()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		f.mu.Lock()
		n := len(f.conns)
		for fc := range f.conns {
			fc.closeIfIdle()
		}
		f.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			for fc := range f.conns {
				fc.c.Close()
			}
			f.mu.Unlock()
			return errors.Join(ctx.Err(), <-herr)
		case <-t.C:
		}
	}
	return <-herr
}

// handoffListener feeds connections the lean path gave up to net/http.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr atomic.Value // net.Addr
}

func (l *handoffListener) setAddr(a net.Addr) { l.addr.CompareAndSwap(nil, a) }

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr {
	if a, ok := l.addr.Load().(net.Addr); ok {
		return a
	}
	return &net.TCPAddr{}
}

func (l *handoffListener) hand(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// bufferedConn replays what the lean path read before net/http reads on.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
