package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Tests of stratactl against a real Strata with exact expected output: they
// need no etcd, so they run everywhere. Strata's store starts at index 0,
// so indexes are exact.

type ctlCase struct {
	args           []string
	stdin          string
	env            []string
	noEndpoints    bool
	stdout, stderr string // may use {{member}}, {{ep}}, {{peer}}
	code           int
}

func (s *server) fill(text string) string {
	return strings.NewReplacer("{{member}}", s.memberID, "{{ep}}", s.clientURL, "{{peer}}", s.peerURL).Replace(text)
}

func runCases(t *testing.T, ctl string, srv *server, cases []ctlCase) {
	t.Helper()
	for _, tc := range cases {
		args := make([]string, len(tc.args))
		for i, a := range tc.args {
			args[i] = srv.fill(a)
		}
		env := make([]string, len(tc.env))
		for i, e := range tc.env {
			env[i] = srv.fill(e)
		}
		if !tc.noEndpoints {
			args = append([]string{"--endpoints", srv.clientURL}, args...)
		}
		got := runCtl(t, ctl, args, env, tc.stdin)
		want := result{stdout: srv.fill(tc.stdout), stderr: srv.fill(tc.stderr), code: tc.code}
		if got != want {
			t.Errorf("stratactl %s:\n got stdout %q\n     stderr %q\n     exit %d\nwant stdout %q\n     stderr %q\n     exit %d",
				strings.Join(tc.args, " "), got.stdout, got.stderr, got.code, want.stdout, want.stderr, want.code)
		}
	}
}

