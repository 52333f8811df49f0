// Package loadclient is the client side of a v2 keys load run, shared by
// bench/load and stratactl bench: a raw keep-alive HTTP/1.1 connection
// (Conn), a fixed-size latency Histogram, and the one-row Summary of a
// measured run in the CSV columns bench/cmd/plot reads.
package loadclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

// Conn is one kept-alive HTTP/1.1 connection (see rawConn for why it is not
// net/http's client). It is not safe for concurrent use. Response bodies
// are discarded.
type Conn struct {
	raw *rawConn
}

// NewConn returns a Conn to target ("http(s)://host:port"); it dials on
// the first request. timeout bounds each request; tlsCfg is used for https
// targets (nil: system roots); user "name:password" sends basic auth.
func NewConn(target string, timeout time.Duration, tlsCfg *tls.Config, user string) (*Conn, error) {
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	r, err := newRawConn(target, timeout, tlsCfg)
	if err != nil {
		return nil, err
	}
	if user != "" {
		if !strings.Contains(user, ":") {
			return nil, errors.New("loadclient: user must be name:password")
		}
		r.authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(user))
	}
	return &Conn{raw: r}, nil
}

// Do sends one request (a non-empty body is sent as a form) and returns the
// status code and the response's X-Etcd-Index (0 if absent).
func (c *Conn) Do(ctx context.Context, method, path, body string) (code int, etcdIndex uint64, err error) {
	code, err = c.raw.do(ctx, method, path, body)
	if err != nil {
		return 0, 0, err
	}
	return code, c.raw.etcdIndex, nil
}

// Close closes the connection.
func (c *Conn) Close() { c.raw.close() }
