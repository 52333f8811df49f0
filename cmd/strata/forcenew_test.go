package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestForceNewCluster is etcd's disaster recovery: a 3-member cluster
// loses two members for good (and the survivor is killed too, so its
// lazily written commit index may lag what it acknowledged); the survivor
// restarts with --force-new-cluster, serves every acknowledged write, and
// two fresh members join it (POST /v2/members, then
// --initial-cluster-state existing), catching up with all of it.
func TestForceNewCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster")
	}
	for _, be := range []string{"memory", "bbolt"} { // an image-restored and a durable state machine
		t.Run(be, func(t *testing.T) { testForceNewCluster(t, be) })
	}
}

func testForceNewCluster(t *testing.T, backend string) {
	ms := newTestCluster(t, 3, "--snapshot-count", "300", "--experimental-snapshot-catchup-entries", "50", "--backend", backend)
	startAll(t, ms)
	leader := findLeader(t, ms)
	c := &http.Client{Timeout: 10 * time.Second}
	acked := map[string]string{}
	for i := 0; i < 500; i++ {
		k, v := fmt.Sprintf("/fnc/k%04d", i), fmt.Sprintf("v%d", i)
		if _, err := put(c, leader.clientURL, k, v); err != nil {
			t.Fatalf("write %s: %v", k, err)
		}
		acked[k] = v
	}
	for _, m := range ms {
		if m != leader {
			m.kill9(t)
		}
	}
	leader.kill9(t) // right after its last acknowledgement
	survivor := leader

	waitReady(t, survivor.start(t, "--force-new-cluster"))
	if !strings.Contains(survivor.stderr(), "--force-new-cluster: this member is now the only one of its cluster") {
		t.Fatalf("no force-new-cluster log line:\n%s", tail(survivor.stderr(), 20))
	}
	tree := flatten(t, converge(t, []*testMember{survivor}))
	for k, v := range acked {
		if tree[k] != v {
			t.Fatalf("acknowledged write %s=%s: the forced member has %q", k, v, tree[k])
		}
	}
	if got := memberIDs(t, survivor); len(got) != 1 || got[0] != survivor.id {
		t.Fatalf("members after --force-new-cluster: %v, want only %s", got, survivor.id)
	}
	if _, err := put(c, survivor.clientURL, "/fnc/after", "alone"); err != nil {
		t.Fatalf("write to the forced member: %v", err)
	}
	acked["/fnc/after"] = "alone"

	// Restart without the flag (as a runbook says): still alone, data kept.
	survivor.cmd.Process.Signal(syscall.SIGTERM)
	<-survivor.exited
	waitReady(t, survivor.start(t))

	// Two fresh members join, one at a time (a second add needs the
	// first started: etcd's strict reconfiguration check).
	fresh := newTestCluster(t, 2, "--backend", backend)
	all := []*testMember{survivor}
	for i, m := range fresh {
		m.name = fmt.Sprintf("new%d", i+1)
		// Refused with 500 until the previous member has published its
		// attributes (etcd's check that enough members are started).
		var code int
		var b []byte
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if code, b, err = doJSON("POST", survivor.clientURL+"/v2/members", `{"peerURLs":["`+m.peerURL+`"]}`); err == nil && code != 500 {
				break
			}
		}
		if err != nil || code != 201 {
			t.Fatalf("add %s: %d %s %v", m.name, code, b, err)
		}
		all = append(all, m)
		m.args = setFlag(m.args, "--name", m.name)
		m.args = append(setFlag(m.args, "--initial-cluster", initialCluster(all...)), "--initial-cluster-state", "existing")
		waitReady(t, m.start(t))
	}
	tree = flatten(t, converge(t, all))
	for k, v := range acked {
		if tree[k] != v {
			t.Fatalf("acknowledged write %s=%s: the regrown cluster has %q", k, v, tree[k])
		}
	}
	if got := memberIDs(t, fresh[1]); len(got) != 3 {
		t.Fatalf("members after two joins: %v", got)
	}
	// The regrown cluster survives losing its old member.
	survivor.kill9(t)
	rest := all[1:]
	l := findLeader(t, rest)
	if _, err := put(c, l.clientURL, "/fnc/regrown", "ok"); err != nil {
		t.Fatalf("write after losing the old member: %v", err)
	}
	t.Logf("%d acknowledged writes kept through --force-new-cluster; 2 members joined; %s leads after the old member's loss", len(acked), l.name)
}

// memberIDs lists the member IDs m's /v2/members reports.
func memberIDs(t *testing.T, m *testMember) []string {
	t.Helper()
	resp, err := http.Get(m.clientURL + "/v2/members")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Members []struct{ ID string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, mm := range body.Members {
		ids = append(ids, mm.ID)
	}
	return ids
}

// TestForceNewClusterOnNewDataDir: on a data dir without a log the flag
// changes nothing, as etcd: the member bootstraps and serves.
func TestForceNewClusterOnNewDataDir(t *testing.T) {
	url := startStrata(t, "--force-new-cluster")
	c := &http.Client{Timeout: 5 * time.Second}
	if _, err := put(c, url, "/fresh", "v"); err != nil {
		t.Fatal(err)
	}
	if n, code, err := get(c, url, "/fresh"); err != nil || code != 200 || n.Value != "v" {
		t.Fatalf("GET /fresh: %+v %d %v", n, code, err)
	}
}
