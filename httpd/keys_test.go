package httpd

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
)

// TestCommandMapping: which store operation a request becomes, exactly as
// etcd's v2 applier decides it.
func TestCommandMapping(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		method, target, body string
		want                 engine.Command
	}{
		{"PUT", "/v2/keys/a", "value=1", engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"}},
		{"PUT", "/v2/keys/a?prevExist=true", "value=1", engine.Command{Op: engine.OpUpdate, Path: "/a", Value: "1"}},
		{"PUT", "/v2/keys/a?prevExist=true&prevValue=x", "value=1", engine.Command{Op: engine.OpCAS, Path: "/a", Value: "1", PrevValue: "x"}},
		{"PUT", "/v2/keys/a?prevExist=false", "value=1", engine.Command{Op: engine.OpCreate, Path: "/a", Value: "1"}},
		{"PUT", "/v2/keys/a?prevExist=false&prevIndex=3", "value=1", engine.Command{Op: engine.OpCreate, Path: "/a", Value: "1", PrevIndex: 3}},
		{"PUT", "/v2/keys/a?prevIndex=3", "value=1", engine.Command{Op: engine.OpCAS, Path: "/a", Value: "1", PrevIndex: 3}},
		{"PUT", "/v2/keys/a?prevIndex=0", "value=1", engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"}},
		{"PUT", "/v2/keys/a/", "dir=true&ttl=5", engine.Command{Op: engine.OpSet, Path: "/a", Dir: true, Expiration: now.Add(5 * time.Second).UnixNano()}},
		{"PUT", "/v2/keys/a", "ttl=5&refresh=true&prevExist=true", engine.Command{Op: engine.OpUpdate, Path: "/a", Refresh: true, Expiration: now.Add(5 * time.Second).UnixNano()}},
		{"POST", "/v2/keys/q", "value=j", engine.Command{Op: engine.OpCreate, Path: "/q", Value: "j", Unique: true}},
		{"DELETE", "/v2/keys/d?recursive=true", "", engine.Command{Op: engine.OpDelete, Path: "/d", Recursive: true}},
		{"DELETE", "/v2/keys/d?prevValue=v", "", engine.Command{Op: engine.OpCAD, Path: "/d", PrevValue: "v"}},
		// Body fields win over the query string; the first of repeated fields wins.
		{"PUT", "/v2/keys/a?value=q", "value=b&value=c", engine.Command{Op: engine.OpSet, Path: "/a", Value: "b"}},
		// DELETE bodies are not parsed (Go's ParseForm, as etcd).
		{"DELETE", "/v2/keys/a", "prevValue=x", engine.Command{Op: engine.OpDelete, Path: "/a"}},
	}
	s := New(Config{}, nil, nil)
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		kr, err := s.parseKeyRequest(r)
		if err != nil {
			t.Fatalf("%s %s %s: %v", tc.method, tc.target, tc.body, err)
		}
		if got := kr.command(now); got != tc.want {
			t.Errorf("%s %s %s:\n got %+v\nwant %+v", tc.method, tc.target, tc.body, got, tc.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v2/keys/a//b": "/v2/keys/a/b", "/v2/keys/./a": "/v2/keys/a", "/v2/keys/a/../b/": "/v2/keys/b/",
		"/v2/keys/": "/v2/keys/", "": "/", "v2": "/v2",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	rec := httptest.NewRecorder()
	cleanPaths(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/v2/keys/a//b?x=1", nil))
	if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "/v2/keys/a/b?x=1" {
		t.Fatalf("redirect %d %q", rec.Code, rec.Header().Get("Location"))
	}
}
