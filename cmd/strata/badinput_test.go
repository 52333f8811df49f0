package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends bytes as written (no client-side cleaning or escaping)
// and returns the status line's code and the body.
func rawRequest(t *testing.T, base, req string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { io.WriteString(conn, req) }() // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP answer (dropped connection?): %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadInput(t *testing.T) {
	base := startStrata(t, "--max-request-bytes", "65536")
	form := func(method, target, body string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, target, len(body), body)
	}
	manyHeaders := "GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 500) + "Connection: close\r\n\r\n"
	cases := []struct {
		name   string
		req    string
		status int
		body   string // substring
	}{
		{"body over --max-request-bytes", form("PUT", "/v2/keys/big", "value="+strings.Repeat("x", 70000)), 413,
			`{"errorCode":210,"message":"Invalid POST form","cause":"request body too large","index":0}`},
		{"invalid escape in query", form("PUT", "/v2/keys/k?prevValue=%zz", "value=1"), 400, `"errorCode":210`},
		{"invalid escape in path", "GET /v2/keys/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, ""},
		{"key not UTF-8", form("PUT", "/v2/keys/a%ffb", "value=1"), 400, `"cause":"key is not valid UTF-8"`},
		{"NUL in key", form("PUT", "/v2/keys/a%00b", "value=1"), 400, `"cause":"key contains a NUL byte"`},
		{"value not UTF-8", form("PUT", "/v2/keys/v", "value=%ff"), 400, `"cause":"value is not valid UTF-8"`},
		{"dot-dot is redirected, not written", form("PUT", "/v2/keys/a/../../etc", "value=1"), 307, ""},
		{"encoded dot-dot is redirected", form("PUT", "/v2/keys/a/%2e%2e/b", "value=1"), 307, ""},
		{"TTL too large", form("PUT", "/v2/keys/t", "value=1&ttl=99999999999999"), 400, `"errorCode":202`},
		{"TTL overflows uint64", form("PUT", "/v2/keys/t", "value=1&ttl=99999999999999999999999"), 400, `"errorCode":202`},
		{"prevIndex overflows", form("PUT", "/v2/keys/t?prevIndex=99999999999999999999999", "value=1"), 400, `"errorCode":203`},
		{"key too long", form("PUT", "/v2/keys/"+strings.Repeat("k", 9000), "value=1"), 400, `"cause":"key is longer than 8192 bytes"`},
		{"long request line", "GET /v2/keys/" + strings.Repeat("a", 70000) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414, ""},
		{"request line over the header cap", "GET /v2/keys/" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 431, ""},
		{"many headers", manyHeaders, 431, ""},
		{"unknown method", "BREW /v2/keys/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "Method Not Allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawRequest(t, base, tc.req)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", status, body, tc.status, tc.body)
			}
		})
	}
	// None of it wrote anything.
	status, body := rawRequest(t, base, "GET /v2/keys/?recursive=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if status != 200 || body != "{\"action\":\"get\",\"node\":{\"dir\":true}}\n" {
		t.Fatalf("store after bad input: %d %s", status, body)
	}
}

// TestSlowHeadersAreCutOff: a client that never finishes its headers is
// disconnected after --read-header-timeout, not held forever.
func TestSlowHeadersAreCutOff(t *testing.T) {
	base := startStrata(t, "--read-header-timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n") // and nothing more
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection was not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}
