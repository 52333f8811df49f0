package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"
)

// captureStderr points the package's stderr at a buffer for the test.
func captureStderr(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	old := stderr
	stderr = &buf
	t.Cleanup(func() { stderr = old })
	return &buf
}

func TestPrintResponseKey(t *testing.T) {
	set := &client.Response{
		Action:   "set",
		Index:    7,
		Node:     &client.Node{Key: "/k", Value: "new", CreatedIndex: 7, ModifiedIndex: 7, TTL: 30},
		PrevNode: &client.Node{Key: "/k", Value: "old", CreatedIndex: 3, ModifiedIndex: 3},
	}
	del := &client.Response{
		Action:   "delete",
		Index:    8,
		Node:     &client.Node{Key: "/k", CreatedIndex: 7, ModifiedIndex: 8},
		PrevNode: &client.Node{Key: "/k", Value: "new", CreatedIndex: 7, ModifiedIndex: 7},
	}
	get := &client.Response{Action: "get", Index: 8, Node: &client.Node{Key: "/k", Value: "v", CreatedIndex: 2, ModifiedIndex: 2}}
	cases := []struct {
		name, format   string
		resp           *client.Response
		stdout, stderr string
	}{
		{"simple set", "simple", set, "new\n", ""},
		{"simple delete", "simple", del, "PrevNode.Value: new\n", ""},
		{"extended set", "extended", set, "Key: /k\nCreated-Index: 7\nModified-Index: 7\nPrevNode.Value: old\nTTL: 30\nIndex: 7\n\nnew\n", ""},
		{"extended delete", "extended", del, "Key: /k\nCreated-Index: 7\nModified-Index: 8\nPrevNode.Value: new\nTTL: 0\nIndex: 8\n", ""},
		{"extended get", "extended", get, "Key: /k\nCreated-Index: 2\nModified-Index: 2\nTTL: 0\nIndex: 8\n\nv\n", ""},
		{"json get", "json", get, `{"action":"get","node":{"key":"/k","value":"v","nodes":null,"createdIndex":2,"modifiedIndex":2},"prevNode":null}` + "\n", ""},
		{"unsupported", "yaml", get, "", "Unsupported output format: yaml\n"},
	}
	for _, tc := range cases {
		errBuf := captureStderr(t)
		var out bytes.Buffer
		printResponseKey(&out, tc.resp, tc.format)
		if out.String() != tc.stdout || errBuf.String() != tc.stderr {
			t.Errorf("%s: got stdout %q stderr %q, want %q and %q", tc.name, out.String(), errBuf.String(), tc.stdout, tc.stderr)
		}
	}
}

func TestPrintLs(t *testing.T) {
	tree := &client.Response{Action: "get", Node: &client.Node{Key: "/d", Dir: true, Nodes: client.Nodes{
		{Key: "/d/a", Value: "1"},
		{Key: "/d/sub", Dir: true, Nodes: client.Nodes{{Key: "/d/sub/b", Value: "2"}, {Key: "/d/sub/empty", Dir: true}}},
	}}}
	leaf := &client.Response{Action: "get", Node: &client.Node{Key: "/d/a", Value: "1"}}
	cases := []struct {
		name   string
		resp   *client.Response
		format string
		slash  bool
		want   string
	}{
		{"dir", tree, "simple", false, "/d/a\n/d/sub\n/d/sub/b\n/d/sub/empty\n"},
		{"dir -p", tree, "simple", true, "/d/a\n/d/sub/\n/d/sub/b\n/d/sub/empty/\n"},
		{"key", leaf, "simple", true, "/d/a\n"},
		{"extended", leaf, "extended", false, "Key: /d/a\nCreated-Index: 0\nModified-Index: 0\nTTL: 0\nIndex: 0\n\n1\n"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		printLs(&out, tc.resp, tc.format, tc.slash)
		if out.String() != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, out.String(), tc.want)
		}
	}
}

