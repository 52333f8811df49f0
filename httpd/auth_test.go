package httpd

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const noAuth = `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}` + "\n"

// authStep is one request of an auth scenario and its exact answer.
type authStep struct {
	name   string
	method string
	target string // path and query
	user   string // "name:password" for basic auth, "" for none
	body   string // form for /v2/keys, JSON for /v2/auth
	status int
	want   string
}

// runAuthSteps sends the steps in order to addr and checks status and body.
func runAuthSteps(t *testing.T, addr string, steps []authStep) {
	t.Helper()
	for _, s := range steps {
		req, err := http.NewRequest(s.method, "http://"+addr+s.target, strings.NewReader(s.body))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.body != "" && strings.HasPrefix(s.target, "/v2/keys") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if name, pw, ok := strings.Cut(s.user, ":"); ok {
			req.SetBasicAuth(name, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: read body: %v", s.name, err)
		}
		if resp.StatusCode != s.status || string(b) != s.want {
			t.Errorf("%s: %s %s as %q:\n got %d %q\nwant %d %q", s.name, s.method, s.target, s.user, resp.StatusCode, b, s.status, s.want)
		}
	}
}

// TestAuthKeysAccess drives a whole auth scenario through the API, on the
// lean path and on net/http alone, over a real engine.
func TestAuthKeysAccess(t *testing.T) {
	steps := []authStep{
		{"seed /foo/a", "PUT", "/v2/keys/foo/a", "", "value=1", 201, `{"action":"set","node":{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n"},
		{"seed /foobar", "PUT", "/v2/keys/foobar", "", "value=2", 201, `{"action":"set","node":{"key":"/foobar","value":"2","modifiedIndex":2,"createdIndex":2}}` + "\n"},
		{"enable without root", "PUT", "/v2/auth/enable", "", "", 409, `{"message":"auth: No root user available, please create one"}`},
		{"create root", "PUT", "/v2/auth/users/root", "", `{"user":"root","password":"rpw"}`, 201, `{"user":"root","roles":["root"]}` + "\n"},
		{"create role", "PUT", "/v2/auth/roles/foo", "", `{"role":"foo","permissions":{"kv":{"read":["/foo/*"],"write":["/foo/*"]}}}`, 201, `{"role":"foo","permissions":{"kv":{"read":["/foo/*"],"write":["/foo/*"]}}}` + "\n"},
		{"create alice", "PUT", "/v2/auth/users/alice", "", `{"user":"alice","password":"apw","roles":["foo"]}`, 200, `{"user":"alice","roles":["foo"]}` + "\n"},
		{"enable", "PUT", "/v2/auth/enable", "", "", 200, ""},
		{"status", "GET", "/v2/auth/enable", "", "", 200, `{"enabled":true}` + "\n"},
		{"users need root", "GET", "/v2/auth/users", "", "", 401, `{"message":"Insufficient credentials"}`},
		{"users as alice", "GET", "/v2/auth/users", "alice:apw", "", 401, `{"message":"Insufficient credentials"}`},
		{"guest may still write", "PUT", "/v2/keys/g", "", "value=g", 201, `{"action":"set","node":{"key":"/g","value":"g","modifiedIndex":8,"createdIndex":8}}` + "\n"},
		{"restrict guest", "PUT", "/v2/auth/roles/guest", "root:rpw", `{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}`, 200, `{"role":"guest","permissions":{"kv":{"read":[],"write":[]}}}` + "\n"},
		{"guest read refused", "GET", "/v2/keys/foo/a", "", "", 401, noAuth},
		{"guest write refused", "PUT", "/v2/keys/foo/a", "", "value=x", 401, noAuth},
		{"guest watch refused", "GET", "/v2/keys/foo/a?wait=true&waitIndex=1", "", "", 401, noAuth},
		{"alice reads /foo/a", "GET", "/v2/keys/foo/a", "alice:apw", "", 200, `{"action":"get","node":{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n"},
		{"alice writes /foo/b", "PUT", "/v2/keys/foo/b", "alice:apw", "value=3", 201, `{"action":"set","node":{"key":"/foo/b","value":"3","modifiedIndex":10,"createdIndex":10}}` + "\n"},
		{"/foo/* is not /foobar (read)", "GET", "/v2/keys/foobar", "alice:apw", "", 401, noAuth},
		{"/foo/* is not /foobar (write)", "PUT", "/v2/keys/foobar", "alice:apw", "value=x", 401, noAuth},
		{"/foo/* is not /foo", "GET", "/v2/keys/foo", "alice:apw", "", 401, noAuth},
		{"/foo/* lists /foo/", "GET", "/v2/keys/foo/?recursive=true", "alice:apw", "", 200, `{"action":"get","node":{"key":"/foo","dir":true,"nodes":[{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1},{"key":"/foo/b","value":"3","modifiedIndex":10,"createdIndex":10}],"modifiedIndex":1,"createdIndex":1}}` + "\n"},
		{"wrong password", "GET", "/v2/keys/foo/a", "alice:nope", "", 401, noAuth},
		{"unknown user", "GET", "/v2/keys/foo/a", "mallory:apw", "", 401, noAuth},
		{"recursive get of / refused", "GET", "/v2/keys/?recursive=true", "alice:apw", "", 401, noAuth},
		{"get of / refused", "GET", "/v2/keys/", "alice:apw", "", 401, noAuth},
		{"recursive watch of / refused", "GET", "/v2/keys/?wait=true&recursive=true&waitIndex=1", "alice:apw", "", 401, noAuth},
		{"recursive delete of / refused", "DELETE", "/v2/keys/?recursive=true&dir=true", "alice:apw", "", 401, noAuth},
		{"watch below /foo/", "GET", "/v2/keys/foo/?wait=true&recursive=true&waitIndex=2", "alice:apw", "", 200, `{"action":"set","node":{"key":"/foo/b","value":"3","modifiedIndex":10,"createdIndex":10}}` + "\n"},
		{"root lists / without auth data", "GET", "/v2/keys/?recursive=true", "root:rpw", "", 200, `{"action":"get","node":{"dir":true,"nodes":[{"key":"/foo","dir":true,"nodes":[{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1},{"key":"/foo/b","value":"3","modifiedIndex":10,"createdIndex":10}],"modifiedIndex":1,"createdIndex":1},{"key":"/foobar","value":"2","modifiedIndex":2,"createdIndex":2},{"key":"/g","value":"g","modifiedIndex":8,"createdIndex":8}]}}` + "\n"},
		{"root's watch from history skips auth writes", "GET", "/v2/keys/?wait=true&recursive=true&waitIndex=3", "root:rpw", "", 200, `{"action":"set","node":{"key":"/g","value":"g","modifiedIndex":8,"createdIndex":8}}` + "\n"},
		{"password change", "PUT", "/v2/auth/users/alice", "root:rpw", `{"user":"alice","password":"new"}`, 200, `{"user":"alice","roles":["foo"]}` + "\n"},
		{"old password refused at once", "GET", "/v2/keys/foo/a", "alice:apw", "", 401, noAuth},
		{"new password", "GET", "/v2/keys/foo/a", "alice:new", "", 200, `{"action":"get","node":{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n"},
		{"revoke role", "PUT", "/v2/auth/users/alice", "root:rpw", `{"user":"alice","revoke":["foo"]}`, 200, `{"user":"alice","roles":[]}` + "\n"},
		{"revoked at once", "GET", "/v2/keys/foo/a", "alice:new", "", 401, noAuth},
		{"grant role", "PUT", "/v2/auth/users/alice", "root:rpw", `{"user":"alice","grant":["foo"]}`, 200, `{"user":"alice","roles":["foo"]}` + "\n"},
		{"granted at once", "GET", "/v2/keys/foo/a", "alice:new", "", 200, `{"action":"get","node":{"key":"/foo/a","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n"},
		{"narrow the role", "PUT", "/v2/auth/roles/foo", "root:rpw", `{"role":"foo","revoke":{"kv":{"write":["/foo/*"]}}}`, 200, `{"role":"foo","permissions":{"kv":{"read":["/foo/*"],"write":[]}}}` + "\n"},
		{"read-only now", "PUT", "/v2/keys/foo/a", "alice:new", "value=x", 401, noAuth},
		{"delete alice", "DELETE", "/v2/auth/users/alice", "root:rpw", "", 200, ""},
		{"deleted user refused at once", "GET", "/v2/keys/foo/a", "alice:new", "", 401, noAuth},
		{"root cannot go while enabled", "DELETE", "/v2/auth/users/root", "root:rpw", "", 403, `{"message":"auth: Cannot delete root user while auth is enabled."}`},
		// The auth data cannot be reached through /v2/keys by any spelling.
		{"escaped NUL", "GET", "/v2/keys/_auth%00/users?recursive=true", "root:rpw", "", 400, `{"errorCode":209,"message":"Invalid field","cause":"key contains a NUL byte","index":0}` + "\n"},
		{"escaped NUL write", "PUT", "/v2/keys/_auth%00/enabled", "root:rpw", "value=false", 400, `{"errorCode":209,"message":"Invalid field","cause":"key contains a NUL byte","index":0}` + "\n"},
		{"escaped NUL delete", "DELETE", "/v2/keys/_auth%00?recursive=true", "root:rpw", "", 400, `{"errorCode":209,"message":"Invalid field","cause":"key contains a NUL byte","index":0}` + "\n"},
		{"escaped NUL watch", "GET", "/v2/keys/_auth%00?wait=true&recursive=true", "root:rpw", "", 400, `{"errorCode":209,"message":"Invalid field","cause":"key contains a NUL byte","index":0}` + "\n"},
		{"without the NUL it is another key", "GET", "/v2/keys/_auth", "root:rpw", "", 404, `{"errorCode":100,"message":"Key not found","cause":"/_auth","index":15}` + "\n"},
		{"disable", "DELETE", "/v2/auth/enable", "root:rpw", "", 200, ""},
		{"guest again", "GET", "/v2/keys/foobar", "", "", 200, `{"action":"get","node":{"key":"/foobar","value":"2","modifiedIndex":2,"createdIndex":2}}` + "\n"},
	}
	for _, lean := range []bool{true, false} {
		name := "net/http"
		if lean {
			name = "lean"
		}
		t.Run(name, func(t *testing.T) {
			addr, front := serve(t, lean)
			runAuthSteps(t, addr, steps)
			if lean && front.fastServed.Load() == 0 {
				t.Error("the lean path answered no request")
			}
		})
	}
}
