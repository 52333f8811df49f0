package load

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeV2 is a minimal in-memory stand-in for the etcd v2 keys API, used only
// to test the load generator itself.
type fakeV2 struct {
	mu      sync.Mutex
	kv      map[string]string
	puts    atomic.Int64
	gets    atomic.Int64
	other   atomic.Int64
	conns   atomic.Int64
	delay   time.Duration
	failN   int64 // if > 0, every failN-th request gets 500
	counter atomic.Int64
	badBody atomic.Int64 // PUTs whose value had the wrong size
	valSize int
	user    string // if set, "name:password" required as basic auth (else 401)
}

func newFake(t *testing.T, f *fakeV2) *httptest.Server {
	t.Helper()
	f.kv = map[string]string{}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeV2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.user != "" {
		name, pw, _ := r.BasicAuth()
		if name+":"+pw != f.user {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/v2/keys")
	if !ok {
		f.other.Add(1)
		http.NotFound(w, r)
		return
	}
	if f.failN > 0 && f.counter.Add(1)%f.failN == 0 {
		http.Error(w, `{"errorCode":300,"message":"Raft Internal Error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodPut:
		f.puts.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v := r.PostForm.Get("value")
		if f.valSize > 0 && len(v) != f.valSize {
			f.badBody.Add(1)
		}
		f.mu.Lock()
		_, existed := f.kv[key]
		f.kv[key] = v
		f.mu.Unlock()
		code := http.StatusCreated
		if existed {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"action": "set", "node": map[string]any{"key": key, "value": v}})
	case http.MethodGet:
		f.gets.Add(1)
		f.mu.Lock()
		v, found := f.kv[key]
		f.mu.Unlock()
		if !found {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errorCode":100,"message":"Key not found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"action": "get", "node": map[string]any{"key": key, "value": v}})
	default:
		f.other.Add(1)
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func TestRunExactCounts(t *testing.T) {
	tests := []struct {
		name             string
		putPct, clients  int
		keys             int
		requests         int64
		noPreload        bool
		wantPuts         int64 // -1: don't check split
		wantGets         int64
		wantTotalPutsGet int64
	}{
		{name: "put only, 1 client", putPct: 100, clients: 1, keys: 10, requests: 300, wantPuts: 300, wantGets: 0},
		{name: "put only, 8 clients", putPct: 100, clients: 8, keys: 100, requests: 1000, wantPuts: 1000, wantGets: 0},
		{name: "get only with preload", putPct: 0, clients: 4, keys: 50, requests: 500, wantPuts: 50, wantGets: 500},
		{name: "mixed 30% put", putPct: 30, clients: 16, keys: 64, requests: 2000, wantPuts: -1, wantTotalPutsGet: 64 + 2000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeV2{valSize: 100}
			srv := newFake(t, f)
			res, err := Run(context.Background(), Config{
				Target: srv.URL, Clients: tc.clients, PutPercent: tc.putPct, Keys: tc.keys,
				ValueSize: 100, Requests: tc.requests, Duration: 30 * time.Second, NoPreload: tc.noPreload,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != tc.requests || res.OK != tc.requests || res.Non2xx != 0 || res.Errors != 0 {
				t.Fatalf("result requests/ok/non2xx/errors = %d/%d/%d/%d, want %d all ok (first error %q)",
					res.Requests, res.OK, res.Non2xx, res.Errors, tc.requests, res.FirstError)
			}
			if res.Hist.Count() != tc.requests {
				t.Fatalf("histogram count = %d, want %d", res.Hist.Count(), tc.requests)
			}
			if tc.wantPuts >= 0 {
				if p, g := f.puts.Load(), f.gets.Load(); p != tc.wantPuts || g != tc.wantGets {
					t.Fatalf("server saw %d puts / %d gets, want %d / %d", p, g, tc.wantPuts, tc.wantGets)
				}
			} else if tot := f.puts.Load() + f.gets.Load(); tot != tc.wantTotalPutsGet {
				t.Fatalf("server saw %d requests, want %d", tot, tc.wantTotalPutsGet)
			} else if p := f.puts.Load() - int64(tc.keys); p < 400 || p > 800 {
				t.Fatalf("mixed run issued %d puts of %d, want ~30%%", p, tc.requests)
			}
			if f.other.Load() != 0 || f.badBody.Load() != 0 {
				t.Fatalf("server saw %d unexpected requests, %d bad bodies", f.other.Load(), f.badBody.Load())
			}
			// One keep-alive connection per client, reused for everything.
			if c := f.conns.Load(); c != int64(tc.clients) {
				t.Fatalf("server saw %d connections, want %d (one per client)", c, tc.clients)
			}
			if res.Throughput <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P999 {
				t.Fatalf("implausible stats: %+v", res)
			}
		})
	}
}

func TestRunCountsFailures(t *testing.T) {
	closed := func() string { // a port with nothing listening
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}
	tests := []struct {
		name               string
		fake               *fakeV2
		target             string
		putPct             int
		noPreload          bool
		requests           int64
		wantOK, wantNon2xx int64
		wantErrors         int64
		wantStatus         map[int]int64
	}{
		{name: "get missing keys -> 404", fake: &fakeV2{}, putPct: 0, noPreload: true, requests: 200,
			wantOK: 0, wantNon2xx: 200, wantStatus: map[int]int64{404: 200}},
		{name: "every 4th request 500", fake: &fakeV2{failN: 4}, putPct: 100, requests: 400,
			wantOK: 300, wantNon2xx: 100, wantStatus: map[int]int64{500: 100}},
		{name: "connection refused", target: closed(), putPct: 100, requests: 20, wantErrors: 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if tc.fake != nil {
				target = newFake(t, tc.fake).URL
			}
			res, err := Run(context.Background(), Config{
				Target: target, Clients: 4, PutPercent: tc.putPct, Keys: 10,
				Requests: tc.requests, Duration: 30 * time.Second, NoPreload: tc.noPreload,
				Timeout: 2 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != tc.requests || res.OK != tc.wantOK || res.Non2xx != tc.wantNon2xx || res.Errors != tc.wantErrors {
				t.Fatalf("requests/ok/non2xx/errors = %d/%d/%d/%d, want %d/%d/%d/%d",
					res.Requests, res.OK, res.Non2xx, res.Errors, tc.requests, tc.wantOK, tc.wantNon2xx, tc.wantErrors)
			}
			if res.Hist.Count() != tc.wantOK {
				t.Fatalf("histogram has %d samples, want only the %d successes", res.Hist.Count(), tc.wantOK)
			}
			for code, n := range tc.wantStatus {
				if res.Status[code] != n {
					t.Fatalf("status %d count = %d, want %d (all: %v)", code, res.Status[code], n, res.Status)
				}
			}
			if tc.wantErrors > 0 && res.FirstError == "" {
				t.Fatal("FirstError not set")
			}
		})
	}
}

func TestRunLatencyAndDuration(t *testing.T) {
	f := &fakeV2{delay: 20 * time.Millisecond}
	srv := newFake(t, f)
	var progress strings.Builder
	start := time.Now()
	res, err := Run(context.Background(), Config{
		Target: srv.URL, Clients: 2, PutPercent: 100, Keys: 10,
		Duration: 1200 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Progress: &syncWriter{w: &progress}, ProgressInterval: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("run took %v, want ~1.3s", took)
	}
	if res.Elapsed < 1200*time.Millisecond || res.Elapsed > 2*time.Second {
		t.Fatalf("elapsed %v", res.Elapsed)
	}
	if res.P50 < 20*time.Millisecond || res.P50 > 200*time.Millisecond {
		t.Fatalf("p50 = %v, want >= 20ms handler delay", res.P50)
	}
	// 2 clients * 1.2s / 20ms = at most 120 measured requests; warmup excluded.
	if res.Requests > 122 || res.Requests < 20 {
		t.Fatalf("measured %d requests, want <= 120", res.Requests)
	}
	if total := f.puts.Load(); total <= res.Requests {
		t.Fatalf("server saw %d puts, measured %d: warmup requests missing", total, res.Requests)
	}
	if n := strings.Count(progress.String(), "measure"); n < 3 {
		t.Fatalf("got %d measure progress lines, want >= 3:\n%s", n, progress.String())
	}
}

func TestRunCancel(t *testing.T) {
	srv := newFake(t, &fakeV2{delay: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{Target: srv.URL, Clients: 4, PutPercent: 100, Duration: time.Minute})
	if err == nil || res == nil {
		t.Fatalf("want partial result and error, got %v, %v", res, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancel took %v", took)
	}
	if res.Errors != 0 {
		t.Fatalf("cancelled requests counted as errors: %d", res.Errors)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{Requests: 1}},
		{"bad scheme", Config{Target: "ftp://x", Requests: 1}},
		{"no bound", Config{Target: "http://127.0.0.1:1"}},
		{"put pct", Config{Target: "http://127.0.0.1:1", Requests: 1, PutPercent: 101}},
		{"negative", Config{Target: "http://127.0.0.1:1", Duration: -1}},
		{"user without password", Config{Target: "http://127.0.0.1:1", Requests: 1, User: "root"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestPreload(t *testing.T) {
	f := &fakeV2{}
	srv := newFake(t, f)
	if err := Preload(context.Background(), Config{Target: srv.URL, Clients: 3, Keys: 77, Prefix: "p"}); err != nil {
		t.Fatal(err)
	}
	if len(f.kv) != 77 || f.puts.Load() != 77 {
		t.Fatalf("preloaded %d keys with %d puts, want 77", len(f.kv), f.puts.Load())
	}
	if _, ok := f.kv["/p/k76"]; !ok {
		t.Fatal("key /p/k76 missing")
	}
	bad := newFake(t, &fakeV2{failN: 1})
	if err := Preload(context.Background(), Config{Target: bad.URL, Keys: 5}); err == nil {
		t.Fatal("want preload error on 500")
	}
}

func TestReportFormats(t *testing.T) {
	srv := newFake(t, &fakeV2{})
	res, err := Run(context.Background(), Config{Target: srv.URL, PutPercent: 50, Keys: 5, Requests: 50})
	if err != nil {
		t.Fatal(err)
	}
	var tbl, csvOut, js strings.Builder
	if err := res.WriteTable(&tbl); err != nil || !strings.Contains(tbl.String(), "p99.9") {
		t.Fatalf("table: %v\n%s", err, tbl.String())
	}
	if err := WriteCSV(&csvOut, []string{"x"}, res, res); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(csvOut.String(), "\n"); lines != 3 {
		t.Fatalf("csv has %d lines, want 3", lines)
	}
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal([]byte(js.String()), &back); err != nil || back.Requests != 50 || back.P99 != res.P99 {
		t.Fatalf("json round trip: %v %+v", err, back)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestRunBasicAuth: --user reaches the server on both clients; a wrong
// password shows up as non-2xx answers.
func TestRunBasicAuth(t *testing.T) {
	f := &fakeV2{user: "root:pw"}
	srv := newFake(t, f)
	for _, tc := range []struct {
		name    string
		user    string
		netHTTP bool
		wantOK  int64
	}{
		{"raw", "root:pw", false, 20},
		{"net/http", "root:pw", true, 20},
		{"raw wrong password", "root:bad", false, 0},
		{"net/http no user", "", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), Config{Target: srv.URL, Requests: 20, PutPercent: 100, User: tc.user, NetHTTP: tc.netHTTP, NoPreload: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tc.wantOK || res.Requests != 20 {
				t.Errorf("requests %d, ok %d; want 20, %d", res.Requests, res.OK, tc.wantOK)
			}
		})
	}
}

// TestRunTLS: both clients speak https to a TLS server, one connection
// (one handshake) per client.
func TestRunTLS(t *testing.T) {
	for _, netHTTP := range []bool{false, true} {
		f := &fakeV2{valSize: 10}
		f.kv = map[string]string{}
		srv := httptest.NewUnstartedServer(f)
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				f.conns.Add(1)
			}
		}
		srv.StartTLS()
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		res, err := Run(context.Background(), Config{
			Target: srv.URL, Clients: 2, PutPercent: 50, Keys: 10, ValueSize: 10,
			Requests: 200, Duration: 30 * time.Second, NetHTTP: netHTTP, TLS: &tls.Config{RootCAs: pool},
		})
		srv.Close()
		if err != nil {
			t.Fatalf("net/http=%v: %v", netHTTP, err)
		}
		if res.Requests != 200 || res.OK != 200 || res.Errors != 0 {
			t.Errorf("net/http=%v: %d requests, %d ok, %d errors; want 200, 200, 0", netHTTP, res.Requests, res.OK, res.Errors)
		}
		if n := f.conns.Load(); n != 2 {
			t.Errorf("net/http=%v: %d connections, want 2", netHTTP, n)
		}
	}
}
