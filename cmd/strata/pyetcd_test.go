package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// python-etcd (Debian python3-etcd) under /usr/bin/python3 drives Strata
// through testdata/pyetcd_check.py, as Patroni and other Python programs
// do. The expected outputs are those the script prints against etcd 3.4.23.

const systemPython = "/usr/bin/python3" // pyenv's python3 lacks the module

func needPyEtcd(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs python-etcd against Strata processes")
	}
	if _, err := os.Stat(systemPython); err != nil {
		t.Skipf("python-etcd tests need %s: %v", systemPython, err)
	}
	if out, err := exec.Command(systemPython, "-c", "import etcd").CombinedOutput(); err != nil {
		t.Skipf("python-etcd tests need the etcd module (apt-get install python3-etcd): %v: %s", err, out)
	}
}

func pyCheck(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(systemPython, append([]string{"testdata/pyetcd_check.py"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pyetcd_check.py %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPyEtcdCluster: on a 3-member cluster python-etcd sees the machines
// sorted as etcd lists them, and a watch opened on a follower across a
// kill -9 of the leader returns the next write instead of raising.
func TestPyEtcdCluster(t *testing.T) {
	needPyEtcd(t)
	ms := newTestCluster(t, 3, "--heartbeat-interval", "50", "--election-timeout", "500")
	startAll(t, ms)
	hc := &http.Client{Timeout: 30 * time.Second}
	idx, err := put(hc, ms[0].clientURL, "/py", "v0")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, ms)
	var urls []string
	for _, m := range ms {
		urls = append(urls, m.clientURL)
	}
	sort.Strings(urls)
	want := `{"machines": ["` + strings.Join(urls, `", "`) + `"]}` // python's json.dumps
	if got := pyCheck(t, "machines", ms[0].clientURL); got != want {
		t.Fatalf("python-etcd machines: %s, want %s", got, want)
	}

	lead := findLeader(t, ms)
	var followers []*testMember
	for _, m := range ms {
		if m != lead {
			followers = append(followers, m)
		}
	}
	// One python watcher per follower (the one that becomes leader always
	// ends its watches, see TestEndedWatchGoClient).
	type watcher struct {
		cmd *exec.Cmd
		out *bufio.Scanner
	}
	var ws []watcher
	for i, f := range followers {
		cmd := exec.Command(systemPython, "testdata/pyetcd_check.py", "watch", "/py", strconv.FormatUint(idx+1, 10), f.clientURL, followers[1-i].clientURL)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "watching" {
			t.Fatalf("python watcher on %s did not start: %q", f.name, sc.Text())
		}
		ws = append(ws, watcher{cmd, sc})
	}
	time.Sleep(500 * time.Millisecond) // the watches reach the followers

	lead.kill9(t)
	newLead := findLeader(t, followers)
	if _, err := put(hc, newLead.clientURL, "/py", "v1"); err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		done := make(chan string, 1)
		go func() {
			w.out.Scan()
			done <- w.out.Text()
		}()
		select {
		case got := <-done:
			if got != `{"value": "v1"}` {
				t.Fatalf("python-etcd watch through %s across the leader kill: %s, want {\"value\": \"v1\"}", followers[i].name, got)
			}
			t.Logf("python-etcd watch through %s across the leader kill: %s", followers[i].name, got)
		case <-time.After(20 * time.Second):
			t.Fatalf("python-etcd watch through %s did not return within 20s of the write", followers[i].name)
		}
	}
}

// TestPyEtcdTrustedCA: with --trusted-ca-file (no --client-cert-auth)
// python-etcd works with a client certificate and fails to connect
// without one, as against etcd 3.4.23.
func TestPyEtcdTrustedCA(t *testing.T) {
	needPyEtcd(t)
	p := newPKI(t)
	url, _ := startStrataLog(t, "--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379",
		"--cert-file", p.server.Cert, "--key-file", p.server.Key, "--trusted-ca-file", p.caFile)
	got := pyCheck(t, "tls", url, p.caFile, p.client.Cert, p.client.Key)
	if want := `{"with_cert": "secret", "without_cert": "raised EtcdConnectionFailed"}`; got != want {
		t.Fatalf("python-etcd over TLS: %s, want %s", got, want)
	}
}
