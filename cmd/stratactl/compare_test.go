package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The comparison test: one script of etcdctl v2 commands, run by
// `ETCDCTL_API=2 etcdctl` against etcd 3.4, by stratactl against etcd 3.4
// and by stratactl against Strata. The transcripts (stdout, stderr, exit
// code of every command) must be equal line for line after normalising what
// must differ between servers and binaries: the member ID, client and peer
// URLs, the program's name, the etcd index (rebased on the index the script
// started from: etcd's store holds its own bookkeeping writes) and TTL
// expiration timestamps.

// step is one command of the script.
type step struct {
	// args follow `--endpoints <client URL>` (unless noEndpoints). They may
	// use {{idx}} (the store's index before the step), {{idx+N}}, {{idx-N}},
	// {{member}}, {{peer}}, {{ep}} (the client URL) and, against a TLS
	// server, {{ca}}, {{cert}} and {{key}} (its files).
	args        []string
	stdin       string
	env         []string // extra environment, with the same placeholders
	noEndpoints bool
	// needs, when set, names an API the step needs beyond the keys API:
	// "auth" (/v2/auth) or "member changes" (adding or updating members);
	// they run against a server that serves it. Such steps come last, the
	// auth ones first: etcd keeps auth data in its v2 store, which moves
	// the index.
	needs string
	// bg makes args a long-running command (watch --forever, exec-watch):
	// each write is run in turn, waiting after each until the command has
	// printed lines lines in all; then the command gets a Ctrl-C.
	bg []bgWrite
	// membersInIDOrder: the output lists the members in the order of their
	// IDs, and a member added by the script has a random ID, so its place
	// differs between runs: the stdout lines are compared sorted.
	membersInIDOrder bool
}

type bgWrite struct {
	args  []string
	lines int
}

// The exec-watch command used by the script: it prints the change.
const execEcho = `echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE index=$ETCD_WATCH_MODIFIED_INDEX"`

func a(args ...string) []string { return args }

