package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const etcdctlPath = "/usr/bin/etcdctl"

// TestAuthEtcdctl drives the v2 auth API through etcd's own etcdctl (API
// v2) against a real Strata member: users, roles, grants and revokes,
// enabling auth, a limited user refused outside its patterns (/foo/* does
// not grant /foobar, no recursive listing of /), a password change,
// revoked role and deleted user effective at once, a wrong password
// refused. The expected outputs were recorded from etcd 3.4.23 running the
// same commands; they must match byte for byte.
func TestAuthEtcdctl(t *testing.T) {
	if _, err := os.Stat(etcdctlPath); err != nil {
		t.Skipf("%s not installed: %v", etcdctlPath, err)
	}
	url := startStrata(t)
	steps := []struct {
		args   []string
		stdin  string
		rc     int
		stdout string
		stderr string
	}{
		{[]string{"user", "add", "root:rpw"}, "", 0, `User root created
`, ""},
		{[]string{"role", "add", "foo"}, "", 0, `Role foo created
`, ""},
		{[]string{"role", "grant", "foo", "--path", "/foo/*", "--readwrite"}, "", 0, `Role foo updated
`, ""},
		{[]string{"role", "grant", "foo", "--path", "/ro", "--read"}, "", 0, `Role foo updated
`, ""},
		{[]string{"role", "get", "foo"}, "", 0, `Role: foo
KV Read:
	/foo/*
	/ro
KV Write:
	/foo/*
`, ""},
		{[]string{"user", "add", "alice:apw"}, "", 0, `User alice created
`, ""},
		{[]string{"user", "grant", "alice", "--roles", "foo"}, "", 0, `User alice updated
`, ""},
		{[]string{"user", "get", "alice"}, "", 0, `User: alice
Roles:  foo
`, ""},
		{[]string{"user", "list"}, "", 0, `alice
root
`, ""},
		{[]string{"role", "list"}, "", 0, `foo
root
`, ""},
		{[]string{"set", "/foo/a", "1"}, "", 0, `1
`, ""},
		{[]string{"set", "/foobar", "2"}, "", 0, `2
`, ""},
		{[]string{"set", "/ro", "x"}, "", 0, `x
`, ""},
		{[]string{"auth", "enable"}, "", 0, `Authentication Enabled
`, ""},
		{[]string{"role", "list"}, "", 1, "", `unexpected status code 401
`},
		{[]string{"--username", "root:rpw", "role", "list"}, "", 0, `foo
guest
root
`, ""},
		{[]string{"--username", "root:rpw", "role", "revoke", "guest", "--path", "/*", "--readwrite"}, "", 0, `Role guest updated
`, ""},
		{[]string{"get", "/foo/a"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:apw", "get", "/foo/a"}, "", 0, `1
`, ""},
		{[]string{"--username", "alice:apw", "set", "/foo/b", "3"}, "", 0, `3
`, ""},
		{[]string{"--username", "alice:apw", "get", "/foobar"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:apw", "set", "/foobar", "x"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:apw", "get", "/ro"}, "", 0, `x
`, ""},
		{[]string{"--username", "alice:apw", "set", "/ro", "y"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:wrong", "get", "/foo/a"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:apw", "ls", "/", "--recursive"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:apw", "ls", "/foo/", "--recursive"}, "", 0, `/foo/a
/foo/b
`, ""},
		{[]string{"--username", "root:rpw", "user", "passwd", "alice"}, `newpw`, 0, `New password: 
Password updated
`, ""},
		{[]string{"--username", "alice:apw", "get", "/foo/a"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "alice:newpw", "get", "/foo/a"}, "", 0, `1
`, ""},
		{[]string{"--username", "root:rpw", "user", "revoke", "alice", "--roles", "foo"}, "", 0, `User alice updated
`, ""},
		{[]string{"--username", "alice:newpw", "get", "/foo/a"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "root:rpw", "user", "grant", "alice", "--roles", "foo"}, "", 0, `User alice updated
`, ""},
		{[]string{"--username", "alice:newpw", "get", "/foo/a"}, "", 0, `1
`, ""},
		{[]string{"--username", "root:rpw", "user", "remove", "alice"}, "", 0, `User alice removed
`, ""},
		{[]string{"--username", "alice:newpw", "get", "/foo/a"}, "", 4, "", `Error:  110: The request requires user authentication (Insufficient credentials) [0]
`},
		{[]string{"--username", "root:rpw", "user", "remove", "root"}, "", 1, "", `auth: Cannot delete root user while auth is enabled.
`},
		{[]string{"--username", "root:rpw", "user", "get", "nobody"}, "", 1, "", `auth: User nobody does not exist.
`},
		{[]string{"--username", "root:rpw", "role", "remove", "foo"}, "", 0, `Role foo removed
`, ""},
		{[]string{"--username", "root:rpw", "auth", "disable"}, "", 0, `Authentication Disabled
`, ""},
		{[]string{"get", "/foobar"}, "", 0, `2
`, ""},
	}
	for _, s := range steps {
		// --no-sync: use this endpoint only, never the advertised client URLs
		// (the in-process member advertises the default localhost:2379).
		cmd := exec.Command(etcdctlPath, append([]string{"--no-sync", "--endpoints", url}, s.args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=2")
		cmd.Stdin = strings.NewReader(s.stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		rc := 0
		if ee, ok := err.(*exec.ExitError); ok {
			rc = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("etcdctl %q: %v", s.args, err)
		}
		// etcdctl asks stty to hide a password typed on a terminal; stdin
		// is not one here.
		var errLines []string
		for _, l := range strings.SplitAfter(stderr.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, "stty:") {
				errLines = append(errLines, l)
			}
		}
		gotErr := strings.Join(errLines, "")
		if rc != s.rc || stdout.String() != s.stdout || gotErr != s.stderr {
			t.Errorf("etcdctl %q:\n got rc %d, stdout %q, stderr %q\nwant rc %d, stdout %q, stderr %q",
				s.args, rc, stdout.String(), gotErr, s.rc, s.stdout, s.stderr)
		}
	}
}
