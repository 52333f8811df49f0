package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startStrata runs the real server in-process (flags, listeners, raft,
// fsync'd log) on a loopback port and returns its client URL.
func startStrata(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	full := append([]string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0", "--log-level", "error"}, args...)
	go func() {
		err := run(ctx, full, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`on (http://[0-9.:]+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no URL in ready line %q", line)
	}
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
	return m[1]
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