var script = []step{
	// get, set, mk, update; missing keys and compare failures.
	{args: a("get", "/nope")},
	{args: a("-o", "json", "get", "/nope")},
	{args: a("set", "/a/b", "one")},
	{args: a("get", "/a/b")},
	{args: a("-o", "extended", "get", "/a/b")},
	{args: a("--output", "json", "get", "/a/b")},
	{args: a("get", "--sort", "/a/b")},
	{args: a("get", "-q", "/a/b")},
	{args: a("-o", "extended", "set", "/a/b", "two")},
	{args: a("mk", "/a/b", "three")},
	{args: a("mk", "/a/c", "three")},
	{args: a("-o", "extended", "mk", "/a/d", "four")},
	{args: a("update", "/a/b", "three")},
	{args: a("-o", "extended", "update", "/a/b", "four")},
	{args: a("update", "/a/nope", "x")},
	{args: a("set", "--swap-with-value", "nope", "/a/b", "five")},
	{args: a("set", "--swap-with-value", "four", "/a/b", "five")},
	{args: a("set", "--swap-with-index", "{{idx+100}}", "/a/b", "six")},
	{args: a("set", "--swap-with-value", "nope", "--swap-with-index", "{{idx+100}}", "/a/b", "six")},
	{args: a("-o", "extended", "set", "--swap-with-index", "{{idx}}", "/a/b", "six")},
	{args: a("set", "--swap-with-value", "six", "/a/nope", "x")},
	{args: a("-o", "extended", "set", "--ttl", "100", "/a/ttl", "v")},
	{args: a("-o", "json", "set", "--ttl", "100", "/a/ttl2", "v")},
	{args: a("-o", "extended", "update", "--ttl", "200", "/a/ttl", "w")},
	{args: a("-o", "extended", "mk", "--ttl", "50", "/a/ttl3", "x")},
	{args: a("set", "/a/after", "v", "--ttl", "100")}, // flags after the arguments are reordered
	{args: a("get", "/a/b", "--bogus")},               // unknown flags after them are arguments
	{args: a("set", "--", "/a/dash", "-x")},
	{args: a("set", "/a/dash2", "--", "-y")},
	{args: a("get", "/a/dash2")},
	{args: a("set", "/a/stdin"), stdin: "from stdin\n"},
	{args: a("get", "/a/stdin")},
	{args: a("set", "/a/novalue")},
	{args: a("set")},
	{args: a("get")},
	{args: a("mk")},
	{args: a("update", "/a/b")},
	{args: a("-o", "yaml", "get", "/a/b")},

	// In-order keys.
	{args: a("mk", "--in-order", "/q", "job1")},
	{args: a("mk", "--in-order", "/q", "job2")},
	{args: a("-o", "extended", "mk", "--in-order", "/q", "job3")},
	{args: a("ls", "--sort", "/q")},
	{args: a("mk", "--in-order", "/a/b", "job")},

	// Directories.
	{args: a("mkdir", "/d")},
	{args: a("mkdir", "/d")},
	{args: a("mkdir", "/a/b")},
	{args: a("-o", "extended", "mkdir", "/d2")},
	{args: a("-o", "json", "mkdir", "/d3")},
	{args: a("-o", "extended", "mkdir", "--ttl", "100", "/d4")},
	{args: a("setdir", "/d")},
	{args: a("setdir", "/d5")},
	{args: a("-o", "extended", "setdir", "/d6")},
	{args: a("updatedir", "/d5")},
	{args: a("-o", "extended", "updatedir", "--ttl", "100", "/d5")},
	{args: a("updatedir", "/nodir")},
	{args: a("updatedir", "/a/b")},
	{args: a("mkdir")},
	{args: a("set", "/d/x", "1")},
	{args: a("mkdir", "/d/sub")},
	{args: a("set", "/d/sub/y", "2")},
	{args: a("set", "/d/sub/z", "3")},
	{args: a("set", "/d/x/child", "v")},
	{args: a("mk", "/d/x/child", "v")},
	{args: a("set", "/d", "v")},
	{args: a("update", "/d", "v")},
	{args: a("get", "/d")},
	{args: a("-o", "json", "get", "/d")},

	// ls.
	// Without --sort etcd lists a directory in random order: unsorted
	// listings are of one child.
	{args: a("set", "/one/k", "v")},
	{args: a("ls", "/one")},
	{args: a("-o", "extended", "ls", "/one")},
	{args: a("ls", "--sort")},
	{args: a("ls", "-p", "--sort")},
	{args: a("ls", "/d", "--sort")},
	{args: a("ls", "-p", "--sort", "/d")},
	{args: a("ls", "--recursive", "--sort", "/d")},
	{args: a("ls", "-r", "-p", "--sort", "/")},
	{args: a("ls", "/d/x")},
	{args: a("ls", "/nope")},
	{args: a("ls", "/d/sub/y/")},
	{args: a("-o", "extended", "ls", "/d")},
	{args: a("-o", "json", "ls", "--sort", "/d")},
	{args: a("-o", "json", "ls", "--sort", "--recursive", "/d")},
	{args: a("-o", "extended", "ls", "/d/x")},

	// rm, rmdir.
	{args: a("rm", "/d")},
	{args: a("rm", "--dir", "/d")},
	{args: a("rmdir", "/d")},
	{args: a("rm", "/nope")},
	{args: a("rmdir", "/nope")},
	{args: a("rm", "--with-value", "nope", "/d/sub/y")},
	{args: a("rm", "--with-value", "2", "/d/sub/y")},
	{args: a("rm", "--with-index", "{{idx+100}}", "/d/sub/z")},
	{args: a("rm", "--with-value", "nope", "--with-index", "{{idx+100}}", "/d/sub/z")},
	{args: a("set", "/d/sub/w", "4")},
	{args: a("-o", "extended", "rm", "--with-index", "{{idx}}", "/d/sub/w")},
	{args: a("rm", "--with-value", "x", "/nope")},
	{args: a("rmdir", "/d/x")},
	{args: a("rm", "--dir", "/d/sub/z")},
	{args: a("-o", "json", "rm", "/a/c")},
	{args: a("-o", "extended", "rm", "--dir", "/d2")},
	{args: a("-o", "json", "rmdir", "/d3")},
	// /d4 has a TTL: its remaining seconds, in the response, depend on
	// the time since it was made. Only simple output then.
	{args: a("rm", "--dir", "/d4")},
	{args: a("rm", "-r", "/d")},
	{args: a("-o", "extended", "rm", "--recursive", "/d5")},
	{args: a("rm", "/d6", "--dir")},
	{args: a("rm")},
	{args: a("rmdir")},
	{args: a("get", "/d")},

	// Odd keys and values.
	{args: a("set", "/odd/sp ace", "v w")},
	{args: a("get", "/odd/sp ace")},
	{args: a("set", "/odd/ünï/çødé", "värde ✓")},
	{args: a("-o", "json", "get", "/odd/ünï/çødé")},
	{args: a("set", "/odd/q?x=1&y#z", "v")},
	{args: a("get", "/odd/q?x=1&y#z")},
	{args: a("set", "/odd/_hidden", "h")},
	{args: a("ls", "--sort", "-r", "/odd")},
	{args: a("get", "/odd/_hidden")},
	{args: a("get", "odd/sp ace")},
	{args: a("get", "/odd//sp ace/")},
	{args: a("set", "/odd/empty", "")},
	{args: a("-o", "extended", "get", "/odd/empty")},
	{args: a("set", "--ttl", "-5", "/odd/neg", "v")},
	{args: a("set", "--ttl", "0", "/odd/zero", "v")},
	{args: a("rm", "-r", "/")},
	{args: a("rmdir", "/")},
	{args: a("set", "/", "v")},
	{args: a("mkdir", "/")},
	{args: a("get", "/")},
	{args: a("rm", "-r", "/odd")},

	// Bad flags and unknown commands.
	{args: a("get", "--bogus", "/a/b")},
	{args: a("set", "--ttl", "abc", "/a/b", "v")},
	{args: a("set", "/a/b", "--ttl")},
	{args: a("set", "--ttl", "--swap-with-value", "x", "/a/b", "v")},
	{args: a("mk", "--in-order=maybe", "/q", "v")},
	{args: a("rm", "--recursive=maybe", "/a")},
	{args: a("ls", "--bogus")},
	{args: a("watch", "--after-index", "x", "/a")},
	{args: a("member", "list", "--bogus")},
	{args: a("member", "bogus")},
	{args: a("bogus")},
	{args: a("user", "add", "--bogus")},
	{args: a("role", "grant", "--bogus", "r")},

	// Help.
	{args: a("help", "set")},
	{args: a("mk", "-h")},
	{args: a("member")},
	{args: a("user", "--help")},
	{args: a("role")},
	{args: a("auth")},
	{args: a("help", "member")},

	// watch.
	{args: a("set", "/w/k", "v1")},
	{args: a("watch", "--after-index", "{{idx-1}}", "/w/k")},
	{args: a("-o", "extended", "watch", "--after-index", "{{idx-1}}", "/w/k")},
	{args: a("-o", "json", "watch", "--after-index", "{{idx-1}}", "/w/k")},
	{args: a("set", "/w/sub/k2", "v2")},
	{args: a("watch", "--recursive", "--after-index", "{{idx-1}}", "/w")},
	{args: a("watch", "-r", "--after-index", "{{idx-2}}", "/w")},
	{args: a("watch")},
	{args: a("watch", "--forever", "--recursive", "--after-index", "{{idx}}", "/w"), bg: []bgWrite{
		{a("set", "/w/a", "1"), 2},
		{a("mkdir", "/w/dir"), 2},
		{a("update", "/w/a", "2"), 4},
		{a("set", "/w/dir/b", "3"), 6},
		{a("rm", "/w/a"), 8},
		{a("rm", "-r", "/w/dir"), 8},
		{a("mk", "--in-order", "/w/q", "j"), 10},
	}},
	// (Not -o extended: its Index is the X-Etcd-Index of the watch's
	// response headers, sent when the watch starts, which may be before or
	// after the write.)
	{args: a("-o", "json", "watch", "-f", "--after-index", "{{idx}}", "/w/k"), bg: []bgWrite{
		{a("set", "/w/k", "v3"), 1},
		{a("rm", "/w/k"), 2},
	}},

	// exec-watch.
	// The `<key> -- <command>` form is left out: etcdctl 3.4.23 loses the
	// "--" (see docs/stratactl.md); TestExecWatchSeparator covers it.
	{args: a("exec-watch", "--recursive", "--after-index", "{{idx}}", "sh", "-c", execEcho, "/w"), bg: []bgWrite{
		{a("set", "/w/e", "1"), 1},
		{a("mkdir", "/w/edir"), 1},
		{a("set", "/w/e", "2"), 2},
		{a("rm", "/w/e"), 3},
	}},
	{args: a("set", "/w/k", "v4")},
	{args: a("exec-watch", "--after-index", "{{idx-1}}", "sh", "-c", execEcho, "/w/k"), bg: []bgWrite{
		{nil, 1},
		{a("update", "/w/k", "v5"), 2},
	}},
	{args: a("exec-watch", "/w/k")},
	{args: a("exec-watch")},

	// Members and health.
	{args: a("member", "list")},
	{args: a("member", "list", "extra")},
	{args: a("member", "add")},
	{args: a("member", "add", "x")},
	{args: a("member", "remove")},
	{args: a("member", "remove", "1234abcd")},
	{args: a("member", "remove", "default")},
	{args: a("member", "update")},
	{args: a("member", "update", "{{member}}")},
	{args: a("cluster-health")},

	// Global flags.
	{args: a("--no-sync", "get", "/a/b")},
	{args: a("--debug", "get", "/a/b")},
	{args: a("--debug", "--no-sync", "set", "/a/b", "seven")},
	{args: a("--debug", "cluster-health")},
	{args: a("--timeout", "10s", "--total-timeout", "20s", "get", "/a/b")},
	{args: a("-u", "someone:pw", "get", "/a/b")},
	{args: a("--username", "someone:pw", "ls", "--sort", "/q")},
	{args: a("--peers", "{{ep}}", "get", "/a/b"), noEndpoints: true},
	{args: a("-C", "{{ep}}", "get", "/a/b"), noEndpoints: true},
	{args: a("--endpoint", "{{ep}}", "get", "/a/b"), noEndpoints: true},
	{args: a("get", "/a/b"), env: a("ETCDCTL_ENDPOINTS={{ep}}"), noEndpoints: true},
	{args: a("get", "/a/b"), env: a("ETCDCTL_PEERS={{ep}}"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1", "get", "/a/b"), env: a("ETCDCTL_ENDPOINTS={{ep}}"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1", "get", "/a/b"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1", "--no-sync", "get", "/a/b"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1", "member", "list"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1", "cluster-health"), noEndpoints: true},
	{args: a("--endpoints", "http://127.0.0.1:1,{{ep}}", "get", "/a/b"), noEndpoints: true},
	{args: a("--endpoints", "127.0.0.1:1", "get", "/a/b"), noEndpoints: true},
	// (Not --total-timeout 1ns: whether the dial's timeout or the
	// context's deadline fires first varies, and so does the message.)
	{args: a("--cert-file", "/nonexistent/cert.pem", "get", "/a/b")},
	{args: a("--key-file", "/nonexistent/key.pem", "get", "/a/b")},
	{args: a("--cert-file", "/nonexistent/cert.pem", "--key-file", "/nonexistent/key.pem", "get", "/a/b")},
	{args: a("--ca-file", "/nonexistent/ca.pem", "get", "/a/b")},
	{args: a("get", "/a/b"), env: a("ETCDCTL_CERT_FILE=/nonexistent/cert.pem")},

	// Client-side checks of the auth commands.
	{args: a("user", "add")},
	{args: a("user", "get", "a", "b")},
	{args: a("user", "list", "x")},
	{args: a("user", "grant", "bob")},
	{args: a("user", "revoke", "bob")},
	{args: a("role", "add")},
	{args: a("role", "list", "x")},
	{args: a("role", "grant", "ops")},
	{args: a("role", "grant", "--path", "/a/*", "ops")},
	{args: a("role", "grant", "--path", "a/*", "--read", "ops")},
	{args: a("role", "revoke", "--path", "/a//b", "--read", "ops")},
	{args: a("role", "grant", "--path", "/a/*", "--read", "--write", "ops")},
	{args: a("auth", "enable", "x")},
	{args: a("auth", "disable", "x")},

	// Everything below needs the auth or membership-change APIs.
	{args: a("user", "list"), needs: "auth"},
	{args: a("role", "list"), needs: "auth"},
	{args: a("auth", "enable"), needs: "auth"},
	{args: a("user", "add", "root:rootpw"), needs: "auth"},
	{args: a("user", "add", "bob"), stdin: "bobpw\n", needs: "auth"},
	{args: a("user", "add", "carol"), needs: "auth"},
	{args: a("user", "list"), needs: "auth"},
	{args: a("user", "get", "bob"), needs: "auth"},
	{args: a("user", "get", "nobody"), needs: "auth"},
	{args: a("role", "add", "ops"), needs: "auth"},
	{args: a("role", "add", "ops"), needs: "auth"},
	{args: a("role", "get", "ops"), needs: "auth"},
	{args: a("role", "grant", "--path", "/a/*", "--rw", "ops"), needs: "auth"},
	{args: a("role", "grant", "--path", "/a/*", "--readwrite", "ops"), needs: "auth"},
	{args: a("role", "grant", "--path", "/q/*", "--read", "ops"), needs: "auth"},
	{args: a("role", "revoke", "--path", "/a/*", "--write", "ops"), needs: "auth"},
	{args: a("role", "revoke", "--path", "/nope/*", "--write", "ops"), needs: "auth"},
	{args: a("role", "get", "ops"), needs: "auth"},
	{args: a("role", "get", "nope"), needs: "auth"},
	{args: a("role", "list"), needs: "auth"},
	{args: a("user", "grant", "--roles", "ops", "bob"), needs: "auth"},
	{args: a("user", "grant", "--roles", "nope", "bob"), needs: "auth"},
	{args: a("user", "get", "bob"), needs: "auth"},
	{args: a("user", "revoke", "--roles", "ops", "bob"), needs: "auth"},
	{args: a("user", "passwd", "bob"), stdin: "newpw\n", needs: "auth"},
	{args: a("user", "remove", "nobody"), needs: "auth"},
	{args: a("user", "remove", "carol"), needs: "auth"},
	{args: a("role", "remove", "nope"), needs: "auth"},
	{args: a("auth", "enable"), needs: "auth"},
	{args: a("get", "/a/b"), needs: "auth"},
	{args: a("-u", "root:wrong", "get", "/a/b"), needs: "auth"},
	{args: a("-u", "bob:newpw", "get", "/a/b"), needs: "auth"},
	{args: a("-u", "root", "get", "/a/b"), stdin: "rootpw\n", needs: "auth"},
	{args: a("user", "list"), needs: "auth"},
	{args: a("-u", "root:rootpw", "user", "list"), needs: "auth"},
	{args: a("auth", "disable"), needs: "auth"},
	{args: a("-u", "root:rootpw", "auth", "disable"), needs: "auth"},
	{args: a("auth", "disable"), needs: "auth"},
	{args: a("role", "remove", "ops"), needs: "auth"},
	{args: a("user", "remove", "bob"), needs: "auth"},
	{args: a("--debug", "user", "get", "bob"), needs: "auth"},
	{args: a("--debug", "auth", "disable"), needs: "auth"},
	{args: a("member", "update", "{{member}}", "{{peer}}"), needs: "member changes"},
	{args: a("--debug", "member", "update", "{{member}}", "{{peer}}"), needs: "member changes"},
	// Last: the cluster has no quorum once a member is added.
	{args: a("member", "add", "infra2", "http://127.0.0.1:1"), needs: "member changes"},
	{args: a("member", "list"), needs: "member changes", membersInIDOrder: true},
	{args: a("cluster-health"), needs: "member changes", membersInIDOrder: true},
}

// run is one run of the script: a ctl binary against a server.
type scriptRun struct {
	t     *testing.T
	ctl   string // binary
	srv   *server
	base  uint64            // the store's index when the script started
	subst map[string]string // literal substitutions for IDs learned during the run
	lines []string          // the normalised transcript
	cmds  int               // commands run
}

var placeholder = regexp.MustCompile(`\{\{(idx|member|peer|ep|ca|cert|key)([+-]\d+)?\}\}`)

func (r *scriptRun) expand(s string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		p := placeholder.FindStringSubmatch(m)
		switch p[1] {
		case "member":
			return r.srv.memberID
		case "peer":
			return r.srv.peerURL
		case "ep":
			return r.srv.clientURL
		case "ca":
			return r.srv.tls.ca
		case "cert":
			return r.srv.tls.cert
		case "key":
			return r.srv.tls.key
		}
		idx, err := r.srv.index()
		if err != nil {
			r.t.Fatalf("index: %v", err)
		}
		n := int64(idx)
		if p[2] != "" {
			d, _ := strconv.ParseInt(p[2], 10, 64) // the pattern admits only numbers
			n += d
		}
		return strconv.FormatInt(n, 10)
	})
}

