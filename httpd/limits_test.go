package httpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-kv/strata/internal/tlsutil/certtest"
)

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveFront starts a Front as cmd/strata does (h2c and h2 enabled), on
// TLS when tlsCfg is set, and returns its address.
func serveFront(t *testing.T, cfg Config, tlsCfg *tls.Config, headerTimeout time.Duration) (string, *Server) {
	t.Helper()
	api := New(cfg, newEngineStore(t), fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(api)
	hs.ReadHeaderTimeout, hs.IdleTimeout = headerTimeout, headerTimeout
	hs.Protocols.SetHTTP2(true)
	f := NewFront(api, hs)
	if tlsCfg != nil {
		go f.ServeTLS(ln, tlsCfg)
	} else {
		go f.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		api.Close()
		f.Shutdown(ctx)
	})
	return ln.Addr().String(), api
}

// TestMaxWatchers: the cap counts watches on HTTP/1.1 and h2c alike; one
// more gets 429 with a JSON message and a log line; a slot freed is
// reusable.
func TestMaxWatchers(t *testing.T) {
	logs := &lockedBuf{}
	addr, api := serveFront(t, Config{MaxWatchers: 2, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil, 5*time.Second)
	watch := "GET /v2/keys/w?wait=true HTTP/1.1\r\nHost: x\r\n\r\n"

	// One watch over HTTP/1.1: the headers come once it is registered.
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	io.WriteString(c1, watch)
	if resp, err := http.ReadResponse(bufio.NewReader(c1), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 watch: %v %v", resp, err)
	}
	// One over h2c (prior knowledge).
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/v2/keys/w?wait=true", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("h2c watch: %v %v", resp, err)
	}
	if n := api.Watchers(); n != 2 {
		t.Fatalf("%d watchers open, want 2", n)
	}
	want := `{"message":"too many watchers: this member serves at most 2 at once (--max-watchers); retry later or on another member"}` + "\n"
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		var code int
		var body string
		if proto == "h2c" {
			r, err := tr.RoundTrip(must(http.NewRequest("GET", "http://"+addr+"/v2/keys/w?wait=true", nil)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			code, body = r.StatusCode, string(b)
		} else {
			code, body = rawExchange(t, addr, watch)
		}
		if code != 429 || body != want {
			t.Errorf("third watch over %s: %d %q, want 429 %q", proto, code, body, want)
		}
	}
	if !strings.Contains(logs.String(), `msg="http: request refused" reason="too many watchers" limit=2`) {
		t.Errorf("no log line for the refused watch:\n%s", logs)
	}
	// Ending the h2c watch frees its slot.
	cancel()
	resp.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); api.Watchers() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers after one ended, want 1", api.Watchers())
		}
	}
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	io.WriteString(c3, watch)
	if resp, err := http.ReadResponse(bufio.NewReader(c3), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch after a slot was freed: %v %v", resp, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// rawExchange sends one request on a fresh connection and returns the
// response's status and body.
func rawExchange(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKeyDepthLimit: deeper keys get 400 and error 209 on both paths.
func TestKeyDepthLimit(t *testing.T) {
	addr, _ := serveFront(t, Config{MaxKeyDepth: 3}, nil, 5*time.Second)
	cases := []struct {
		name, raw string
		code      int
		body      string
	}{
		{"lean, 3 levels", "PUT /v2/keys/a/b/c HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1", 201, ""},
		{"lean, 4 levels", "PUT /v2/keys/a/b/c/d HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1", 400,
			`{"errorCode":209,"message":"Invalid field","cause":"key has more than 3 levels","index":0}` + "\n"},
		{"net/http, 4 levels", "GET /v2/keys/a/b/c/d?wait=true HTTP/1.1\r\nHost: x\r\n\r\n", 400,
			`{"errorCode":209,"message":"Invalid field","cause":"key has more than 3 levels","index":0}` + "\n"},
	}
	for _, tc := range cases {
		code, body := rawExchange(t, addr, tc.raw)
		if code != tc.code || tc.body != "" && body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
}

// TestTimeoutsOverTLS: a client that never completes its TLS handshake,
// and one that stops in the middle of its request head, are disconnected
// by the header timeout; over plain HTTP the lean path does the same.
// (The timeout is short; the test asserts the disconnection, not when.)
func TestTimeoutsOverTLS(t *testing.T) {
	ca := certtest.NewCA(t, "CA")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, "server", certtest.Server)}, MinVersion: tls.VersionTLS12}
	tlsAddr, _ := serveFront(t, Config{}, srvCfg, 200*time.Millisecond)
	plainAddr, _ := serveFront(t, Config{}, nil, 200*time.Millisecond)
	partial := "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n"
	cases := []struct {
		name string
		dial func() (net.Conn, error)
		send string
	}{
		{"TLS: silent before the handshake", func() (net.Conn, error) { return net.Dial("tcp", tlsAddr) }, ""},
		{"TLS: half a request head", func() (net.Conn, error) {
			return tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		}, partial},
		{"TLS: idle after the handshake", func() (net.Conn, error) {
			return tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		}, ""},
		{"plain: half a request head", func() (net.Conn, error) { return net.Dial("tcp", plainAddr) }, partial},
	}
	for _, tc := range cases {
		c, err := tc.dial()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		io.WriteString(c, tc.send)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		if ok := isNetErr(err, &ne); ok && ne.Timeout() {
			t.Errorf("%s: the server kept the connection open", tc.name)
		} else if n != 0 {
			t.Errorf("%s: got %d bytes before the close, want none", tc.name, n)
		}
		c.Close()
	}
}

func isNetErr(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}
