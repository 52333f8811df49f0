package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"action":"set"}`)
	}))
	defer srv.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"table", []string{"--requests", "40", "--clients", "2"}, 0, "requests    40 (ok 40"},
		{"csv", []string{"--requests", "10", "--csv", "--label", "L"}, 0, "\nL," + srv.URL + ",1,100,"},
		{"json mixed", []string{"--requests", "10", "--json", "--workload", "mixed", "--put-pct", "30"}, 0, `"put_percent": 30`},
		{"non-2xx exits 1", []string{"--requests", "5", "--target", bad.URL}, 1, "non-2xx     503×5"},
		{"bad workload", []string{"--workload", "del"}, 2, ""},
		{"csv and json", []string{"--csv", "--json"}, 2, ""},
		{"extra args", []string{"foo"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			args := append([]string{"--target", srv.URL, "--warmup", "0", "--quiet"}, tc.args...)
			if code := run(args, &out, &errOut); code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("stdout lacks %q:\n%s", tc.wantOut, out.String())
			}
		})
	}
}