func (r *scriptRun) expandAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.expand(s)
	}
	return out
}

func (r *scriptRun) command(args []string, noEndpoints bool) []string {
	args = r.expandAll(args)
	if noEndpoints {
		return args
	}
	return append([]string{"--endpoints", r.srv.clientURL}, args...)
}

var (
	newMemberRE  = regexp.MustCompile(`^Added member named \S+ with ID ([0-9a-f]+) to cluster$`)
	errIndexRE   = regexp.MustCompile(`^(Error:  \d+: .* \[)(\d+)(\])$`)
	extIndexRE   = regexp.MustCompile(`^((?:Created-Index|Modified-Index|Index): )(\d+)$`)
	jsonIndexRE  = regexp.MustCompile(`("(?:createdIndex|modifiedIndex)":)(\d+)`)
	compareRE    = regexp.MustCompile(`\[(\d+) != (\d+)\]`)
	inOrderRE    = regexp.MustCompile(`/(\d{20})\b`)
	execIndexRE  = regexp.MustCompile(`( index=)(\d+)$`)
	expirationRE = regexp.MustCompile(`"expiration":"[^"]+"`)
	// ETCD_INITIAL_CLUSTER lists the members in ID order (see
	// membersInIDOrder): normalised to sorted.
	initialClusterRE = regexp.MustCompile(`^(ETCD_INITIAL_CLUSTER=")([^"]*)(")$`)
)

