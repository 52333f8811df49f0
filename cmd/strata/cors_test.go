package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCORSDefault: like etcd 3.4 (whose --cors defaults to "*"), a
// member started without --cors sends Access-Control-Allow-Origin: * on
// every answer, OPTIONS included (values recorded from etcd 3.4.23);
// --cors limits it to listed origins and an empty --cors turns it off; the
// start-up log says which.
func TestCORSDefault(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		origin  string // sent as Origin, "" for none
		want    string // Access-Control-Allow-Origin, "" for no CORS headers
		logLine string
	}{
		{"default", nil, "", "*", `msg="CORS: Access-Control-Allow-* headers on client responses" origins=*`},
		{"listed origin", []string{"--cors", "http://a.example:80,http://b.example:8080"}, "http://b.example:8080", "http://b.example:8080", `origins=http://a.example:80,http://b.example:8080`},
		{"unlisted origin", []string{"--cors", "http://a.example:80"}, "http://a.example", "", `origins=http://a.example:80`},
		{"off", []string{"--cors="}, "http://a.example:80", "", `msg="CORS off (--cors=''): no Access-Control-Allow-* headers; OPTIONS still answered 200"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, logs := startStrataLogged(t, tc.args...)
			if !strings.Contains(logs.String(), tc.logLine) {
				t.Errorf("start-up log lacks %q:\n%s", tc.logLine, logs)
			}
			for _, req := range []struct{ method, path string }{
				{"OPTIONS", "/v2/keys/a"}, {"OPTIONS", "/health"}, {"PUT", "/v2/keys/a"}, {"GET", "/v2/keys/a"}, {"GET", "/version"},
			} {
				var body io.Reader
				if req.method == "PUT" {
					body = strings.NewReader("value=1")
				}
				r, err := http.NewRequest(req.method, url+req.path, body)
				if err != nil {
					t.Fatal(err)
				}
				if body != nil {
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if tc.origin != "" {
					r.Header.Set("Origin", tc.origin)
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := [3]string{}
				if tc.want != "" {
					want = [3]string{tc.want, "POST, GET, OPTIONS, PUT, DELETE", "accept, content-type, authorization"}
				}
				got := [3]string{resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Methods"), resp.Header.Get("Access-Control-Allow-Headers")}
				if got != want {
					t.Errorf("%s %s: CORS headers %q, want %q", req.method, req.path, got, want)
				}
				if req.method == "OPTIONS" && (resp.StatusCode != 200 || len(b) != 0) {
					t.Errorf("%s %s: %d %q, want 200 and an empty body (etcd)", req.method, req.path, resp.StatusCode, b)
				}
			}
		})
	}
}

// TestCORSConfigFile: etcd reads an empty cors value in a config file
// (quoted or not) as "keep the default *"; a list sets it.
func TestCORSConfigFile(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"cors: ''\n", "*"},
		{"cors:\n", "*"},
		{"cors: 'http://a.example:80,http://b.example:8080'\n", "http://a.example:80,http://b.example:8080"},
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "etcd.yaml")
		if err := os.WriteFile(path, []byte("name: m\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, fs := newFlagSet(io.Discard)
		if _, err := applyConfigFile(fs, path); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := fs.Lookup("cors").Value.String(); got != tc.want {
			t.Errorf("%q: --cors %q, want %q", tc.yaml, got, tc.want)
		}
	}
}
