package loadclient

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnDo sends requests over one kept-alive connection to a real
// loopback server and checks what each carried and returned.
func TestConnDo(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pw, _ := r.BasicAuth()
		w.Header().Set("X-Etcd-Index", "42")
		if r.Method == http.MethodPut && (string(body) != "value=x" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if user != "root" || pw != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/keys/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		io.WriteString(w, strings.Repeat("b", 100))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewConn(srv.URL, time.Second, nil, "root:pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "/v2/keys/a", "value=x", 200},
		{"GET", "/v2/keys/a", "", 200},
		{"GET", "/v2/keys/missing", "", 404},
	} {
		code, idx, err := c.Do(ctx, tc.method, tc.path, tc.body)
		if err != nil || code != tc.code || idx != 42 {
			t.Errorf("%s %s: %d, index %d, %v; want %d, index 42", tc.method, tc.path, code, idx, err, tc.code)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 kept alive", n)
	}
	if _, err := NewConn(srv.URL, time.Second, nil, "nopassword"); err == nil {
		t.Error("user without a password: no error")
	}
	if _, err := NewConn("ftp://x", time.Second, nil, ""); err == nil {
		t.Error("ftp target: no error")
	}
}
