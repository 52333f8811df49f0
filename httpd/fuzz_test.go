package httpd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
)

// fuzzRig is one Front (lean path + net/http) and one net/http server
// alone, configured as cmd/strata configures them (h2c included), each
// over its own engine. Before every input both engines are restored from
// the same template, so every input starts from the same state.
type fuzzRig struct {
	lean, plain           *engineStore
	leanAddr, plainAddr   string
	front                 *Front
	tmplPlain, tmplAuth   []byte // engine snapshots
	idxPlain, idxAuth     uint64 // engineStore.index of each template
	modelPlain, modelAuth map[string]string
}

var (
	rigOnce sync.Once
	rig     *fuzzRig
)

func newHTTPServer(h http.Handler) *http.Server {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		MaxHeaderBytes: 1 << 20, Protocols: new(http.Protocols)}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}

func getRig(t *testing.T) *fuzzRig {
	rigOnce.Do(func() {
		r := &fuzzRig{lean: newEngineStore(t), plain: newEngineStore(t)}
		leanAPI := New(Config{}, r.lean, fakeCluster{})
		plainAPI := New(Config{}, r.plain, fakeCluster{})
		ln1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.front = NewFront(leanAPI, newHTTPServer(leanAPI))
		go r.front.Serve(ln1)
		go newHTTPServer(plainAPI).Serve(ln2)
		r.leanAddr, r.plainAddr = ln1.Addr().String(), ln2.Addr().String()
		r.tmplPlain, r.idxPlain, r.modelPlain = buildTemplate(t, false)
		r.tmplAuth, r.idxAuth, r.modelAuth = buildTemplate(t, true)
		rig = r
	})
	if rig == nil {
		t.Fatal("fuzz rig failed to start")
	}
	return rig
}

// buildTemplate writes a few keys (and, with auth, users, a role and auth
// enabled, guest restricted to reads of /a) through the API and returns
// the engine's snapshot, its index and the visible key space.
func buildTemplate(t *testing.T, auth bool) ([]byte, uint64, map[string]string) {
	st := newEngineStore(t)
	api := New(Config{}, st, fakeCluster{})
	do := func(method, target, userpw, body string) {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		} else if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if userpw != "" {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(userpw)))
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code/100 != 2 {
			t.Fatalf("template: %s %s: %d %s", method, target, w.Code, w.Body)
		}
	}
	do("PUT", "/v2/keys/a", "", "value=1")
	do("PUT", "/v2/keys/d/x", "", "value=2")
	do("PUT", "/v2/keys/p/q", "", "value=3")
	do("PUT", "/v2/keys/_h", "", "value=4")
	do("PUT", "/v2/keys/e", "", "dir=true")
	if auth {
		do("PUT", "/v2/auth/users/root", "", `{"user":"root","password":"rpw"}`)
		do("PUT", "/v2/auth/roles/r", "", `{"role":"r","permissions":{"kv":{"read":["/a","/p/*"],"write":["/p/*"]}}}`)
		do("PUT", "/v2/auth/users/u", "", `{"user":"u","password":"upw","roles":["r"]}`)
		do("PUT", "/v2/auth/enable", "", "")
		do("PUT", "/v2/auth/roles/guest", "root:rpw", `{"role":"guest","revoke":{"kv":{"write":["/*"]}}}`)
	}
	var buf bytes.Buffer
	if _, err := st.eng.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st.index, keySpace(t, st.eng)
}

// keySpace lists every node listed below / (hidden ones are not listed,
// nor is the auth data): key -> value, or "<dir>" for directories.
func keySpace(t *testing.T, eng *engine.Engine) map[string]string {
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		ev, err := eng.Get(p, false, true)
		if err != nil {
			t.Fatalf("read %s back: %v", p, err)
		}
		for _, n := range ev.Node.Nodes {
			if strings.IndexByte(n.Key, 0) >= 0 {
				continue
			}
			if n.Dir {
				out[n.Key] = "<dir>"
				walk(n.Key)
			} else {
				out[n.Key] = *n.Value
			}
		}
	}
	walk("/")
	return out
}