// normalise rewrites one line of output so that runs against different
// servers and with different binaries compare: IDs and URLs become names,
// indexes are rebased on the script's starting index, and timestamps go.
func (r *scriptRun) normalise(line string) string {
	if m := newMemberRE.FindStringSubmatch(line); m != nil {
		r.subst[m[1]] = "<new-member-id>"
	}
	for from, to := range r.subst {
		line = strings.ReplaceAll(line, from, to)
	}
	line = strings.ReplaceAll(line, r.srv.memberID, "<member-id>")
	line = strings.ReplaceAll(line, r.srv.clientURL, "<client-url>")
	line = strings.ReplaceAll(line, r.srv.peerURL, "<peer-url>")
	// Two texts of Go's standard library that changed after Go 1.19, with
	// which Debian's etcdctl is built: net/http no longer prefixes a failed
	// TLS handshake's error with "readLoopPeekFailLocked: ", and crypto/tls
	// now says "tls: failed to verify certificate: " before an x509 error.
	line = strings.ReplaceAll(line, "readLoopPeekFailLocked: ", "")
	line = strings.ReplaceAll(line, "tls: failed to verify certificate: x509: ", "x509: ")
	// And on the server's side: a TLS 1.3 server built with a newer Go
	// (strata) refuses a client without a certificate with the
	// certificate_required alert, etcd 3.4 (Go 1.19) with bad_certificate.
	line = strings.ReplaceAll(line, "remote error: tls: certificate required", "remote error: tls: bad certificate")
	line = strings.ReplaceAll(line, "stratactl", "<ctl>")
	line = strings.ReplaceAll(line, "etcdctl", "<ctl>")
	rebase := func(s string) string {
		n, _ := strconv.ParseInt(s, 10, 64) // the patterns admit only digits
		return strconv.FormatInt(n-int64(r.base), 10)
	}
	line = errIndexRE.ReplaceAllStringFunc(line, func(m string) string {
		p := errIndexRE.FindStringSubmatch(m)
		if p[2] == "0" {
			return m // not a store index: auth errors carry 0
		}
		return p[1] + rebase(p[2]) + p[3]
	})
	line = extIndexRE.ReplaceAllStringFunc(line, func(m string) string {
		p := extIndexRE.FindStringSubmatch(m)
		return p[1] + rebase(p[2])
	})
	line = jsonIndexRE.ReplaceAllStringFunc(line, func(m string) string {
		p := jsonIndexRE.FindStringSubmatch(m)
		return p[1] + rebase(p[2])
	})
	line = compareRE.ReplaceAllStringFunc(line, func(m string) string {
		p := compareRE.FindStringSubmatch(m)
		return "[" + rebase(p[1]) + " != " + rebase(p[2]) + "]"
	})
	line = inOrderRE.ReplaceAllStringFunc(line, func(m string) string {
		p := inOrderRE.FindStringSubmatch(m)
		return fmt.Sprintf("/%020s", rebase(p[1]))
	})
	line = execIndexRE.ReplaceAllStringFunc(line, func(m string) string {
		p := execIndexRE.FindStringSubmatch(m)
		return p[1] + rebase(p[2])
	})
	line = initialClusterRE.ReplaceAllStringFunc(line, func(m string) string {
		p := initialClusterRE.FindStringSubmatch(m)
		members := strings.Split(p[2], ",")
		sort.Strings(members)
		return p[1] + strings.Join(members, ",") + p[3]
	})
	return expirationRE.ReplaceAllString(line, `"expiration":"<time>"`)
}

