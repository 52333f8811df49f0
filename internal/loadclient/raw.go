package loadclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawConn is a minimal HTTP/1.1 keep-alive client: one connection, one
// goroutine, requests written from pre-built bytes and responses parsed
// just enough to find the status and the end of the body. net/http's
// client spends three goroutine hand-offs per request (caller, writeLoop,
// readLoop); on a small machine shared with the server under test that
// cost is taken from the server, so the raw client is the default.
type rawConn struct {
	addr    string
	host    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	req     []byte
	authz   string      // Authorization header value, "" for none
	tls     *tls.Config // non-nil for https targets
	// etcdIndex is the X-Etcd-Index of the last response (0 if absent).
	etcdIndex uint64
}

func newRawConn(target string, timeout time.Duration, tlsCfg *tls.Config) (*rawConn, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("raw client needs an http(s)://host:port target, got %q", target)
	}
	r := &rawConn{addr: u.Host, host: u.Host, timeout: timeout}
	if u.Scheme == "https" {
		r.tls = tlsCfg.Clone()
		if r.tls.ServerName == "" {
			r.tls.ServerName = u.Hostname()
		}
		r.tls.NextProtos = []string{"http/1.1"}
	}
	return r, nil
}

func (r *rawConn) close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// do sends one request and reads the whole response, reconnecting once if
// a kept-alive connection turned out to be closed.
func (r *rawConn) do(ctx context.Context, method, path, body string) (int, error) {
	r.req = r.req[:0]
	r.req = append(r.req, method...)
	r.req = append(r.req, ' ')
	r.req = append(r.req, path...)
	r.req = append(r.req, " HTTP/1.1\r\nHost: "...)
	r.req = append(r.req, r.host...)
	if r.authz != "" {
		r.req = append(r.req, "\r\nAuthorization: "...)
		r.req = append(r.req, r.authz...)
	}
	if body != "" {
		r.req = append(r.req, "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
		r.req = strconv.AppendInt(r.req, int64(len(body)), 10)
	}
	r.req = append(r.req, "\r\n\r\n"...)
	r.req = append(r.req, body...)
	for attempt := 0; ; attempt++ {
		fresh := r.conn == nil
		if fresh {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", r.addr)
			if err != nil {
				return 0, err
			}
			if r.tls != nil {
				tc := tls.Client(c, r.tls)
				if err := tc.HandshakeContext(ctx); err != nil {
					c.Close()
					return 0, fmt.Errorf("TLS handshake: %w", err)
				}
				c = tc
			}
			r.conn = c
			if r.br == nil {
				r.br = bufio.NewReaderSize(c, 16<<10)
			} else {
				r.br.Reset(c)
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < r.timeout {
			r.conn.SetDeadline(dl)
		} else {
			r.conn.SetDeadline(time.Now().Add(r.timeout))
		}
		code, keep, err := r.roundTrip()
		if err == nil {
			if !keep {
				r.close()
			}
			return code, nil
		}
		r.close()
		// The socket deadline can fire a moment before ctx's own timer:
		// report that as the cancellation it is, not as a failed request.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			<-ctx.Done() // imminent: the deadline has passed
			return 0, ctx.Err()
		}
		// A stale keep-alive connection fails before any byte arrives.
		if fresh || attempt > 0 || !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
}

func (r *rawConn) roundTrip() (code int, keepAlive bool, err error) {
	if _, err := r.conn.Write(r.req); err != nil {
		return 0, false, err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keepAlive := -1, false, true
	r.etcdIndex = 0
	for {
		h, err := r.br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := strings.Cut(string(h), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			keepAlive = !strings.EqualFold(value, "close")
		case "x-etcd-index":
			r.etcdIndex, _ = strconv.ParseUint(value, 10, 64)
		}
	}
	switch {
	case chunked:
		err = r.discardChunked()
	case length >= 0:
		_, err = r.br.Discard(length)
	default:
		_, err = io.Copy(io.Discard, r.br) // body runs to connection close
		keepAlive = false
	}
	return code, keepAlive, err
}

func (r *rawConn) discardChunked() error {
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(string(line), ";", 2)[0]), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				t, err := r.br.ReadSlice('\n')
				if err != nil || len(t) <= 2 {
					return err
				}
			}
		}
		if _, err := r.br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
