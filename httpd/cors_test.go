package httpd

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-kv/strata/engine"
)

// Recorded from etcd 3.4.23 (`etcd --enable-v2=true`, curl -i): the
// values of its CORS headers, and the Allow header of each endpoint's 405.
const (
	etcdCORSMethods = "POST, GET, OPTIONS, PUT, DELETE"
	etcdCORSHeaders = "accept, content-type, authorization"
)

// TestCORSAndMethodsMatchEtcd replays requests whose answers were
// recorded from etcd 3.4.23 against the lean path and net/http alone:
// OPTIONS on every endpoint (200, empty, CORS headers when the origin is
// allowed, also with CORS off and on unclean paths), 405s with etcd's
// Allow text, and CORS on ordinary answers, for `--cors` left at etcd's
// default "*", set to two origins, and off.
func TestCORSAndMethodsMatchEtcd(t *testing.T) {
	type want struct {
		status int
		allow  string // "" means absent
		origin string // Access-Control-Allow-Origin; "" means no CORS headers at all
		body   *string
	}
	empty, notAllowed := "", "Method Not Allowed\n"
	opt := func(origin string) want { return want{status: 200, origin: origin, body: &empty} }
	m405 := func(allow, origin string) want {
		return want{status: 405, allow: allow, origin: origin, body: &notAllowed}
	}
	type tc struct {
		method, path string
		origins      []string // Origin header lines sent
		want         want
		fast         bool // answered by the lean path
	}
	everyEndpoint := []string{"/v2/keys", "/v2/keys/", "/v2/keys/a", "/v2/members", "/v2/members/x", "/v2/stats/self",
		"/v2/stats/leader", "/v2/stats/store", "/v2/machines", "/version", "/health", "/v2/auth/enable",
		"/v2/auth/users", "/v2/auth/users/x", "/v2/auth/roles", "/v2/auth/roles/x", "/metrics", "/nope",
		"/v2/keys//a/../b", "/v2/keys/a?wait=true"}
	star := []tc{
		{"GET", "/v2/keys/a", nil, want{status: 200, origin: "*"}, true},
		{"PUT", "/v2/keys/b", nil, want{status: 201, origin: "*"}, true},
		{"GET", "/v2/keys/a", []string{"http://o.example"}, want{status: 200, origin: "*"}, true},
		{"GET", "/version", nil, want{status: 200, origin: "*"}, false},
		{"GET", "/nope", nil, want{status: 404, origin: "*"}, false},
		{"PATCH", "/v2/keys/a", nil, m405("HEAD,GET,PUT,POST,DELETE", "*"), false},
		{"TRACE", "/v2/keys/a", nil, m405("HEAD,GET,PUT,POST,DELETE", "*"), false},
		{"PATCH", "/v2/members", nil, m405("GET,POST,DELETE,PUT", "*"), false},
		{"PATCH", "/v2/members/x", nil, m405("GET,POST,DELETE,PUT", "*"), false},
		{"POST", "/v2/stats/self", nil, m405("GET", "*"), false},
		{"PUT", "/v2/stats/leader", nil, m405("GET", "*"), false},
		{"DELETE", "/v2/stats/store", nil, m405("GET", "*"), false},
		{"HEAD", "/v2/stats/self", nil, want{status: 405, allow: "GET", origin: "*"}, false},
		{"POST", "/v2/machines", nil, m405("GET,HEAD", "*"), false},
		{"PATCH", "/version", nil, m405("GET", "*"), false},
		{"HEAD", "/version", nil, want{status: 405, allow: "GET", origin: "*"}, false},
		{"POST", "/health", nil, m405("GET", "*"), false},
		{"HEAD", "/health", nil, want{status: 405, allow: "GET", origin: "*"}, false},
		{"POST", "/v2/auth/enable", nil, m405("GET,PUT,DELETE", "*"), false},
		{"POST", "/v2/auth/users", nil, m405("GET", "*"), false},
		{"POST", "/v2/auth/users/x", nil, m405("GET,PUT,DELETE", "*"), false},
		{"PATCH", "/v2/auth/roles", nil, m405("GET", "*"), false},
		{"PATCH", "/v2/auth/roles/x", nil, m405("GET,PUT,DELETE", "*"), false},
		{"PATCH", "/metrics", nil, want{status: 200, origin: "*"}, false}, // etcd's promhttp answers any method
	}
	for _, p := range everyEndpoint {
		star = append(star, tc{"OPTIONS", p, nil, opt("*"), false})
	}
	// etcd --cors=http://a.example:80,http://b.example:8080
	two := []tc{
		{"OPTIONS", "/v2/keys/a", nil, opt(""), false},
		{"OPTIONS", "/v2/keys/a", []string{"http://a.example:80"}, opt("http://a.example:80"), false},
		{"OPTIONS", "/v2/keys/a", []string{"http://a.example"}, opt(""), false},
		{"OPTIONS", "/v2/keys/a", []string{"http://b.example:8080"}, opt("http://b.example:8080"), false},
		{"OPTIONS", "/v2/keys/a", []string{"http://c.example:80"}, opt(""), false},
		{"GET", "/version", nil, want{status: 200}, false},
		{"GET", "/version", []string{"http://a.example:80"}, want{status: 200, origin: "http://a.example:80"}, false},
		{"GET", "/version", []string{"http://b.example:8080"}, want{status: 200, origin: "http://b.example:8080"}, false},
		{"GET", "/version", []string{"http://c.example:80"}, want{status: 200}, false},
		{"GET", "/version", []string{"http://c.example:80", "http://a.example:80"}, want{status: 200}, false}, // the first decides
		{"GET", "/v2/keys/a", []string{"http://a.example:80"}, want{status: 200, origin: "http://a.example:80"}, true},
		{"GET", "/v2/keys/a", []string{"http://c.example:80"}, want{status: 200}, true},
		{"GET", "/v2/keys/a", []string{"http://c.example:80", "http://a.example:80"}, want{status: 200}, true},
		{"GET", "/v2/keys/a", nil, want{status: 200}, true},
		{"PATCH", "/v2/keys/a", []string{"http://b.example:8080"}, m405("HEAD,GET,PUT,POST,DELETE", "http://b.example:8080"), false},
	}
	// CORS off (Strata's --cors=''): OPTIONS is still answered.
	off := []tc{
		{"GET", "/v2/keys/a", []string{"http://a.example:80"}, want{status: 200}, true},
		{"PATCH", "/v2/keys/a", nil, m405("HEAD,GET,PUT,POST,DELETE", ""), false},
		{"PATCH", "/version", nil, m405("GET", ""), false},
	}
	for _, p := range everyEndpoint {
		off = append(off, tc{"OPTIONS", p, []string{"http://a.example:80"}, opt(""), false})
	}
	configs := []struct {
		name  string
		cors  []string
		cases []tc
	}{
		{"cors=*", []string{"*"}, star},
		{"cors=a,b", []string{"http://a.example:80", "http://b.example:8080"}, two},
		{"cors off", nil, off},
	}
	for _, cfg := range configs {
		for _, lean := range []bool{true, false} {
			st := newEngineStore(t)
			if _, err := st.Propose(t.Context(), setCommand("/a", "1")); err != nil {
				t.Fatal(err)
			}
			addr, front := serveConfig(t, lean, Config{CORS: cfg.cors, Metrics: prometheus.NewRegistry()}, st, 0)
			// A fresh connection each: one handed to net/http stays there.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for _, c := range cfg.cases {
				name := cfg.name + map[bool]string{true: " lean: ", false: " net/http: "}[lean] + c.method + " " + c.path + " " + strings.Join(c.origins, "+")
				var body io.Reader
				if c.method == "PUT" {
					body = strings.NewReader("value=2")
				}
				req, err := http.NewRequest(c.method, "http://"+addr+c.path, body)
				if err != nil {
					t.Fatal(err)
				}
				if body != nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if c.origins != nil {
					req.Header["Origin"] = c.origins
				}
				var before uint64
				if front != nil {
					before = front.fastServed.Load()
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				h := resp.Header
				if resp.StatusCode != c.want.status {
					t.Errorf("%s: status %d, want %d (%s)", name, resp.StatusCode, c.want.status, b)
				}
				if got := strings.Join(h.Values("Allow"), "|"); got != c.want.allow {
					t.Errorf("%s: Allow %q, want %q", name, got, c.want.allow)
				}
				wantCORS := [3]string{}
				if c.want.origin != "" {
					wantCORS = [3]string{c.want.origin, etcdCORSMethods, etcdCORSHeaders}
				}
				gotCORS := [3]string{
					strings.Join(h.Values("Access-Control-Allow-Origin"), "|"),
					strings.Join(h.Values("Access-Control-Allow-Methods"), "|"),
					strings.Join(h.Values("Access-Control-Allow-Headers"), "|"),
				}
				if gotCORS != wantCORS {
					t.Errorf("%s: Access-Control-Allow-Origin/Methods/Headers %q, want %q", name, gotCORS, wantCORS)
				}
				if c.want.body != nil && string(b) != *c.want.body {
					t.Errorf("%s: body %q, want %q", name, b, *c.want.body)
				}
				if c.method == "OPTIONS" && h.Get("Content-Type") != "" {
					t.Errorf("%s: Content-Type %q on OPTIONS, etcd sends none", name, h.Get("Content-Type"))
				}
				if front != nil {
					if fast := front.fastServed.Load() - before; fast != map[bool]uint64{true: 1, false: 0}[c.fast] {
						t.Errorf("%s: lean path answered %d, want fast=%v", name, fast, c.fast)
					}
				}
			}
		}
	}
}