// record appends a command's normalised transcript; sorted sorts the
// stdout lines.
func (r *scriptRun) record(header string, res result, sorted bool) {
	r.cmds++
	r.lines = append(r.lines, header)
	for _, s := range []struct{ name, text string }{{"stdout", res.stdout}, {"stderr", res.stderr}} {
		if s.text == "" {
			continue
		}
		text, complete := strings.CutSuffix(s.text, "\n")
		var lines []string
		for _, l := range strings.Split(text, "\n") {
			lines = append(lines, s.name+"| "+r.normalise(l))
		}
		if sorted && s.name == "stdout" {
			sort.Strings(lines)
		}
		r.lines = append(r.lines, lines...)
		if !complete {
			r.lines = append(r.lines, s.name+"| (no newline at end)")
		}
	}
	r.lines = append(r.lines, fmt.Sprintf("exit %d", res.code))
}

// runScript runs the script's steps, those with needs only if apis has
// it, and returns the transcript.
func runScript(t *testing.T, ctl string, srv *server, steps []step, apis map[string]bool) *scriptRun {
	t.Helper()
	base, err := srv.index()
	if err != nil {
		t.Fatalf("index: %v", err)
	}
	r := &scriptRun{t: t, ctl: ctl, srv: srv, base: base, subst: map[string]string{}}
	for _, st := range steps {
		if st.needs != "" && !apis[st.needs] {
			continue
		}
		header := "$ " + strings.Join(st.args, " ")
		if st.bg == nil {
			env := r.expandAll(st.env)
			r.record(header, runCtl(t, ctl, r.command(st.args, st.noEndpoints), env, st.stdin), st.membersInIDOrder)
			continue
		}
		bg := startCtl(t, ctl, r.command(st.args, st.noEndpoints))
		for _, w := range st.bg {
			if w.args != nil {
				r.record("  $ "+strings.Join(w.args, " "), runCtl(t, ctl, r.command(w.args, false), nil, ""), false)
			}
			bg.waitLines(t, w.lines)
		}
		r.record(header+" (then Ctrl-C)", bg.interrupt(t), false)
	}
	return r
}

