package httpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/internal/tlsutil/certtest"
)

// serveConfig starts the API over store on loopback with cfg and the
// http.Server's MaxHeaderBytes set to maxHeaderBytes (0: net/http's
// default), through a Front (lean) or net/http alone.
func serveConfig(t *testing.T, lean bool, cfg Config, store Store, maxHeaderBytes int) (string, *Front) {
	t.Helper()
	api := New(cfg, store, fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: maxHeaderBytes}
	var f *Front
	if lean {
		f = NewFront(api, hs)
		go f.Serve(ln)
	} else {
		go hs.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		api.Close()
		if f != nil {
			f.Shutdown(ctx)
		} else {
			hs.Shutdown(ctx)
		}
	})
	return ln.Addr().String(), f
}

// exchangeAll sends raw on one connection, reads n responses with the
// connection still open (a client waiting for its answer), then
// half-closes it and returns every byte the server sent until it closed
// (Date values masked): what a client sees.
func exchangeAll(t *testing.T, addr, raw string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var rec strings.Builder
	br := bufio.NewReader(io.TeeReader(c, &rec))
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		if err != nil {
			// A server silent until our deadline is the bug this test
			// exists for (bare LF on the lean path).
			t.Fatalf("response %d of %d to %q: %v (after %q)", i+1, n, raw[:min(len(raw), 120)], err, rec.String())
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("reading to the end after %q: %v", rec.String(), err)
	}
	return dateLine.ReplaceAllString(rec.String(), "Date: *\r\n")
}