func TestAgainstStrata(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	runCases(t, ctl, srv, []ctlCase{
		{args: a("get", "/foo"), stderr: "Error:  100: Key not found (/foo) [0]\n", code: 4},
		{args: a("set", "/foo", "bar"), stdout: "bar\n"},
		{args: a("get", "/foo"), stdout: "bar\n"},
		{args: a("-o", "extended", "get", "/foo"), stdout: "Key: /foo\nCreated-Index: 1\nModified-Index: 1\nTTL: 0\nIndex: 1\n\nbar\n"},
		{args: a("-o", "json", "get", "/foo"), stdout: `{"action":"get","node":{"key":"/foo","value":"bar","nodes":null,"createdIndex":1,"modifiedIndex":1},"prevNode":null}` + "\n"},
		{args: a("mk", "/foo", "x"), stderr: "Error:  105: Key already exists (/foo) [1]\n", code: 4},
		{args: a("set", "--swap-with-value", "nope", "/foo", "x"), stderr: "Error:  101: Compare failed ([nope != bar]) [1]\n", code: 4},
		{args: a("set", "--swap-with-index", "7", "/foo", "x"), stderr: "Error:  101: Compare failed ([7 != 1]) [1]\n", code: 4},
		{args: a("-o", "extended", "set", "--swap-with-index", "1", "/foo", "baz"), stdout: "Key: /foo\nCreated-Index: 1\nModified-Index: 2\nPrevNode.Value: bar\nTTL: 0\nIndex: 2\n\nbaz\n"},
		{args: a("update", "/nope", "x"), stderr: "Error:  100: Key not found (/nope) [2]\n", code: 4},
		{args: a("update", "/foo", "qux"), stdout: "qux\n"},
		{args: a("set", "/stdin"), stdin: "piped", stdout: "piped\n"},
		{args: a("set", "/novalue"), stderr: "Error:  value required\n", code: 1},
		{args: a("set"), stderr: "Error:  key required\n", code: 1},
		{args: a("mk", "--in-order", "/q", "job"), stdout: "job\n"},
		{args: a("ls", "/q"), stdout: "/q/00000000000000000005\n"},
		{args: a("mkdir", "/d")},
		{args: a("mkdir", "/d"), stderr: "Error:  105: Key already exists (/d) [6]\n", code: 4},
		{args: a("set", "/d/k", "v"), stdout: "v\n"},
		{args: a("set", "/d/k/x", "v"), stderr: "Error:  104: Not a directory (/d/k) [7]\n", code: 4},
		{args: a("get", "/d"), stderr: "/d: is a directory\n", code: 1},
		{args: a("ls", "-p", "--sort"), stdout: "/d/\n/foo\n/q/\n/stdin\n"},
		{args: a("ls", "-r", "--sort", "/d"), stdout: "/d/k\n"},
		{args: a("rm", "/d"), stderr: "Error:  102: Not a file (/d) [7]\n", code: 4},
		{args: a("rmdir", "/d"), stderr: "Error:  108: Directory not empty (/d) [7]\n", code: 4},
		{args: a("rm", "--with-value", "nope", "/d/k"), stderr: "Error:  101: Compare failed ([nope != v]) [7]\n", code: 4},
		{args: a("rm", "/d/k"), stdout: "PrevNode.Value: v\n"},
		{args: a("rmdir", "/d")},
		{args: a("rm", "-r", "/q")},
		{args: a("-o", "json", "rm", "/stdin"), stdout: `{"action":"delete","node":{"key":"/stdin","value":"","nodes":null,"createdIndex":4,"modifiedIndex":11},"prevNode":{"key":"/stdin","value":"piped","nodes":null,"createdIndex":4,"modifiedIndex":4}}` + "\n"},
		{args: a("watch", "--after-index", "2", "/foo"), stdout: "qux\n"},
		{args: a("watch", "-r", "--after-index", "2", "/"), stdout: "[update] /foo\nqux\n"},
		{args: a("member", "list"), stdout: "{{member}}: name=default peerURLs={{peer}} clientURLs={{ep}} isLeader=true\n"},
		{args: a("member", "remove", "default"), code: 1,
			stderr: "Found a member named default; if this is correct, please use its ID, eg:\n\tstratactl member remove {{member}}\n" +
				"For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n" +
				"Couldn't find a member in the cluster with an ID of default.\n"},
		{args: a("cluster-health"), stdout: "member {{member}} is healthy: got healthy result from {{ep}}\ncluster is healthy\n"},
		{args: a("get", "/foo"), env: a("ETCDCTL_ENDPOINTS={{ep}}"), noEndpoints: true, stdout: "qux\n"},
		{args: a("--endpoints", "http://127.0.0.1:1", "--no-sync", "get", "/foo"), noEndpoints: true, code: 4,
			stderr: "Error:  client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.0.1:1: connect: connection refused\n\n" +
				"error #0: dial tcp 127.0.0.1:1: connect: connection refused\n\n"},
		{args: a("--endpoints", "http://127.0.0.1:1", "get", "/foo"), noEndpoints: true, code: 2,
			stderr: "Error:  client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.0.1:1: connect: connection refused\n\n" +
				"error #0: dial tcp 127.0.0.1:1: connect: connection refused\n\n"},
		{args: a("--cert-file", "/nonexistent", "get", "/foo"), stderr: "KeyFile and CertFile must both be present[key: , cert: /nonexistent]\n", code: 1},
		{args: a("get", "--bogus", "/foo"), code: 1,
			stdout: "Incorrect Usage: flag provided but not defined: -bogus\n\nNAME:\n   stratactl get - retrieve the value of a key\n\n" +
				"USAGE:\n   stratactl get [command options] <key>\n\nOPTIONS:\n   --sort        returns result in sorted order\n" +
				"   --quorum, -q  require quorum for get request\n   \n",
			stderr: "flag provided but not defined: -bogus\n"},
		{args: a("bogus"), stderr: "No help topic for 'bogus'\n", code: 3},
		{args: a("--version"), stdout: "stratactl version: (devel)\nAPI version: 2\n"},
	})
}

// TestExecWatch runs a command per change with the change in its
// environment, in both argument orders, and ends with exit 0 on Ctrl-C.
func TestExecWatch(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	ep := []string{"--endpoints", srv.clientURL}
	// --after-index must not be 0 (which means "from now on"): the watch
	// may start after the first write.
	if r := runCtl(t, ctl, append(ep, "set", "/start", "x"), nil, ""); r.code != 0 {
		t.Fatalf("set: %+v", r)
	}
	for _, args := range [][]string{
		// <key> -- <command>: etcdctl's documented form (which etcdctl
		// 3.4.23 itself gets wrong).
		a("exec-watch", "--recursive", "/dir", "--", "sh", "-c", execEcho),
		// <command> <key>
		a("exec-watch", "-r", "sh", "-c", execEcho, "/dir"),
	} {
		base, err := srv.index()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args[:1], append([]string{"--after-index", strconv.FormatUint(base, 10)}, args[1:]...)...)
		bg := startCtl(t, ctl, append(ep, args...))
		if r := runCtl(t, ctl, append(ep, "set", "/dir/k", "v 1"), nil, ""); r.code != 0 {
			t.Fatalf("set: %+v", r)
		}
		bg.waitLines(t, 1)
		if r := runCtl(t, ctl, append(ep, "mkdir", "/dir/sub"), nil, ""); r.code != 0 {
			t.Fatalf("mkdir: %+v", r)
		}
		if r := runCtl(t, ctl, append(ep, "rm", "/dir/k"), nil, ""); r.code != 0 {
			t.Fatalf("rm: %+v", r)
		}
		bg.waitLines(t, 2)
		got := bg.interrupt(t)
		want := result{
			stdout: "set /dir/k=v 1 index=" + strconv.FormatUint(base+1, 10) + "\ndelete /dir/k= index=" + strconv.FormatUint(base+3, 10) + "\n",
			stderr: "Ignored dir /dir/sub change\n",
		}
		if got != want {
			t.Errorf("%q:\n got %+v\nwant %+v", args, got, want)
		}
		if r := runCtl(t, ctl, append(ep, "rm", "-r", "/dir"), nil, ""); r.code != 0 {
			t.Fatalf("rm -r: %+v", r)
		}
	}
}

