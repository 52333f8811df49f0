package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// srvResponder is a local DNS server answering SRV queries for one zone
// from a table, NXDOMAIN for anything else; it counts the SRV queries.
type srvResponder struct {
	srv     *dns.Server
	addr    string
	mu      sync.Mutex
	records map[string][]dns.SRV // "_etcd-server._tcp.zone." -> records
	queries int
}

func startSRVResponder(t *testing.T, records map[string][]dns.SRV) *srvResponder {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &srvResponder{addr: pc.LocalAddr().String(), records: records}
	r.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, qq := range q.Question {
			if qq.Qtype != dns.TypeSRV {
				continue
			}
			r.queries++
			for _, rec := range r.records[strings.ToLower(qq.Name)] {
				rr := rec
				rr.Hdr = dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 60}
				m.Answer = append(m.Answer, &rr)
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	r.srv.NotifyStartedFunc = func() { close(started) }
	go r.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { r.srv.Shutdown() })
	return r
}

// discoveryMembers is newTestCluster with http://localhost:port
// advertised peer URLs and no --initial-cluster: a discovery finds it.
func discoveryMembers(t *testing.T, n int, extra ...string) []*testMember {
	t.Helper()
	ms := newTestCluster(t, n, extra...)
	for _, m := range ms {
		m.peerURL = strings.Replace(m.peerURL, "127.0.0.1", "localhost", 1)
		m.args = setFlag(m.args, "--initial-advertise-peer-urls", m.peerURL)
		for i := 0; i+1 < len(m.args); i++ {
			if m.args[i] == "--initial-cluster" {
				m.args = append(m.args[:i:i], m.args[i+2:]...)
				break
			}
		}
	}
	return ms
}

// TestDiscoverySRV bootstraps a 3-member cluster from DNS SRV records
// (_etcd-server._tcp.<domain>, served by a local DNS responder; the
// _etcd-server-ssl lookup finds nothing), then restarts a member with the
// DNS server gone: it uses the cluster it recorded at first start.
func TestDiscoverySRV(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster")
	}
	ms := discoveryMembers(t, 3, "--discovery-srv", "strata.test")
	var recs []dns.SRV
	for _, m := range ms {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(m.peerURL, "http://"))
		var p uint16
		fmt.Sscan(port, &p)
		recs = append(recs, dns.SRV{Priority: 0, Weight: 10, Port: p, Target: "localhost."})
	}
	dnsSrv := startSRVResponder(t, map[string][]dns.SRV{"_etcd-server._tcp.strata.test.": recs})
	for _, m := range ms {
		m.env = []string{testDNSServerEnv + "=" + dnsSrv.addr}
	}
	startAll(t, ms)
	findLeader(t, ms)
	c := &http.Client{Timeout: 10 * time.Second}
	if code, _, err := doReq(c, "PUT", ms[0].clientURL+"/v2/keys/srv", "bootstrapped"); err != nil || code != 201 {
		t.Fatalf("write: %d %v", code, err)
	}
	if got := flatten(t, converge(t, ms))["/srv"]; got != "bootstrapped" {
		t.Fatalf("/srv = %q", got)
	}
	checkMembersAPI(t, ms)
	dnsSrv.mu.Lock()
	q := dnsSrv.queries
	dnsSrv.mu.Unlock()
	if q < 6 { // each member: _etcd-server-ssl._tcp and _etcd-server._tcp
		t.Errorf("DNS responder saw %d SRV queries, want at least 6", q)
	}
	b, err := os.ReadFile(filepath.Join(ms[0].dir, discoveredFile))
	want := fmt.Sprintf("0=%s,m1=%s,1=%s", ms[1].peerURL, ms[0].peerURL, ms[2].peerURL)
	if err != nil || !sameClusterMembers(strings.TrimSpace(string(b)), ms) {
		t.Fatalf("recorded cluster %q (%v), want the 3 peer URLs like %q", b, err, want)
	}

	dnsSrv.srv.Shutdown()
	ms[2].kill9(t)
	waitReady(t, ms[2].start(t))
	if !strings.Contains(ms[2].stderr(), "discovery: using the cluster found at first start") {
		t.Fatalf("restart did not use the recorded cluster:\n%s", tail(ms[2].stderr(), 10))
	}
	if got := flatten(t, converge(t, ms))["/srv"]; got != "bootstrapped" {
		t.Fatalf("after restart /srv = %q", got)
	}
}

