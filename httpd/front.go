package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/internal/tlsutil"
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
//
// Over TLS (ServeTLS) the Front does the handshake itself; a connection
// that negotiated h2 by ALPN goes to net/http's HTTP/2 server whole, and an
// HTTP/1.1 one takes the lean path as above. Handlers on net/http's side
// see r.TLS either way.
type Front struct {
	api     *Server
	hs      *http.Server
	hs1     *http.Server // HTTP/1 only: see NewFront
	handoff *handoffListener
	// handoff1 feeds hs1.
	handoff1 *handoffListener
	served   chan error // the net/http server's Serve result

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*fastConn]struct{}
	shutting atomic.Bool

	fastServed atomic.Uint64 // requests the lean path answered (tests)
}

// NewFront serves what the lean path does not take with hs, whose Handler
// must route to api (it may wrap it, as a pprof mux does). NewFront wraps
// hs.Handler and hs.ConnContext so that requests on TLS connections the
// lean path handed over still carry r.TLS; for ServeTLS to serve h2, hs
// must enable HTTP/2 (hs.Protocols).
func NewFront(api *Server, hs *http.Server) *Front {
	connCtx, next := hs.ConnContext, hs.Handler
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connCtx != nil {
			ctx = connCtx(ctx, c)
		}
		if bc, ok := c.(*bufferedConn); ok {
			if tc, ok := bc.Conn.(*tls.Conn); ok {
				st := tc.ConnectionState()
				ctx = context.WithValue(ctx, tlsStateKey{}, &st)
			}
		}
		return ctx
	}
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		next.ServeHTTP(w, r)
	})
	// Connections handed over mid-stream, or over TLS, go to an HTTP/1-only
	// twin of hs: net/http alone would never take h2c prior knowledge
	// there (after a request, or on TLS), so neither may the Front.
	hs1 := &http.Server{
		Handler: hs.Handler, ReadTimeout: hs.ReadTimeout, ReadHeaderTimeout: hs.ReadHeaderTimeout,
		WriteTimeout: hs.WriteTimeout, IdleTimeout: hs.IdleTimeout, MaxHeaderBytes: hs.MaxHeaderBytes,
		ErrorLog: hs.ErrorLog, ConnContext: hs.ConnContext, ConnState: hs.ConnState, BaseContext: hs.BaseContext,
		Protocols: new(http.Protocols),
	}
	hs1.Protocols.SetHTTP1(true)
	f := &Front{
		api: api, hs: hs, hs1: hs1,
		handoff:  newHandoffListener(),
		handoff1: newHandoffListener(),
		served:   make(chan error, 2),
		lns:      make(map[net.Listener]struct{}),
		conns:    make(map[*fastConn]struct{}),
	}
	go func() { f.served <- hs.Serve(f.handoff) }()
	go func() { f.served <- hs1.Serve(f.handoff1) }()
	return f
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

type tlsStateKey struct{}

// Serve accepts connections on ln until Shutdown or an accept error; it
// returns http.ErrServerClosed after Shutdown, as http.Server.Serve does.
func (f *Front) Serve(ln net.Listener) error { return f.serve(ln, nil) }

// ServeTLS is Serve for a listener of raw TCP connections that speak
// TLS with cfg (its NextProtos default to h2 and http/1.1). Each
// connection's handshake runs on its own goroutine within the server's
// ReadHeaderTimeout (if set); a failed handshake closes the connection and
// is logged, at Warn when it says something about configuration (a
// refused client certificate and why, plain HTTP sent to the TLS port),
// at Debug otherwise.
func (f *Front) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	if len(cfg.NextProtos) == 0 {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	return f.serve(ln, cfg)
}

func (f *Front) serve(ln net.Listener, tlsCfg *tls.Config) error {
	f.mu.Lock()
	if f.shutting.Load() {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	f.lns[ln] = struct{}{}
	f.mu.Unlock()
	f.handoff.setAddr(ln.Addr())
	f.handoff1.setAddr(ln.Addr())
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
		if tlsCfg != nil {
			go fc.serveTLS(tlsCfg)
		} else {
			go fc.serve()
		}
	}
}

// serveTLS completes the handshake, then serves HTTP/1.1 on the lean path
// or hands an h2 connection to net/http, which sees a *tls.Conn and runs
// its HTTP/2 server on it.
func (fc *fastConn) serveTLS(cfg *tls.Config) {
	tc, err := tlsutil.Handshake(fc.c, cfg, fc.f.hs.ReadHeaderTimeout)
	if err != nil {
		msg, important := tlsutil.Describe(err, false)
		level := slog.LevelDebug
		if important {
			level = slog.LevelWarn
		}
		fc.f.api.log.Log(context.Background(), level, msg, "remote", fc.c.RemoteAddr().String())
		fc.f.track(fc, false)
		fc.release(true)
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		fc.f.track(fc, false)
		fc.release(false)
		fc.br.Reset(nil)
		readerPool.Put(fc.br)
		fc.f.handoff.hand(tc)
		return
	}
	fc.c, fc.cr.c, fc.isTLS = tc, tc, true
	fc.br.Reset(&fc.cr)
	fc.bw.Reset(tc)
	fc.serve()
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
	go func() {
		h1 := make(chan error, 1)
		go func() { h1 <- f.hs1.Shutdown(ctx) }()
		herr <- errors.Join(f.hs.Shutdown(ctx), <-h1)
	}()
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
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
