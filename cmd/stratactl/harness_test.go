package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binaries the tests run: stratactl and strata are built once per test
// process; etcd and etcdctl are the system's (Debian's etcd 3.4).
const (
	etcdBin    = "/usr/bin/etcd"
	etcdctlBin = "/usr/bin/etcdctl"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds ./cmd/stratactl and ./cmd/strata into a temporary
// directory, once.
func binaries(t *testing.T) (stratactl, strata string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "stratactl-test-bin")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{".", "../strata"} {
			name := "stratactl"
			if pkg != "." {
				name = "strata"
			}
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "stratactl"), filepath.Join(binDir, "strata")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// server is a running etcd or strata member.
type server struct {
	kind      string // "etcd" or "strata"
	clientURL string
	peerURL   string
	memberID  string
	http      *http.Client // for the test's own requests
	tls       *tlsFiles    // the server's, also good for its clients
}

// tlsFiles are a certificate, its key and the CA to trust (for a
// self-signed certificate, itself).
type tlsFiles struct{ cert, key, ca string }

// strataServesTLS reports whether the strata binary has etcd's client TLS
// flags.
func strataServesTLS(t *testing.T) bool {
	t.Helper()
	_, strata := binaries(t)
	out, _ := exec.Command(strata, "--help").CombinedOutput() // --help exits 2 after printing the flags
	return bytes.Contains(out, []byte("-client-cert-auth"))
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts a single-member etcd (v2 enabled) or strata on free
// loopback ports with a temporary data dir, waits until it serves, and stops
// it at the end of the test.
func startServer(t *testing.T, kind string) *server {
	t.Helper()
	return startServerTLS(t, kind, nil)
}

// startServerTLS starts the server; with tls its client URL is https and
// clients must present a certificate signed by tls.ca.
func startServerTLS(t *testing.T, kind string, tls *tlsFiles) *server {
	t.Helper()
	scheme := "http"
	if tls != nil {
		scheme = "https"
	}
	s := &server{
		kind:      kind,
		clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t)),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		http:      http.DefaultClient,
		tls:       tls,
	}
	args := []string{
		"--name", "default",
		"--data-dir", filepath.Join(t.TempDir(), kind),
		"--listen-client-urls", s.clientURL, "--advertise-client-urls", s.clientURL,
		"--listen-peer-urls", s.peerURL, "--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "default=" + s.peerURL,
	}
	bin := etcdBin
	if tls != nil {
		// etcd's flags, which strata shares.
		args = append(args, "--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca, "--client-cert-auth")
		cfg, err := tlsConfig(tls.cert, tls.key, tls.ca, "")
		if err != nil {
			t.Fatal(err)
		}
		s.http = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	if kind == "etcd" {
		args = append(args, "--enable-v2=true")
	} else {
		_, bin = binaries(t)
		args = append(args, "--log-level", "error")
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	if err := s.waitReady(exited); err != nil {
		t.Fatalf("%s did not become ready: %v\n%s", kind, err, logs.String())
	}
	return s
}

// waitReady polls until the member answers with its ID and, for etcd, has
// published itself and decided the cluster version: both are writes to
// etcd's v2 store that move the index, and must be done before a script
// starts.
func (s *server) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		last = s.ready()
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

func (s *server) ready() error {
	var version struct {
		Cluster string `json:"etcdcluster"`
	}
	if err := s.getJSON("/version", &version); err != nil {
		return err
	}
	if version.Cluster == "" || version.Cluster == "not_decided" {
		return fmt.Errorf("cluster version %q", version.Cluster)
	}
	var members struct {
		Members []struct {
			ID         string   `json:"id"`
			Name       string   `json:"name"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	if err := s.getJSON("/v2/members", &members); err != nil {
		return err
	}
	if len(members.Members) != 1 || members.Members[0].Name == "" || len(members.Members[0].ClientURLs) == 0 {
		return fmt.Errorf("members not published yet: %+v", members)
	}
	s.memberID = members.Members[0].ID
	if _, err := s.index(); err != nil {
		return err
	}
	return nil
}

func (s *server) getJSON(path string, v any) error {
	resp, err := s.http.Get(s.clientURL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// serves reports whether GET path answers 200.
func (s *server) serves(path string) bool {
	resp, err := s.http.Get(s.clientURL + path)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// servesMemberChanges reports whether the members API takes changes: an
// empty POST /v2/members is then refused as a bad request (400), not as an
// unknown method or path.
func (s *server) servesMemberChanges() bool {
	resp, err := s.http.Post(s.clientURL+"/v2/members", "application/json", strings.NewReader("{}"))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusBadRequest
}

// index is the store's current etcd index (X-Etcd-Index).
func (s *server) index() (uint64, error) {
	resp, err := s.http.Get(s.clientURL + "/v2/keys/")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	h := resp.Header.Get("X-Etcd-Index")
	if h == "" {
		return 0, errors.New("no X-Etcd-Index")
	}
	return strconv.ParseUint(h, 10, 64)
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what one command did.
type result struct {
	stdout, stderr string
	code           int
}

func exitCode(err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	default:
		return -1, err
	}
}

// ctlCommand is bin with args, ETCDCTL_API=2 and the extra environment.
func ctlCommand(bin string, args []string, env []string, stdin string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "ETCDCTL_API=2"), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// runCtl runs a command to completion.
func runCtl(t *testing.T, bin string, args []string, env []string, stdin string) result {
	t.Helper()
	cmd := ctlCommand(bin, args, env, stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %q: %v", bin, args, err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not finish within 30s; stdout %q stderr %q", bin, args, out.String(), errb.String())
	}
	code, err := exitCode(err)
	if err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// background is a long-running command (watch --forever, exec-watch).
type background struct {
	cmd         *exec.Cmd
	out, errb   syncBuffer
	done        chan error
	description string
}

func startCtl(t *testing.T, bin string, args []string) *background {
	t.Helper()
	b := &background{cmd: ctlCommand(bin, args, nil, ""), done: make(chan error, 1), description: fmt.Sprintf("%s %q", bin, args)}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", b.description, err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
	})
	return b
}

// waitLines waits until the command has printed n lines on stdout.
func (b *background) waitLines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(b.out.String(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: waited for %d lines of output, have %q (stderr %q)", b.description, n, b.out.String(), b.errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// interrupt sends SIGINT (Ctrl-C) and returns what the command did.
func (b *background) interrupt(t *testing.T) result {
	t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupt %s: %v", b.description, err)
	}
	var err error
	select {
	case err = <-b.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit on SIGINT", b.description)
	}
	code, err := exitCode(err)
	if err != nil {
		t.Fatalf("%s: %v", b.description, err)
	}
	return result{stdout: b.out.String(), stderr: b.errb.String(), code: code}
}