func (r *fuzzRig) reset(t *testing.T, auth bool) map[string]string {
	tmpl, idx, model := r.tmplPlain, r.idxPlain, r.modelPlain
	if auth {
		tmpl, idx, model = r.tmplAuth, r.idxAuth, r.modelAuth
	}
	for _, st := range []*engineStore{r.lean, r.plain} {
		st.mu.Lock()
		if err := st.eng.Restore(bytes.NewReader(tmpl)); err != nil {
			t.Fatal(err)
		}
		st.index = idx
		st.mu.Unlock()
	}
	m := make(map[string]string, len(model))
	for k, v := range model {
		m[k] = v
	}
	return m
}

const fuzzDeadline = 10 * time.Second

// roundTrip writes raw on a fresh connection, half-closes it and returns
// every byte the server sent until it closed the connection. Running
// into fuzzDeadline is a hang.
func roundTrip(t *testing.T, addr string, raw []byte) []byte {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(fuzzDeadline))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	out, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server hung: no end of response within %v for %q (got %q)", fuzzDeadline, raw, out)
	}
	<-werr // the server may close before reading everything: not an error
	return out
}

// response is one parsed response, normalised for comparison.
type response struct {
	status int
	header http.Header
	body   string // TTL clock values masked
	raw    string
}

var (
	maskTTL    = regexp.MustCompile(`"(expiration|ttl)":("[^"]*"|-?[0-9]+)`)
	h2cPreface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
)

// parseResponses splits a server's byte stream into responses. methods
// are the requests' methods in order (HEAD responses have no body); 1xx
// responses are skipped. Any byte that is not part of a well-formed
// response is an error.
func parseResponses(stream []byte, methods []string) ([]response, error) {
	br := bufio.NewReader(bytes.NewReader(stream))
	var out []response
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out, nil
		}
		var req *http.Request
		if i := len(out); i < len(methods) && methods[i] == "HEAD" {
			req = &http.Request{Method: "HEAD"}
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return out, err
		}
		if req != nil && resp.Close {
			// A HEAD the server refused (bad version, say) gets an error
			// body; the connection ends after it either way.
			rest, _ := io.ReadAll(br)
			b = append(b, rest...)
		}
		if resp.StatusCode/100 == 1 {
			continue
		}
		h := resp.Header.Clone()
		// The lean path sends Content-Length where net/http may chunk a
		// body over 2 KiB (a documented difference); Date is the clock.
		h.Del("Date")
		h.Del("Content-Length")
		out = append(out, response{status: resp.StatusCode, header: h, body: maskTTL.ReplaceAllString(string(b), `"$1":*`), raw: string(b)})
	}
}

// requestMethods parses raw as net/http's server would, as far as it can,
// and returns the methods of the requests it finds.
func requestMethods(raw []byte) []string {
	br := bufio.NewReader(bytes.NewReader(raw))
	var ms []string
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return ms
		}
		ms = append(ms, req.Method)
		io.Copy(io.Discard, req.Body)
	}
}

// keysEvent is what a successful write answers.
type keysEvent struct {
	Action string `json:"action"`
	Node   struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
		Dir   bool    `json:"dir"`
	} `json:"node"`
}

// apply updates model (key -> value or "<dir>") with an acknowledged write.
func apply(model map[string]string, ev keysEvent) {
	k := ev.Node.Key
	switch ev.Action {
	case "set", "create", "update", "compareAndSwap":
		// Parents exist after a write below them.
		for p := parentOf(k); p != "/"; p = parentOf(p) {
			model[p] = "<dir>"
		}
		if ev.Node.Dir {
			if _, ok := model[k]; !ok || ev.Action == "set" {
				model[k] = "<dir>"
			}
			if ev.Action == "set" { // set dir=true over a dir? refused; over nothing: empty dir
				for m := range model {
					if strings.HasPrefix(m, k+"/") {
						delete(model, m)
					}
				}
			}
		} else if ev.Node.Value != nil {
			model[k] = *ev.Node.Value
		}
	case "delete", "compareAndDelete":
		if k == "/" {
			return
		}
		delete(model, k)
		for m := range model {
			if strings.HasPrefix(m, k+"/") {
				delete(model, m)
			}
		}
	}
}

