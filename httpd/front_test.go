package httpd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// engineStore serves the API from a real engine on the memory backend,
// applying each write at once (no raft: this tests the HTTP layer).
type engineStore struct {
	mu    sync.Mutex
	eng   *engine.Engine
	index uint64
}

func newEngineStore(t testing.TB) *engineStore {
	eng, err := engine.Open(memory.New(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &engineStore{eng: eng, index: 2}
}

func (s *engineStore) Propose(_ context.Context, c engine.Command) (*engine.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	res, err := s.eng.ApplyBatch(s.index, []engine.Command{c})
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return res[0].Event, nil
}

func (s *engineStore) Get(_ context.Context, p string, recursive, sorted, _ bool) (*engine.Event, error) {
	return s.eng.Get(p, recursive, sorted)
}

func (s *engineStore) Watch(p string, recursive, stream bool, waitIndex uint64) (*engine.Watcher, error) {
	return s.eng.Watch(p, recursive, stream, waitIndex)
}

func (s *engineStore) Track(dir string) *engine.Tracker { return s.eng.Track(dir) }

func (s *engineStore) RaftStatus() (uint64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index, 2
}

type fakeCluster struct{}

func (fakeCluster) ClusterID() uint64                 { return 0xcdf818194e3a8c32 }
func (fakeCluster) Members() []membership.Member      { return nil }
func (fakeCluster) SelfStats() any                    { return map[string]string{} }
func (fakeCluster) LeaderStats() (any, bool)          { return nil, false }
func (fakeCluster) StoreStats() engine.StoreStats     { return engine.StoreStats{} }
func (fakeCluster) Healthy(ctx context.Context) error { return nil }

// serve starts the API on loopback, through a Front (lean) or net/http
// alone, and returns its address and the Front (nil for net/http).
func serve(t *testing.T, lean bool) (string, *Front) {
	t.Helper()
	return serveConfig(t, lean, Config{}, newEngineStore(t), 0)
}

// exchange sends raw request bytes on one connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var rec bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &rec))
	for i := range n {
		var req *http.Request
		if strings.HasPrefix(raw, "HEAD ") {
			req = &http.Request{Method: "HEAD"}
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d of %d to %q: %v", i+1, n, raw[:min(len(raw), 200)], err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d body to %q: %v", i+1, raw[:min(len(raw), 200)], err)
		}
	}
	// Every byte the server sent, Date values masked.
	return dateLine.ReplaceAllString(rec.String(), "Date: *\r\n")
}

var dateLine = regexp.MustCompile(`Date: [^\r]*\r\n`)

// Raw HTTP/1.1 pieces for the exchanges the lean path and the fuzz rig replay.
const (
	rawHost = "Host: x\r\n"
	rawForm = "Content-Type: application/x-www-form-urlencoded\r\n"
)

func rawPut(target, body string) string {
	return "PUT " + target + " HTTP/1.1\r\n" + rawHost + rawForm + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func rawBasic(userpw string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(userpw)) + "\r\n"
}