// With CORS on, lean answers are byte for byte net/http's (Date aside).
func TestCORSLeanMatchesNetHTTP(t *testing.T) {
	const form = "Content-Type: application/x-www-form-urlencoded\r\n"
	reqs := []string{
		"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\n" + form + "Content-Length: 7\r\n\r\nvalue=1",
		"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example:80\r\n\r\n",
		"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\norigin:  http://a.example:80 \r\n\r\n",
		"GET /v2/keys/a HTTP/1.1\r\nHost: x\r\nOrigin: http://c.example:80\r\nOrigin: http://a.example:80\r\n\r\n",
		"GET /v2/keys/nope HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example:80\r\n\r\n",
		"DELETE /v2/keys/a HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example:80\r\n\r\n",
	}
	for _, cors := range [][]string{{"*"}, {"http://a.example:80"}, nil} {
		leanAddr, front := serveConfig(t, true, Config{CORS: cors}, newEngineStore(t), 0)
		plainAddr, _ := serveConfig(t, false, Config{CORS: cors}, newEngineStore(t), 0)
		for _, raw := range reqs {
			got, want := exchange(t, leanAddr, raw, 1), exchange(t, plainAddr, raw, 1)
			if got != want {
				t.Errorf("cors %q: %q: responses differ\nlean:\n%s\nnet/http:\n%s", cors, raw, got, want)
			}
		}
		if n := front.fastServed.Load(); n != uint64(len(reqs)) {
			t.Errorf("cors %q: lean path answered %d of %d", cors, n, len(reqs))
		}
	}
}

func setCommand(p, v string) engine.Command {
	return engine.Command{Op: engine.OpSet, Path: p, Value: v}
}