func parentOf(k string) string {
	i := strings.LastIndexByte(k, '/')
	if i <= 0 {
		return "/"
	}
	return k[:i]
}

// checkExchange runs one input against both servers and checks the
// properties; it is the body of FuzzHTTPRequest.
func checkExchange(t *testing.T, auth bool, raw []byte) {
	if len(raw) > 16<<10 || bytes.HasPrefix(raw, []byte("PRI")) {
		// h2c prior knowledge: frames, not HTTP/1 responses (tested elsewhere).
		return
	}
	r := getRig(t)
	model := r.reset(t, auth)
	before := r.front.fastServed.Load()
	leanOut := roundTrip(t, r.leanAddr, raw)
	plainOut := roundTrip(t, r.plainAddr, raw)

	methods := requestMethods(raw)
	leanResp, lerr := parseResponses(leanOut, methods)
	plainResp, perr := parseResponses(plainOut, methods)
	if perr != nil || lerr != nil {
		t.Fatalf("malformed response stream for %q:\nlean (%v): %q\nnet/http (%v): %q", raw, lerr, leanOut, perr, plainOut)
	}
	if len(leanResp) != len(plainResp) {
		t.Fatalf("%d responses from the lean server, %d from net/http, for %q:\nlean: %q\nnet/http: %q", len(leanResp), len(plainResp), raw, leanOut, plainOut)
	}
	for i := range leanResp {
		l, p := leanResp[i], plainResp[i]
		if l.status != p.status || l.body != p.body || !sameHeader(l.header, p.header) {
			t.Fatalf("response %d differs for %q (lean path answered %d):\nlean:     %d %v %q\nnet/http: %d %v %q", i+1, raw,
				r.front.fastServed.Load()-before, l.status, l.header, l.body, p.status, p.header, p.body)
		}
	}
	// Both engines hold the same key space, and it is the template plus
	// every acknowledged write: nothing unacknowledged, nothing lost.
	leanKeys, plainKeys := keySpaceOf(t, r.lean), keySpaceOf(t, r.plain)
	if !equalMaps(leanKeys, plainKeys) {
		t.Fatalf("engines differ after %q:\nlean:     %v\nnet/http: %v", raw, leanKeys, plainKeys)
	}
	for i, resp := range plainResp {
		if i >= len(methods) || methods[i] == "GET" || methods[i] == "HEAD" || resp.status/100 != 2 {
			continue
		}
		var ev keysEvent
		if json.Unmarshal([]byte(resp.raw), &ev) != nil || ev.Node.Key == "" {
			continue // not a keys write (auth API, noValueOnSuccess)
		}
		apply(model, ev)
	}
	if bytes.Contains(raw, []byte("noValueOnSuccess")) {
		return // such writes answer without the node: the model cannot follow
	}
	for k, v := range model {
		if !strings.Contains(k, "/_") {
			continue
		}
		// Hidden nodes are not listed: each must read back as written.
		delete(model, k)
		ev, err := r.plain.eng.Get(k, false, false)
		switch {
		case err != nil:
			t.Fatalf("acknowledged hidden node %s unreadable after %q: %v", k, raw, err)
		case (v == "<dir>") != ev.Node.Dir || !ev.Node.Dir && *ev.Node.Value != v:
			t.Fatalf("hidden node %s after %q reads %+v, want %q", k, raw, ev.Node, v)
		}
	}
	if !equalMaps(model, plainKeys) {
		t.Fatalf("key space after %q is not what the acknowledged writes imply:\nstore: %v\nmodel: %v", raw, plainKeys, model)
	}
}