// TestFrontMatchesNetHTTP replays the same requests against the lean path
// and against net/http alone, each over a fresh store, and requires the
// same status, headers (but Date) and body; it also checks which requests
// the lean path answered itself.
func TestFrontMatchesNetHTTP(t *testing.T) {
	const h, form = rawHost, rawForm
	put, basic := rawPut, rawBasic
	authPut := func(target, authz, body string) string {
		return "PUT " + target + " HTTP/1.1\r\n" + h + authz + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	withAuth := func(raw, userpw string) string { // after the request line
		line, rest, _ := strings.Cut(raw, "\r\n")
		return line + "\r\n" + basic(userpw) + rest
	}
	cases := []struct {
		name string
		raw  string
		n    int // responses
		fast int // answered by the lean path
	}{
		{"set", put("/v2/keys/a", "value=1"), 1, 1},
		{"get", "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"plus and escapes", put("/v2/keys/b%20c", "value=x+y%26z"), 1, 1},
		{"body wins over query, first of repeats", put("/v2/keys/q?value=query", "value=body&value=second"), 1, 1},
		{"create exists", put("/v2/keys/a?prevExist=false", "value=2"), 1, 1},
		{"cas fails", put("/v2/keys/a?prevValue=nope", "value=2"), 1, 1},
		{"cas ok noValueOnSuccess", put("/v2/keys/a?prevValue=1&noValueOnSuccess=true", "value=2"), 1, 1},
		{"in order", "POST /v2/keys/queue HTTP/1.1\r\n" + h + form + "Content-Length: 7\r\n\r\nvalue=j", 1, 1},
		{"dir", put("/v2/keys/d", "dir=true"), 1, 1},
		{"not a file", "GET /v2/keys/d/x/y HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"recursive sorted", "GET /v2/keys/?recursive=true&sorted=true HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"missing", "GET /v2/keys/nope HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"delete dir needs dir", "DELETE /v2/keys/d HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"cad", "DELETE /v2/keys/a?prevValue=2 HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"bad ttl", put("/v2/keys/t", "value=1&ttl=abc"), 1, 1},
		{"bad escape in body", put("/v2/keys/e", "value=%zz"), 1, 1},
		{"semicolon in query", put("/v2/keys/e?a=1;b=2", "value=1"), 1, 1},
		{"refresh with value", put("/v2/keys/a?refresh=true&ttl=5", "value=1"), 1, 1},
		{"prevValue empty", put("/v2/keys/a?prevValue=", "value=1"), 1, 1},
		{"wait on PUT", put("/v2/keys/a?wait=true", "value=1"), 1, 1},
		{"keys root", "GET /v2/keys HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"pipelined", put("/v2/keys/p", "value=1") + "GET /v2/keys/p HTTP/1.1\r\n" + h + "\r\n" + "DELETE /v2/keys/p HTTP/1.1\r\n" + h + "\r\n", 3, 3},
		{"connection close", "GET /v2/keys/nope HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", 1, 1},
		{"mixed case headers", "PUT /v2/keys/m HTTP/1.1\r\nhost: x\r\ncontent-type: Application/X-WWW-Form-Urlencoded; charset=utf-8\r\ncontent-length: 7\r\n\r\nvalue=m", 1, 1},
		// Handed to net/http, which keeps the connection.
		{"head", "HEAD /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"watch then get", "GET /v2/keys/?wait=true&waitIndex=1&recursive=true HTTP/1.1\r\n" + h + "\r\n" + "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 2, 0},
		{"unclean path", "GET /v2/keys/a//b HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"unclean escaped path", "GET /v2/keys/a/%2E%2E/b HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"bad path escape", "GET /v2/keys/%zz HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"http/1.0", "GET /v2/keys/a HTTP/1.0\r\n\r\n", 1, 0},
		{"no host", "GET /v2/keys/a HTTP/1.1\r\n\r\n", 1, 0},
		{"two hosts", "GET /v2/keys/a HTTP/1.1\r\n" + h + h + "\r\n", 1, 0},
		{"chunked body", "PUT /v2/keys/c HTTP/1.1\r\n" + h + form + "Transfer-Encoding: chunked\r\n\r\n7\r\nvalue=c\r\n0\r\n\r\n", 1, 0},
		{"expect continue", "PUT /v2/keys/c HTTP/1.1\r\n" + h + form + "Expect: 100-continue\r\nContent-Length: 7\r\n\r\nvalue=c", 2, 0}, // 100 Continue, then 200
		{"json body", "PUT /v2/keys/c HTTP/1.1\r\n" + h + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 1, 0},
		{"delete with body", "DELETE /v2/keys/c HTTP/1.1\r\n" + h + form + "Content-Length: 7\r\n\r\nvalue=c", 1, 0},
		{"too large", "PUT /v2/keys/big HTTP/1.1\r\n" + h + form + "Content-Length: 1572865\r\n\r\n" + "value=" + strings.Repeat("v", 1572865-6), 1, 0},
		{"too many headers", "GET /v2/keys/a HTTP/1.1\r\n" + h + strings.Repeat("X-A: b\r\n", 201) + "\r\n", 1, 0},
		{"long uri", "GET /v2/keys/" + strings.Repeat("k", 5000) + " HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"other endpoint", "GET /version HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"patch", "PATCH /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 1, 0},
		{"lean then handed", "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n" + "GET /version HTTP/1.1\r\n" + h + "\r\n" + "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 3, 1},
		// Auth: set up through net/http, then keys requests checked on both paths.
		{"auth: create root", authPut("/v2/auth/users/root", "", `{"user":"root","password":"rpw"}`), 1, 0},
		{"auth: role", authPut("/v2/auth/roles/r", "", `{"role":"r","permissions":{"kv":{"read":["/a","/p/*"],"write":["/p/*"]}}}`), 1, 0},
		{"auth: user", authPut("/v2/auth/users/u", "", `{"user":"u","password":"upw","roles":["r"]}`), 1, 0},
		{"auth: enable", authPut("/v2/auth/enable", "", ""), 1, 0},
		{"auth: guest still writes", put("/v2/keys/p/g", "value=g"), 1, 1},
		{"auth: restrict guest", authPut("/v2/auth/roles/guest", basic("root:rpw"), `{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}`), 1, 0},
		{"auth: guest read refused", "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 1, 1},
		{"auth: guest write refused", put("/v2/keys/p/g", "value=h"), 1, 1},
		{"auth: user reads", "GET /v2/keys/a HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 1},
		{"auth: user write outside its patterns", withAuth(put("/v2/keys/a", "value=z"), "u:upw"), 1, 1},
		{"auth: user write inside", withAuth(put("/v2/keys/p/x", "value=z"), "u:upw"), 1, 1},
		{"auth: /p/* is not /pq", "GET /v2/keys/pq HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 1},
		{"auth: wrong password", "GET /v2/keys/a HTTP/1.1\r\n" + h + basic("u:nope") + "\r\n", 1, 1},
		{"auth: lower-case scheme", "GET /v2/keys/a HTTP/1.1\r\n" + h + "Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("u:upw")) + "\r\n\r\n", 1, 1},
		{"auth: bad base64", "GET /v2/keys/a HTTP/1.1\r\n" + h + "Authorization: Basic !!\r\n\r\n", 1, 1},
		{"auth: not basic", "GET /v2/keys/a HTTP/1.1\r\n" + h + "Authorization: Bearer x\r\n\r\n", 1, 1},
		{"auth: empty header is guest", "GET /v2/keys/a HTTP/1.1\r\n" + h + "Authorization: \r\n\r\n", 1, 1},
		{"auth: recursive get of / refused", "GET /v2/keys/?recursive=true HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 1},
		{"auth: recursive get below /p/", "GET /v2/keys/p/?recursive=true HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 1},
		{"auth: pipelined", withAuth(put("/v2/keys/p/y", "value=1"), "u:upw") + "GET /v2/keys/p/y HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n" + "GET /v2/keys/p/y HTTP/1.1\r\n" + h + basic("u:bad") + "\r\n", 3, 3},
		{"auth: two Authorization headers", "GET /v2/keys/a HTTP/1.1\r\n" + h + basic("u:bad") + basic("u:upw") + "\r\n", 1, 0},
		{"auth: watch refused", "GET /v2/keys/?wait=true&recursive=true HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 0},
		{"auth: user list refused", "GET /v2/auth/users HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n", 1, 0},
		{"auth: disable", "DELETE /v2/auth/enable HTTP/1.1\r\n" + h + basic("root:rpw") + "\r\n", 1, 0},
		{"auth: guest reads again", "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n", 1, 1},
	}
	leanAddr, front := serve(t, true)
	plainAddr, _ := serve(t, false)
	for _, tc := range cases {
		before := front.fastServed.Load()
		got := exchange(t, leanAddr, tc.raw, tc.n)
		want := exchange(t, plainAddr, tc.raw, tc.n)
		if got != want {
			t.Errorf("%s: responses differ\nlean:\n%s\nnet/http:\n%s", tc.name, got, want)
		}
		if fast := int(front.fastServed.Load() - before); fast != tc.fast {
			t.Errorf("%s: lean path answered %d requests, want %d", tc.name, fast, tc.fast)
		}
	}
}

// TestFrontShutdown: Serve returns http.ErrServerClosed, an idle lean
// connection is closed, and a handed-over one is closed by net/http.
func TestFrontShutdown(t *testing.T) {
	api := New(Config{}, newEngineStore(t), fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(api, &http.Server{Handler: api})
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	dial := func(req string) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		return c
	}
	lean := dial("GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n")
	handed := dial("GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
	if n := f.fastServed.Load(); n != 1 {
		t.Fatalf("lean path answered %d requests, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	for name, c := range map[string]net.Conn{"lean": lean, "handed over": handed} {
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s connection after Shutdown: read %d bytes, err %v; want EOF", name, n, err)
		}
		c.Close()
	}
}