func needEtcd(t *testing.T) {
	t.Helper()
	for _, bin := range []string{etcdBin, etcdctlBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed: %v", bin, err)
		}
	}
}

// blocks splits a transcript into commands: a "$ " line and what follows.
func blocks(lines []string) [][]string {
	var bs [][]string
	for _, l := range lines {
		if strings.HasPrefix(l, "$ ") || strings.HasPrefix(l, "  $ ") || len(bs) == 0 {
			bs = append(bs, nil)
		}
		bs[len(bs)-1] = append(bs[len(bs)-1], l)
	}
	return bs
}

// compareTranscripts compares got with want command by command, line by
// line, and fails for every line that differs.
func compareTranscripts(t *testing.T, wantName string, want *scriptRun, gotName string, got *scriptRun) {
	t.Helper()
	wb, gb := blocks(want.lines), blocks(got.lines)
	if len(wb) != len(gb) {
		t.Errorf("%s ran %d commands, %s %d", wantName, len(wb), gotName, len(gb))
	}
	diffs, lines := 0, 0
	for i := 0; i < min(len(wb), len(gb)); i++ {
		w, g := wb[i], gb[i]
		lines += max(len(w), len(g))
		for j := 0; j < max(len(w), len(g)); j++ {
			var wl, gl string
			if j < len(w) {
				wl = w[j]
			}
			if j < len(g) {
				gl = g[j]
			}
			if wl != gl {
				diffs++
				if diffs <= 30 {
					t.Errorf("command %d %q, line %d:\n  %s: %q\n  %s: %q", i+1, w[0], j+1, wantName, wl, gotName, gl)
				}
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d lines differ", diffs, lines)
	}
}

// TestSameAsEtcdctl runs the script with etcdctl against etcd, stratactl
// against etcd and stratactl against Strata (each on a fresh server, in
// parallel), and compares the transcripts.
func TestSameAsEtcdctl(t *testing.T) {
	needEtcd(t)
	stratactl, _ := binaries(t)

	runs := []struct {
		name, ctl, kind string
		got             *scriptRun
	}{
		{"etcdctl@etcd", etcdctlBin, "etcd", nil},
		{"stratactl@etcd", stratactl, "etcd", nil},
		{"stratactl@strata", stratactl, "strata", nil},
	}
	var strataAPIs map[string]bool
	t.Run("run", func(t *testing.T) {
		for i := range runs {
			run := &runs[i]
			t.Run(run.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, run.kind)
				apis := map[string]bool{"auth": true, "member changes": true}
				if run.kind == "strata" {
					apis = map[string]bool{"auth": srv.serves("/v2/auth/enable"), "member changes": srv.servesMemberChanges()}
					strataAPIs = apis
				}
				run.got = runScript(t, run.ctl, srv, script, apis)
			})
		}
	})
	ref, onEtcd, onStrata := runs[0].got, runs[1].got, runs[2].got
	if ref == nil || onEtcd == nil || onStrata == nil {
		t.FailNow()
	}
	if os.Getenv("STRATACTL_TRANSCRIPT") != "" {
		t.Logf("etcdctl against etcd:\n%s", strings.Join(ref.lines, "\n"))
	}

	t.Run("stratactl against etcd", func(t *testing.T) {
		compareTranscripts(t, "etcdctl@etcd", ref, "stratactl@etcd", onEtcd)
		t.Logf("%d commands, %d transcript lines compared", ref.cmds, len(ref.lines))
	})
	t.Run("stratactl against strata", func(t *testing.T) {
		// The etcd-only steps are last (checked below): compare the
		// reference's first commands, as many as ran against strata.
		var common scriptRun
		for _, b := range blocks(ref.lines)[:min(len(blocks(ref.lines)), len(blocks(onStrata.lines)))] {
			common.lines = append(common.lines, b...)
		}
		rank := map[string]int{"": 0, "auth": 1, "member changes": 2}
		for i := 1; i < len(script); i++ {
			if rank[script[i-1].needs] > rank[script[i].needs] {
				t.Fatalf("step %d %q (needs %q) comes after one that needs %q", i+1, script[i].args, script[i].needs, script[i-1].needs)
			}
		}
		for _, api := range []string{"auth", "member changes"} {
			if !strataAPIs[api] {
				t.Logf("strata does not serve the %s API: its steps ran against etcd only", api)
			}
		}
		compareTranscripts(t, "etcdctl@etcd", &common, "stratactl@strata", onStrata)
		t.Logf("%d commands, %d transcript lines compared", onStrata.cmds, len(onStrata.lines))
	})
}