func TestWatchEnv(t *testing.T) {
	resp := &client.Response{Action: "compareAndSwap", Node: &client.Node{Key: "/k", Value: "a b", ModifiedIndex: 42}}
	got := watchEnv(resp, []string{"PATH=/bin"})
	want := []string{"PATH=/bin", "ETCD_WATCH_ACTION=compareAndSwap", "ETCD_WATCH_MODIFIED_INDEX=42", "ETCD_WATCH_KEY=/k", "ETCD_WATCH_VALUE=a b"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestArgOrStdin(t *testing.T) {
	cases := []struct {
		args  []string
		stdin string
		want  string
		err   error
	}{
		{[]string{"k", "v"}, "ignored", "v", nil},
		{[]string{"k"}, "from stdin\n", "from stdin\n", nil},
		{[]string{"k"}, "", "", errNoAvailSrc},
	}
	for _, tc := range cases {
		got, err := argOrStdin(tc.args, strings.NewReader(tc.stdin), 1)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%q with stdin %q: got %q, %v; want %q, %v", tc.args, tc.stdin, got, err, tc.want, tc.err)
		}
	}
}

func TestReadLine(t *testing.T) {
	cases := []struct{ in, want, rest string }{
		{"secret\nrest", "secret", "rest"},
		{"secret\r\n", "secret", ""},
		{"no newline", "no newline", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		r := strings.NewReader(tc.in)
		got, err := readLine(r)
		rest := make([]byte, 16)
		n, _ := r.Read(rest)
		if err != nil || got != tc.want || string(rest[:n]) != tc.rest {
			t.Errorf("%q: got %q, %v, rest %q; want %q, rest %q", tc.in, got, err, rest[:n], tc.want, tc.rest)
		}
	}
}

func TestUsernamePasswordWithColon(t *testing.T) {
	user, pass, err := usernamePassword("Password: ", "root:pa:ss")
	if user != "root" || pass != "pa:ss" || err != nil {
		t.Errorf("got %q, %q, %v", user, pass, err)
	}
}

func TestIsConnectionError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	cases := []struct {
		err  error
		want bool
	}{
		{refused, true},
		{&client.ClusterError{Errors: []error{refused, refused}}, true},
		{&client.ClusterError{Errors: []error{refused, errors.New("x")}}, false},
		{&net.OpError{Op: "write", Err: syscall.ECONNREFUSED}, true},
		{syscall.ECONNRESET, false},
		{client.Error{Code: 100}, false},
	}
	for _, tc := range cases {
		if got := isConnectionError(tc.err); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestPrintStatusTable(t *testing.T) {
	var out bytes.Buffer
	printStatusTable(&out, []endpointState{
		{Endpoint: "http://10.0.0.1:2379", ID: "8e9e05c52164694d", Name: "infra1", ServerVersion: "3.4.0", State: "StateLeader", Leader: "8e9e05c52164694d", IsLeader: true, RaftTerm: 2, RaftIndex: 1204, EtcdIndex: 1201},
		{Endpoint: "http://10.0.0.2:2379", ID: "91bc3c398fb3c146", Name: "infra2", ServerVersion: "3.4.0", State: "StateFollower", Leader: "8e9e05c52164694d", RaftTerm: 2, RaftIndex: 1204, EtcdIndex: 1201},
	})
	want := "" +
		"ENDPOINT              ID                NAME    VERSION  STATE          IS LEADER  RAFT TERM  RAFT INDEX  ETCD INDEX\n" +
		"http://10.0.0.1:2379  8e9e05c52164694d  infra1  3.4.0    StateLeader    true       2          1204        1201\n" +
		"http://10.0.0.2:2379  91bc3c398fb3c146  infra2  3.4.0    StateFollower  false      2          1204        1201\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// writeCert writes a self-signed ECDSA certificate and its key as PEM
// files in dir and returns their paths.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "client")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name              string
		cert, key, ca     string
		wantErr           string
		wantCerts, wantCA bool
	}{
		{name: "none"},
		{name: "cert and key", cert: cert, key: key, wantCerts: true},
		{name: "CA", ca: cert, wantCA: true},
		{name: "CA without PEM", ca: notPEM, wantCA: true}, // etcd accepts it: an empty pool
		{name: "cert alone", cert: cert, wantErr: "KeyFile and CertFile must both be present[key: , cert: " + cert + "]"},
		{name: "key alone", key: key, wantErr: "KeyFile and CertFile must both be present[key: " + key + ", cert: ]"},
		{name: "missing cert", cert: missing, key: key, wantErr: "open " + missing + ": no such file or directory"},
		{name: "missing CA", ca: missing, wantErr: "open " + missing + ": no such file or directory"},
		{name: "cert as key", cert: cert, key: cert, wantErr: "tls: found a certificate rather than a key in the PEM for the private key"},
	}
	for _, tc := range cases {
		cfg, err := tlsConfig(tc.cert, tc.key, tc.ca, "")
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: got error %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if (len(cfg.Certificates) == 1) != tc.wantCerts || (cfg.RootCAs != nil) != tc.wantCA {
			t.Errorf("%s: %d certificates, root CAs %v", tc.name, len(cfg.Certificates), cfg.RootCAs != nil)
		}
	}
}