// TestLeanRawSocket sends odd but valid (or oversize) request heads on raw
// sockets to the lean path and to net/http alone, and requires the same
// bytes back. Status codes from etcd 3.4 where recorded: a bare-LF
// `GET /health` gets 200 there, as `GET /v2/keys/` with a bare LF before
// the final CRLF.
func TestLeanRawSocket(t *testing.T) {
	const form = "Content-Type: application/x-www-form-urlencoded"
	big := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) + "\r\n" }
	cases := []struct {
		name           string
		raw            string
		maxURI         int // Config.MaxURIBytes, 0: default
		maxHeaderBytes int // http.Server.MaxHeaderBytes, 0: default
		n              int // responses before the client half-closes
		status         string
		fast           int // answered by the lean path
	}{
		{name: "bare LF health (etcd: 200)", raw: "GET /health HTTP/1.1\nHost: x\n\n", n: 1, status: "200"},
		{name: "bare LF get", raw: "GET /v2/keys/a HTTP/1.1\nHost: x\n\n", n: 1, status: "200"},
		{name: "bare LF put with body", raw: "PUT /v2/keys/b HTTP/1.1\nHost: x\n" + form + "\nContent-Length: 7\n\nvalue=1", n: 1, status: "201"},
		{name: "mixed: LF before final CRLF (etcd: 200)", raw: "GET /v2/keys/ HTTP/1.1\r\nHost: x\n\r\n", n: 1, status: "200"},
		{name: "mixed: request line LF", raw: "GET /v2/keys/a HTTP/1.1\nHost: x\r\n\r\n", n: 1, status: "200"},
		{name: "mixed: CRLF then LF blank line", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\n", n: 1, status: "200"},
		{name: "pipelined: CRLF then bare LF", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/keys/a HTTP/1.1\nHost: x\n\n", n: 2, status: "200", fast: 1},
		{name: "pipelined: bare LF then CRLF", raw: "GET /v2/keys/a HTTP/1.1\nHost: x\n\nGET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n", n: 2, status: "200"},
		{name: "all CRLF stays lean", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n", n: 1, status: "200", fast: 1},
		{name: "leading empty line", raw: "\r\nGET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n", n: 1, status: "400"},
		{name: "bare CR in a header", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", n: 1, status: "400"},
		{name: "URI at the limit", raw: "GET /v2/keys/" + strings.Repeat("k", 100-len("/v2/keys/")) + " HTTP/1.1\r\nHost: x\r\n\r\n", maxURI: 100, n: 1, status: "404", fast: 1},
		{name: "URI over the limit", raw: "GET /v2/keys/" + strings.Repeat("k", 101-len("/v2/keys/")) + " HTTP/1.1\r\nHost: x\r\n\r\n", maxURI: 100, n: 1, status: "414"},
		{name: "URI over the limit, bare LF", raw: "GET /v2/keys/" + strings.Repeat("k", 200) + " HTTP/1.1\nHost: x\n\n", maxURI: 100, n: 1, status: "414"},
		{name: "PUT URI over the limit", raw: "PUT /v2/keys/" + strings.Repeat("k", 200) + " HTTP/1.1\r\nHost: x\r\n" + form + "\r\nContent-Length: 7\r\n\r\nvalue=1", maxURI: 100, n: 1, status: "414"},
		// net/http allows MaxHeaderBytes plus 4096 bytes: a 3000-byte head
		// passes a 1000-byte limit on both paths, a 6000-byte one does not.
		{name: "head within MaxHeaderBytes+4096", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n" + big(3000) + "\r\n", maxHeaderBytes: 1000, n: 1, status: "200", fast: 1},
		{name: "head over MaxHeaderBytes+4096", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n" + big(6000) + "\r\n", maxHeaderBytes: 1000, n: 1, status: "431"},
		{name: "head over the default 1 MiB", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n" + big(1<<20+4096) + "\r\n", n: 1, status: "431"},
		{name: "head over the limit, bare LF", raw: "GET /v2/keys/a HTTP/1.1\nHost: x\n" + strings.TrimSuffix(big(6000), "\r\n") + "\n\n", maxHeaderBytes: 1000, n: 1, status: "431"},
		{name: "too many header lines", raw: "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 201) + "\r\n", n: 1, status: "431"},
		{name: "partial head then close", raw: "GET /v2/keys/a HTTP/1.1\nHost: x\n", n: 0, status: "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{MaxURIBytes: tc.maxURI}
			seed := func(s *engineStore) {
				s.Propose(context.Background(), engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"})
			}
			ls, ps := newEngineStore(t), newEngineStore(t)
			seed(ls)
			seed(ps)
			leanAddr, front := serveConfig(t, true, cfg, ls, tc.maxHeaderBytes)
			plainAddr, _ := serveConfig(t, false, cfg, ps, tc.maxHeaderBytes)
			got := exchangeAll(t, leanAddr, tc.raw, tc.n)
			want := exchangeAll(t, plainAddr, tc.raw, tc.n)
			if got != want {
				t.Errorf("responses differ\nlean:\n%.600s\nnet/http:\n%.600s", got, want)
			}
			status := ""
			if len(want) >= 12 {
				status = want[9:12]
			}
			if status != tc.status {
				t.Errorf("first status %q, want %q; response:\n%.600s", status, tc.status, want)
			}
			if fast := int(front.fastServed.Load()); fast != tc.fast {
				t.Errorf("lean path answered %d requests, want %d", fast, tc.fast)
			}
		})
	}
}

// blockingStore is an engineStore whose writes and quorum reads wait until
// their context ends, reporting each wait's start and end: it stands for
// a member that cannot reach quorum, which is what a client disconnect
// must cut short.
type blockingStore struct {
	*engineStore
	started chan string
	ended   chan error
	release chan struct{} // closed: waits end and the request proceeds
}

func (s *blockingStore) wait(ctx context.Context, what string) error {
	s.started <- what
	select {
	case <-ctx.Done():
		s.ended <- ctx.Err()
		return ctx.Err()
	case <-s.release:
		s.ended <- nil
		return nil
	}
}

func (s *blockingStore) Propose(ctx context.Context, c engine.Command) (*engine.Event, error) {
	if err := s.wait(ctx, "propose "+c.Path); err != nil {
		return nil, err
	}
	return s.engineStore.Propose(ctx, c)
}

func (s *blockingStore) Get(ctx context.Context, p string, recursive, sorted, quorum bool) (*engine.Event, error) {
	if quorum {
		if err := s.wait(ctx, "quorum get "+p); err != nil {
			return nil, err
		}
	}
	return s.engineStore.Get(ctx, p, recursive, sorted, quorum)
}

// TestLeanClientGone: a client that hangs up while its write or quorum
// read waits ends that wait on the lean path as on net/http's; a request
// pipelined behind one that waits is not mistaken for a hang-up; and the
// connection and server serve on afterwards.
func TestLeanClientGone(t *testing.T) {
	const form = "Content-Type: application/x-www-form-urlencoded\r\n"
	put := "PUT /v2/keys/w HTTP/1.1\r\nHost: x\r\n" + form + "Content-Length: 7\r\n\r\nvalue=1"
	cases := []struct {
		name, raw, what string
		tcpReset        bool // close with RST (SO_LINGER 0), not FIN
	}{
		{"write, FIN", put, "propose /w", false},
		{"write, RST", put, "propose /w", true},
		{"POST, FIN", "POST /v2/keys/q HTTP/1.1\r\nHost: x\r\n" + form + "Content-Length: 7\r\n\r\nvalue=1", "propose /q", false},
		{"DELETE, FIN", "DELETE /v2/keys/w HTTP/1.1\r\nHost: x\r\n\r\n", "propose /w", false},
		{"quorum read, FIN", "GET /v2/keys/w?quorum=true HTTP/1.1\r\nHost: x\r\n\r\n", "quorum get /w", false},
		{"quorum read, RST", "GET /v2/keys/w?quorum=true HTTP/1.1\r\nHost: x\r\n\r\n", "quorum get /w", true},
	}
	for _, tc := range cases {
		for _, lean := range []bool{true, false} {
			name := tc.name + map[bool]string{true: " lean", false: " net/http"}[lean]
			t.Run(name, func(t *testing.T) {
				st := &blockingStore{engineStore: newEngineStore(t), started: make(chan string, 1), ended: make(chan error, 1), release: make(chan struct{})}
				addr, front := serveConfig(t, lean, Config{}, st, 0)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, tc.raw)
				select {
				case what := <-st.started:
					if what != tc.what {
						t.Fatalf("store saw %q, want %q", what, tc.what)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the request never reached the store")
				}
				if tc.tcpReset {
					c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
				select {
				case err := <-st.ended:
					if err != context.Canceled {
						t.Fatalf("wait ended with %v, want context.Canceled", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the wait did not end when its client went away")
				}
				if lean {
					// Counted once the handler returns, after the wait ended.
					for end := time.Now().Add(10 * time.Second); front.fastServed.Load() == 0 && time.Now().Before(end); {
						time.Sleep(time.Millisecond)
					}
					if n := front.fastServed.Load(); n != 1 {
						t.Errorf("lean path answered %d requests, want 1", n)
					}
				}
				// The server still answers.
				if got := exchangeAll(t, addr, "GET /v2/keys/nope HTTP/1.1\r\nHost: x\r\n\r\n", 1); !strings.HasPrefix(got, "HTTP/1.1 404 ") {
					t.Errorf("next request got %q, want a 404", got)
				}
			})
		}
	}

	// A request pipelined behind a waiting write is read by the close
	// watch: it must be served intact afterwards, not taken for a hang-up.
	for _, lean := range []bool{true, false} {
		st := &blockingStore{engineStore: newEngineStore(t), started: make(chan string, 1), ended: make(chan error, 1), release: make(chan struct{})}
		addr, _ := serveConfig(t, lean, Config{}, st, 0)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, put)
		<-st.started
		io.WriteString(c, "GET /v2/keys/w HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // not asserted: lets the watch read the GET's first byte while the write waits
		close(st.release)
		if err := <-st.ended; err != nil {
			t.Fatalf("lean=%v: the write's wait ended with %v, want its own completion", lean, err)
		}
		br := bufio.NewReader(c)
		for i, want := range []int{201, 200} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("lean=%v response %d: %v", lean, i+1, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != want {
				t.Fatalf("lean=%v response %d: %d %s, want %d", lean, i+1, resp.StatusCode, body, want)
			}
			if i == 1 && !strings.Contains(string(body), `"value":"1"`) {
				t.Fatalf("lean=%v: GET after the write: %s", lean, body)
			}
		}
	}
}

// TestLeanClientGoneTLS: over TLS too, a hang-up ends the wait, and the
// close watch's interrupted read leaves the connection usable: a request
// pipelined behind a waiting write is served intact, then another.
func TestLeanClientGoneTLS(t *testing.T) {
	ca := certtest.NewCA(t, "CA")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, "server", certtest.Server)}, MinVersion: tls.VersionTLS12}
	st := &blockingStore{engineStore: newEngineStore(t), started: make(chan string, 1), ended: make(chan error, 1), release: make(chan struct{})}
	api := New(Config{}, st, fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(api, newHTTPServer(api))
	go f.ServeTLS(ln, srvCfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		api.Close()
		f.Shutdown(ctx)
	})
	dial := func() net.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	put := "PUT /v2/keys/w HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1"

	c := dial()
	io.WriteString(c, put)
	<-st.started
	c.Close()
	if err := <-st.ended; err != context.Canceled {
		t.Fatalf("wait ended with %v after the TLS client left, want context.Canceled", err)
	}

	c = dial()
	defer c.Close()
	io.WriteString(c, put)
	<-st.started
	io.WriteString(c, "GET /v2/keys/w HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // not asserted: lets the watch read a TLS record of the GET
	st.release <- struct{}{}
	if err := <-st.ended; err != nil {
		t.Fatalf("the write's wait ended with %v, want its own completion", err)
	}
	io.WriteString(c, "GET /v2/keys/w HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for i, want := range []int{201, 200, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || i > 0 && !strings.Contains(string(body), `"value":"1"`) {
			t.Fatalf("response %d: %d %s, want %d with the value", i+1, resp.StatusCode, body, want)
		}
	}
	for end := time.Now().Add(10 * time.Second); f.fastServed.Load() < 4 && time.Now().Before(end); {
		time.Sleep(time.Millisecond) // the first connection's answer is counted after its wait ended
	}
	if n := f.fastServed.Load(); n != 4 {
		t.Errorf("lean path answered %d requests, want 4 (all of them)", n)
	}
}