// tlsScript is run against an etcd that serves https and requires client
// certificates.
var tlsScript = []step{
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "set", "/tls", "v")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "-o", "extended", "get", "/tls")},
	{args: a("get", "/tls"), env: a("ETCDCTL_CA_FILE={{ca}}", "ETCDCTL_CERT_FILE={{cert}}", "ETCDCTL_KEY_FILE={{key}}")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "member", "list")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "cluster-health")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "--endpoints", "{{ep}}", "get", "/tls"), noEndpoints: true},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "get", "/nope")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{key}}", "--key-file", "{{cert}}", "get", "/tls")},
	{args: a("--ca-file", "{{ca}}", "get", "/tls")},
	{args: a("--cert-file", "{{cert}}", "--key-file", "{{key}}", "get", "/tls")},
	{args: a("--ca-file", "{{ca}}", "--cert-file", "{{cert}}", "--key-file", "{{key}}", "--endpoints", "http://127.0.0.1:1", "--no-sync", "get", "/tls"), noEndpoints: true},
}

// TestTLSSameAsEtcdctl compares etcdctl against etcd with stratactl
// against etcd and against strata (if it serves https), with the TLS flags
// (and environment), the servers serving https with client certificates.
func TestTLSSameAsEtcdctl(t *testing.T) {
	needEtcd(t)
	stratactl, _ := binaries(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "node")
	files := &tlsFiles{cert: cert, key: key, ca: cert}
	runs := []struct {
		name, ctl, kind string
		got             *scriptRun
	}{{"etcdctl@etcd", etcdctlBin, "etcd", nil}, {"stratactl@etcd", stratactl, "etcd", nil}}
	if strataServesTLS(t) {
		runs = append(runs, struct {
			name, ctl, kind string
			got             *scriptRun
		}{"stratactl@strata", stratactl, "strata", nil})
	} else {
		t.Logf("strata does not serve https: stratactl ran against etcd only")
	}
	t.Run("run", func(t *testing.T) {
		for i := range runs {
			run := &runs[i]
			t.Run(run.name, func(t *testing.T) {
				t.Parallel()
				run.got = runScript(t, run.ctl, startServerTLS(t, run.kind, files), tlsScript, nil)
			})
		}
	})
	for _, run := range runs {
		if run.got == nil {
			t.FailNow()
		}
	}
	ref := runs[0].got
	if os.Getenv("STRATACTL_TRANSCRIPT") != "" {
		t.Logf("etcdctl against etcd with TLS:\n%s", strings.Join(ref.lines, "\n"))
	}
	for _, run := range runs[1:] {
		t.Run(run.name, func(t *testing.T) {
			compareTranscripts(t, runs[0].name, ref, run.name, run.got)
			t.Logf("%d commands, %d transcript lines compared", run.got.cmds, len(run.got.lines))
		})
	}
}
