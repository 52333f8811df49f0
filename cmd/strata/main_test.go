package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRun runs the real server in-process (flags, listeners, raft, fsync'd
// log) with exactly args, its log written to log, and returns the bound
// client URL and the stdout lines before the ready line. The server is
// stopped, and must exit cleanly, when the test ends.
func startRun(t *testing.T, log io.Writer, args []string) (base string, before []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, log)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			cancel()
			kept := ""
			if s, ok := log.(fmt.Stringer); ok {
				kept = s.String()
			}
			t.Fatalf("server did not start: %v (run: %v)\n%s", err, <-done, kept)
		}
		if m := readyURL.FindStringSubmatch(line); m != nil {
			base = m[1]
			break
		}
		before = append(before, line)
	}
	go io.Copy(io.Discard, br)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not shut down within 10s")
		}
	})
	return base, before
}

var readyURL = regexp.MustCompile(`ready to serve client requests on (https?://[0-9.:]+)`)

// startStrata is startRun on a fresh data dir and a loopback port, errors
// logged only; it returns the client URL.
func startStrata(t *testing.T, args ...string) string {
	t.Helper()
	base, _ := startRun(t, io.Discard, append([]string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0", "--log-level", "error"}, args...))
	return base
}

// startStrataLog is startRun on a fresh data dir with the Info log kept;
// args name the client URLs (any scheme).
func startStrataLog(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	base, _ := startRun(t, logs, append([]string{"--data-dir", t.TempDir(), "--log-level", "info"}, args...))
	return base, logs
}

// startStrataLogged is startStrataLog on a loopback http port.
func startStrataLogged(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	return startStrataLog(t, append([]string{"--listen-client-urls", "http://127.0.0.1:0"}, args...)...)
}

// startLogged is startRun on a loopback http port, logging to log.
func startLogged(t *testing.T, log io.Writer, args ...string) (base string, before []string) {
	t.Helper()
	return startRun(t, log, append([]string{"--listen-client-urls", "http://127.0.0.1:0"}, args...))
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "nosuch"}, `unknown backend "nosuch"`},
		{[]string{"--listen-client-urls", "127.0.0.1:2379"}, "is not a valid http(s)://host:port URL"},
		{[]string{"--initial-cluster-state", "maybe"}, "must be new or existing"},
		{[]string{"--snapshot-count", "x"}, "invalid value"},
		{[]string{"stray"}, `unexpected argument "stray"`},
	}
	for _, tc := range cases {
		var stderr strings.Builder
		args := append([]string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0"}, tc.args...)
		if tc.args[0] == "--listen-client-urls" {
			args = append([]string{"--data-dir", t.TempDir()}, tc.args...)
		}
		err := run(context.Background(), args, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("%v: got %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

func TestDataDirLockedAndPortInUse(t *testing.T) {
	dir := t.TempDir()
	url := startStrata(t, "--data-dir", dir)
	err := run(context.Background(), []string{"--data-dir", dir, "--listen-client-urls", "http://127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second member on the same data dir: %v", err)
	}
	err = run(context.Background(), []string{"--data-dir", t.TempDir(), "--listen-client-urls", url}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second member on the same port: %v", err)
	}
}

// TestSelfStatsWarnsWithoutFsync: /v2/stats/self carries etcd's fields,
// plus "unsafeNoFsync": true only when the log is not fsync'd.
func TestSelfStatsWarnsWithoutFsync(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"--unsafe-no-fsync"}, true}} {
		url := startStrata(t, tc.args...)
		resp, err := http.Get(url + "/v2/stats/self")
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		_, has := st["unsafeNoFsync"]
		if has != tc.want || st["state"] != "StateLeader" || len(st) != 7+map[bool]int{true: 1}[tc.want] {
			t.Fatalf("%v: /v2/stats/self = %v", tc.args, st)
		}
	}
}
