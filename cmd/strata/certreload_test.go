package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/internal/tlsutil/certtest"
)

// servedCN dials addr anew and returns the CN of the certificate served.
func servedCN(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// rotate replaces a certificate and key as cert-manager or certbot do:
// new files renamed over the old ones.
func rotate(t *testing.T, ca *certtest.CA, f certtest.Files, cn string, usages []x509.ExtKeyUsage) {
	t.Helper()
	c, k := ca.Issue(t, cn, usages)
	for path, b := range map[string][]byte{f.Key: k, f.Cert: c} {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientCertRotation: the client certificate is re-read when its files
// change: new connections get the new one without a restart, an open
// keep-alive connection goes on, and files that do not load leave the last
// good certificate served (and logged once).
func TestClientCertRotation(t *testing.T) {
	ca := certtest.NewCA(t, "rotation CA")
	f := ca.WriteFiles(t, t.TempDir(), "server", "first", certtest.Server)
	url, logs := startStrataLog(t, "--listen-client-urls", "https://127.0.0.1:0", "--cert-file", f.Cert, "--key-file", f.Key)
	addr := strings.TrimPrefix(url, "https://")
	cfg := &tls.Config{RootCAs: ca.Pool}
	if cn := servedCN(t, addr, cfg); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	if code, _, err := doReq(kept, "PUT", url+"/v2/keys/a", "1"); err != nil || code != 201 {
		t.Fatalf("PUT: %d %v", code, err)
	}

	rotate(t, ca, f, "second", certtest.Server)
	if cn := servedCN(t, addr, cfg); cn != "second" {
		t.Fatalf("after rotation served %q, want second", cn)
	}
	waitLog(t, logs, `msg="tls: certificate reloaded"`)
	if code, _, err := doReq(kept, "GET", url+"/v2/keys/a", ""); err != nil || code != 200 {
		t.Fatalf("GET on the keep-alive connection after rotation: %d %v", code, err)
	}

	// A half-written certificate: the last good one goes on.
	if err := os.WriteFile(f.Cert, []byte("-----BEGIN CERTIFICATE-----\nMIIB"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if cn := servedCN(t, addr, cfg); cn != "second" {
			t.Fatalf("with a broken file served %q, want second", cn)
		}
	}
	waitLog(t, logs, "the certificate files changed but do not load: serving the previous certificate")
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("the broken files were logged %d times, want once", n)
	}
	rotate(t, ca, f, "third", certtest.Server)
	if cn := servedCN(t, addr, cfg); cn != "third" {
		t.Fatalf("after the fix served %q, want third", cn)
	}
}

// TestPeerCertRotation: a member's peer certificate is re-read on its
// files' change, for the peer port it serves and for the connections it
// dials: after rotating m1's certificate (same CA), its peer port serves
// the new one, and a member restarted afterwards (so m1 dials it anew and
// is dialled anew) replicates with it; a certificate from a foreign CA is
// presented (and refused) on m1's next dial, and a good one heals it.
func TestPeerCertRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster")
	}
	ca := certtest.NewCA(t, "peer CA")
	dir := t.TempDir()
	var certs []certtest.Files
	for _, n := range []string{"m1", "m2", "m3"} {
		certs = append(certs, ca.WriteFiles(t, dir, n, n, certtest.Both))
	}
	ms := tlsCluster(t, 3, certs[0].CA, certs)
	startAll(t, ms)
	kp := ca.KeyPair(t, "probe", certtest.Client)
	cfg := &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{kp}}
	addr := strings.TrimPrefix(ms[0].peerURL, "https://")
	if cn := servedCN(t, addr, cfg); cn != "m1" {
		t.Fatalf("m1 peer port served %q", cn)
	}
	rotate(t, ca, certs[0], "m1-rotated", certtest.Both)
	if cn := servedCN(t, addr, cfg); cn != "m1-rotated" {
		t.Fatalf("after rotation m1 peer port served %q, want m1-rotated", cn)
	}
	ms[1].kill9(t)
	waitReady(t, ms[1].start(t))
	putAfterElection(t, ms, ms[0], "/after-rotation", "ok")
	if got := flatten(t, converge(t, ms))["/after-rotation"]; got != "ok" {
		t.Fatalf("/after-rotation = %q", got)
	}
	waitLog(t, memberStderr{ms[0]}, "tls: certificate reloaded")

	// The dialling side re-reads too: rotated to a certificate of a CA
	// the others do not trust, m1 is refused by m2 when it dials it anew,
	// by that certificate's name; rotated back to a good one, it heals.
	foreign := certtest.NewCA(t, "foreign CA")
	rotate(t, foreign, certs[0], "m1-foreign", certtest.Both)
	ms[1].kill9(t)
	ready := ms[1].start(t) // not ready while m1 leads: m2 cannot hear it
	waitLog(t, memberStderr{ms[1]}, "peer certificate [CN=m1-foreign,O=strata tests] is not signed by a CA in --peer-trusted-ca-file")
	rotate(t, ca, certs[0], "m1-again", certtest.Both)
	waitReady(t, ready)
	putAfterElection(t, ms, ms[1], "/healed", "yes")
	if got := flatten(t, converge(t, ms))["/healed"]; got != "yes" {
		t.Fatalf("/healed = %q", got)
	}
}

// putAfterElection sets key on m once the members agree on a leader. A
// member that just restarted may still start an election, failing a write
// in flight with 500 (leader changed): the PUT is idempotent, so it is
// retried for a few seconds, and any other answer fails the test.
func putAfterElection(t *testing.T, ms []*testMember, m *testMember, key, value string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		findLeader(t, ms)
		code, body, err := doReq(c, "PUT", m.clientURL+"/v2/keys"+key, value)
		if err == nil && (code == 201 || code == 200) {
			return
		}
		if err == nil && code < 500 || time.Now().After(deadline) {
			t.Fatalf("PUT %s on %s: %d %s %v", key, m.id, code, body, err)
		}
		t.Logf("PUT %s on %s: %d %s %v; retrying after the election", key, m.id, code, body, err)
		time.Sleep(100 * time.Millisecond)
	}
}