// sameClusterMembers: ic lists exactly the peer URLs of ms.
func sameClusterMembers(ic string, ms []*testMember) bool {
	parts := strings.Split(ic, ",")
	if len(parts) != len(ms) {
		return false
	}
	for _, m := range ms {
		found := false
		for _, p := range parts {
			_, u, _ := strings.Cut(p, "=")
			found = found || u == m.peerURL
		}
		if !found {
			return false
		}
	}
	return true
}

// TestDiscoverySRVErrors: no records, and a flag conflict, are refused
// with etcd's reasons.
func TestDiscoverySRVErrors(t *testing.T) {
	dnsSrv := startSRVResponder(t, nil)
	t.Setenv(testDNSServerEnv, dnsSrv.addr)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--discovery-srv", "empty.test"}, "--discovery-srv empty.test: no SRV records (looked up _etcd-server-ssl._tcp.empty.test, _etcd-server._tcp.empty.test)"},
		{[]string{"--discovery-srv", "x.test", "--initial-cluster", "default=http://127.0.0.1:2380"}, "multiple discovery or bootstrap flags are set"},
		{[]string{"--discovery-srv", "x.test", "--discovery", "http://127.0.0.1:1/v2/keys/d"}, "multiple discovery or bootstrap flags are set"},
	} {
		args := append([]string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0"}, tc.args...)
		err := run(t.Context(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestDiscoveryV2 bootstraps 3 members through etcd's v2 discovery
// protocol against a discovery directory that a Strata hosts; a 4th
// member with the same URL is refused: the cluster is full. The real etcd,
// when installed, bootstraps through the same Strata-hosted directory.
func TestDiscoveryV2(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster")
	}
	host := startStrata(t)
	c := &http.Client{Timeout: 10 * time.Second}
	durl := host + "/v2/keys/discovery/tok-" + fmt.Sprint(time.Now().UnixNano())
	if code, b, err := doReq(c, "PUT", durl+"/_config/size", "3"); err != nil || code != 201 {
		t.Fatalf("set size: %d %s %v", code, b, err)
	}
	ms := discoveryMembers(t, 4, "--discovery", durl)
	var rs []<-chan error
	for _, m := range ms[:3] {
		rs = append(rs, m.start(t))
	}
	waitReady(t, rs...)
	if code, _, err := doReq(c, "PUT", ms[1].clientURL+"/v2/keys/disc", "v2"); err != nil || code != 201 {
		t.Fatalf("write: %d %v", code, err)
	}
	if got := flatten(t, converge(t, ms[:3]))["/disc"]; got != "v2" {
		t.Fatalf("/disc = %q", got)
	}
	checkMembersAPI(t, ms[:3])
	code, b, err := doReq(c, "GET", durl+"?recursive=true", "")
	if err != nil || code != 200 || strings.Count(string(b), `"value":"m`) != 3 {
		t.Fatalf("discovery dir: %d %s %v", code, b, err)
	}
	// A 4th member: refused, the cluster is full.
	r := ms[3].start(t)
	select {
	case err := <-r:
		if err == nil {
			t.Fatal("a 4th member started")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the 4th member neither failed nor started")
	}
	<-ms[3].exited
	if !strings.Contains(ms[3].stderr(), "discovery: cluster is full") {
		t.Fatalf("4th member:\n%s", tail(ms[3].stderr(), 10))
	}

	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Log("no etcd installed: skipping etcd's bootstrap through a Strata-hosted discovery URL")
		return
	}
	edurl := durl + "-etcd"
	doReq(c, "PUT", edurl+"/_config/size", "3")
	es := discoveryMembers(t, 3)
	for _, m := range es {
		args := []string{"--enable-v2=true", "--discovery", edurl}
		for i := 0; i+1 < len(m.args); i += 2 {
			if m.args[i] != "--initial-cluster-token" && m.args[i] != "--log-level" {
				args = append(args, m.args[i], m.args[i+1])
			}
		}
		cmd := exec.Command(etcd, args...)
		cmd.Stderr = memberLog{m}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, b, err := doReq(c, "GET", es[0].clientURL+"/v2/members", "")
		if err == nil && code == 200 && strings.Count(string(b), `"id"`) == 3 && !strings.Contains(string(b), `"name":""`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not bootstrap through the Strata-hosted discovery URL: %d %s %v\n%s", code, b, err, tail(es[0].stderr(), 20))
		}
	}
	t.Logf("3 strata members and 3 etcd members bootstrapped through Strata-hosted discovery directories")
}