func keySpaceOf(t *testing.T, st *engineStore) map[string]string {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := keySpace(t, st.eng)
	return m
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if k == "Transfer-Encoding" {
				continue
			}
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// FuzzHTTPRequest sends raw request bytes (one or several pipelined
// requests: any method, path, query, form, headers, basic auth) to a
// Front and to net/http alone, each over a real engine restored to the
// same template (with auth enabled or not), and requires: no panic, no
// hang, every byte sent back part of a well-formed HTTP response, the
// same responses from both (Date, Content-Length/chunking and TTL clock
// values aside), the same key space in both engines afterwards, and
// that key space equal to the template plus the acknowledged writes.
//
//	go test ./httpd -run XXX -fuzz FuzzHTTPRequest -fuzztime 10m -parallel 1
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, auth bool, raw []byte) {
		checkExchange(t, auth, raw)
	})
}

// fuzzSeeds are the differential test's exchanges (front_test.go) plus a
// few aimed at the fuzz rig's template.
func fuzzSeeds() []string {
	const h, form = rawHost, rawForm
	put, basic := rawPut, rawBasic
	seeds := []string{
		put("/v2/keys/a", "value=1"),
		"GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n",
		put("/v2/keys/b%20c", "value=x+y%26z"),
		put("/v2/keys/q?value=query", "value=body&value=second"),
		put("/v2/keys/a?prevExist=false", "value=2"),
		put("/v2/keys/a?prevValue=1", "value=2"),
		"POST /v2/keys/queue HTTP/1.1\r\n" + h + form + "Content-Length: 7\r\n\r\nvalue=j",
		put("/v2/keys/d", "dir=true"),
		"GET /v2/keys/?recursive=true&sorted=true HTTP/1.1\r\n" + h + "\r\n",
		"DELETE /v2/keys/d?recursive=true HTTP/1.1\r\n" + h + "\r\n",
		"DELETE /v2/keys/a?prevValue=1 HTTP/1.1\r\n" + h + "\r\n",
		put("/v2/keys/t", "value=1&ttl=abc"),
		put("/v2/keys/t", "value=1&ttl=100"),
		put("/v2/keys/e?a=1;b=2", "value=1"),
		put("/v2/keys/p", "value=1") + "GET /v2/keys/p HTTP/1.1\r\n" + h + "\r\n" + "DELETE /v2/keys/p HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/nope HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n",
		"HEAD /v2/keys/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/?wait=true&waitIndex=1&recursive=true HTTP/1.1\r\n" + h + "\r\n" + "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/a?wait=true HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/a//b HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/%zz HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/a HTTP/1.0\r\n\r\n",
		"GET /v2/keys/a HTTP/1.1\r\n\r\n",
		"PUT /v2/keys/c HTTP/1.1\r\n" + h + form + "Transfer-Encoding: chunked\r\n\r\n7\r\nvalue=c\r\n0\r\n\r\n",
		"PUT /v2/keys/c HTTP/1.1\r\n" + h + form + "Expect: 100-continue\r\nContent-Length: 7\r\n\r\nvalue=c",
		"PUT /v2/keys/c HTTP/1.1\r\n" + h + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"GET /version HTTP/1.1\r\n" + h + "\r\n" + "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/a HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n",
		"GET /v2/keys/p/?recursive=true HTTP/1.1\r\n" + h + basic("u:upw") + "\r\n",
		"PUT /v2/keys/p/z HTTP/1.1\r\n" + h + basic("u:upw") + form + "Content-Length: 7\r\n\r\nvalue=z",
		"PUT /v2/keys/a HTTP/1.1\r\n" + h + basic("u:bad") + form + "Content-Length: 7\r\n\r\nvalue=z",
		"GET /v2/auth/users HTTP/1.1\r\n" + h + basic("root:rpw") + "\r\n",
		"DELETE /v2/auth/enable HTTP/1.1\r\n" + h + basic("root:rpw") + "\r\n" + "GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v2/keys/a HTTP/1.1\r\n" + h + "\r\n" + string(h2cPreface),
	}
	return seeds
}