// TestEndpointStatus checks `endpoint status -o json` against what the
// member reports itself, and the failure for an endpoint nobody serves.
func TestEndpointStatus(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	if r := runCtl(t, ctl, a("--endpoints", srv.clientURL, "set", "/k", "v"), nil, ""); r.code != 0 {
		t.Fatalf("set: %+v", r)
	}
	resp, err := http.Get(srv.clientURL + "/v2/keys/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	term, index := resp.Header.Get("X-Raft-Term"), resp.Header.Get("X-Raft-Index")
	if term == "" || index == "" {
		t.Fatalf("no raft headers: %v", resp.Header)
	}
	got := runCtl(t, ctl, a("--endpoints", srv.clientURL+",http://127.0.0.1:1", "-o", "json", "endpoint", "status"), nil, "")
	want := result{
		stdout: `[{"endpoint":"` + srv.clientURL + `","id":"` + srv.memberID + `","name":"default","serverVersion":"3.4.23",` +
			`"state":"StateLeader","leader":"` + srv.memberID + `","isLeader":true,"raftTerm":` + term + `,"raftIndex":` + index + `,"etcdIndex":1}]` + "\n",
		stderr: "Failed to get the status of endpoint http://127.0.0.1:1 (GET /version: dial tcp 127.0.0.1:1: connect: connection refused)\n",
		code:   2,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestTLSAgainstStrata uses the TLS flags against a strata serving https
// with client certificates.
func TestTLSAgainstStrata(t *testing.T) {
	if !strataServesTLS(t) {
		t.Skip("strata does not serve https")
	}
	ctl, _ := binaries(t)
	cert, key := writeCert(t, t.TempDir(), "node")
	srv := startServerTLS(t, "strata", &tlsFiles{cert: cert, key: key, ca: cert})
	tlsFlags := a("--ca-file", cert, "--cert-file", cert, "--key-file", key)
	runCases(t, ctl, srv, []ctlCase{
		{args: append(tlsFlags, "set", "/k", "v"), stdout: "v\n"},
		{args: append(tlsFlags, "-o", "extended", "get", "/k"), stdout: "Key: /k\nCreated-Index: 1\nModified-Index: 1\nTTL: 0\nIndex: 1\n\nv\n"},
		{args: a("get", "/k"), env: a("ETCDCTL_CA_FILE="+cert, "ETCDCTL_CERT_FILE="+cert, "ETCDCTL_KEY_FILE="+key), stdout: "v\n"},
		{args: append(tlsFlags, "member", "list"), stdout: "{{member}}: name=default peerURLs={{peer}} clientURLs={{ep}} isLeader=true\n"},
		{args: append(tlsFlags, "cluster-health"), stdout: "member {{member}} is healthy: got healthy result from {{ep}}\ncluster is healthy\n"},
		{args: a("--ca-file", cert, "get", "/k"), code: 4,
			stderr: "Error:  client: etcd cluster is unavailable or misconfigured; error #0: remote error: tls: certificate required\n\n" +
				"error #0: remote error: tls: certificate required\n\n"},
		{args: a("--cert-file", cert, "--key-file", key, "get", "/k"), code: 4,
			stderr: "Error:  client: etcd cluster is unavailable or misconfigured; error #0: tls: failed to verify certificate: x509: certificate signed by unknown authority\n\n" +
				"error #0: tls: failed to verify certificate: x509: certificate signed by unknown authority\n\n"},
	})
}
