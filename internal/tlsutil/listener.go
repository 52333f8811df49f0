package tlsutil

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Listener wraps a TCP listener: Accept returns only connections whose
// TLS handshake succeeded (as *tls.Conn, so net/http sets r.TLS).
// Handshakes run concurrently, each within HandshakeTimeout, so one slow
// client never holds up the others. Failed handshakes are logged (see
// Describe) and their connections closed; plain HTTP gets a 400 first.
type Listener struct {
	net.Listener
	cfg     *tls.Config
	log     *slog.Logger
	peer    bool
	timeout time.Duration

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // the inner Accept error that ended the loop
	errMu sync.Mutex
}

// NewListener serves TLS with cfg on ln. peerSide selects the wording of
// log lines ("peer" or "client"). timeout 0 means 10 s.
func NewListener(ln net.Listener, cfg *tls.Config, log *slog.Logger, peerSide bool, timeout time.Duration) *Listener {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{Listener: ln, cfg: cfg, log: log, peer: peerSide, timeout: timeout,
		conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			l.errMu.Lock()
			l.err = err
			l.errMu.Unlock()
			l.Close()
			return
		}
		backoff = 0
		go l.handshake(c)
	}
}

func (l *Listener) handshake(c net.Conn) {
	tc, err := Handshake(c, l.cfg, l.timeout)
	if err != nil {
		msg, important := Describe(err, l.peer)
		level := slog.LevelDebug
		if important {
			level = slog.LevelWarn
		}
		l.log.Log(context.Background(), level, msg, "remote", c.RemoteAddr().String())
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// Accept returns the next connection that completed its handshake.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections in their handshake are closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}
