package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// TestClusterMembership changes a real cluster's membership at run time
// under continuous writes: a 4th member is added (with etcd's official
// client MembersAPI) to a 3-member cluster holding many keys and a
// compacted log, started with --initial-cluster-state existing, and
// catches up by snapshot to the same tree; a follower is removed and
// stops itself; the leader is removed and a new one is elected; the
// joined member restarts with its membership intact; the members API
// answers etcd's status codes and messages; no acknowledged write is
// lost. The cluster holds 100,000 keys (STRATA_SMALL=1: 20,000).
func TestClusterMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4-process cluster")
	}
	keys := 100000
	if os.Getenv("STRATA_SMALL") != "" {
		keys = 20000
	}
	all := newTestCluster(t, 4, "--snapshot-count", "2000", "--experimental-snapshot-catchup-entries", "200")
	ms, m4 := all[:3], all[3]
	for _, m := range ms { // the 3 founders know only each other
		m.args = setFlag(m.args, "--initial-cluster", initialCluster(ms...))
	}
	m4.args = append(setFlag(m4.args, "--initial-cluster", initialCluster(ms[0], m4)), "--initial-cluster-state", "existing")
	startAll(t, ms)

	// Load keys through every member, 32 keep-alive writers.
	start := time.Now()
	loadKeys(t, ms, keys)
	t.Logf("loaded %d keys in %v", keys, time.Since(start).Round(time.Millisecond))

	// Writers run through everything below; each retries a key on
	// another member until it is acknowledged (or gives up on it).
	w := startWriters(t, 4)
	w.setTargets(ms)

	mapi := client.NewMembersAPI(newClient(t, ms[0].clientURL))
	ctx := context.Background()
	added, err := mapi.Add(ctx, m4.peerURL)
	if err != nil {
		t.Fatalf("MembersAPI.Add: %v", err)
	}
	if added.Name != "" || len(added.PeerURLs) != 1 || added.PeerURLs[0] != m4.peerURL || len(added.ClientURLs) != 0 {
		t.Fatalf("added member: %+v", added)
	}
	list, err := mapi.List(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("MembersAPI.List after Add: %+v %v", list, err)
	}
	// The new member is not started: etcd's strict reconfiguration check
	// refuses another change until it is.
	// (Asked of the member that applied the add: another may lag.)
	code, b, err := doJSON("POST", ms[0].clientURL+"/v2/members", `{"peerURLs":["http://127.0.0.1:1"]}`)
	if err != nil || code != 500 || string(b) != `{"message":"Internal Server Error"}` {
		t.Fatalf("add while a member is not started: %d %s %v", code, b, err)
	}

	joined := time.Now()
	waitReady(t, m4.start(t))
	if m4.id != added.ID {
		t.Fatalf("joined member took ID %s, the cluster added %s", m4.id, added.ID)
	}
	w.setTargets(all)
	body := convergeWith(t, all, w)
	caughtUp := time.Since(joined)
	if n := len(flatten(t, body)); n < keys {
		t.Fatalf("converged tree holds %d keys, want at least %d", n, keys)
	}
	if !strings.Contains(m4.stderr(), "peer: received snapshot") {
		t.Fatalf("%s caught up without a snapshot", m4.name)
	}
	t.Logf("member 4 joined and caught up with %d keys (by snapshot) %v after its start", keys, caughtUp.Round(time.Millisecond))
	checkMembersAPI(t, all) // names and client URLs on every member, the new one included

	// The members API's errors, as etcd 3.4 answers them.
	for _, tc := range []struct{ method, path, body, ctype string }{
		{"POST", "/v2/members", `{"peerURLs":["` + ms[0].peerURL + `"]}`, "application/json"},
		{"POST", "/v2/members", `{bad`, "application/json"},
		{"POST", "/v2/members", `{"peerURLs":["foo"]}`, "application/json"},
		{"POST", "/v2/members", `{"peerURLs":["http://127.0.0.1:1/x"]}`, "application/json"},
		{"POST", "/v2/members", `{}`, "application/json"},
		{"POST", "/v2/members", `{"peerURLs":["http://127.0.0.1:1"]}`, "text/plain"},
		{"PUT", "/v2/members/1234", `{"peerURLs":["http://127.0.0.1:1"]}`, "application/json"},
		{"PUT", "/v2/members/" + ms[1].id, `{"peerURLs":["` + ms[0].peerURL + `"]}`, "application/json"},
		{"PUT", "/v2/members/" + ms[1].id, `{"peerURLs":["` + ms[1].peerURL + `"]}`, "application/json"},
		{"DELETE", "/v2/members/1234", "", ""},
		{"DELETE", "/v2/members/zz", "", ""},
		{"DELETE", "/v2/members", "", ""},
		{"GET", "/v2/members/foo", "", ""},
	} {
		want := map[string]string{
			"POST {\"peerURLs\":[\"" + ms[0].peerURL + "\"]}": `409 {"message":"membership: peerURL exists"}`,
			"POST {bad":                 `400 {"message":"invalid character 'b' looking for beginning of object key string"}`,
			`POST {"peerURLs":["foo"]}`: `400 {"message":"URL scheme must be http, https, unix, or unixs: foo"}`,
			`POST {"peerURLs":["http://127.0.0.1:1/x"]}`: `400 {"message":"URL must not contain a path: http://127.0.0.1:1/x"}`,
			"POST {}": `400 {"message":"no valid URLs given"}`,
			`POST {"peerURLs":["http://127.0.0.1:1"]}`: `415 {"message":"Bad Content-Type text/plain, accept application/json"}`,
			"PUT /v2/members/1234":                     `404 {"message":"No such member: 1234"}`,
			"PUT conflict":                             `409 {"message":"membership: peerURL exists"}`,
			"PUT same":                                 `204 `,
			"DELETE /v2/members/1234":                  `404 {"message":"No such member: 1234"}`,
			"DELETE /v2/members/zz":                    `404 {"message":"No such member: zz"}`,
			"DELETE /v2/members":                       "405 Method Not Allowed\n",
			"GET /v2/members/foo":                      `404 {"message":"Not found"}`,
		}
		key := tc.method + " " + tc.body
		switch {
		case tc.method == "PUT" && strings.Contains(tc.body, ms[0].peerURL):
			key = "PUT conflict"
		case tc.method == "PUT" && strings.Contains(tc.body, ms[1].peerURL):
			key = "PUT same"
		case tc.method != "POST":
			key = tc.method + " " + tc.path
		}
		code, b, err := doJSONType(tc.method, ms[0].clientURL+tc.path, tc.body, tc.ctype)
		// Exact bytes: etcd's {"message":...} bodies end without a newline.
		if got := fmt.Sprintf("%d %s", code, b); err != nil || got != want[key] {
			t.Errorf("%s %s %s: got %q %v, want %q", tc.method, tc.path, tc.body, got, err, want[key])
		}
	}

	// Remove a follower (not the new member) with the official client.
	leader := findLeader(t, all)
	var follower *testMember
	for _, m := range ms {
		if m != leader {
			follower = m
			break
		}
	}
	if err := client.NewMembersAPI(newClient(t, leader.clientURL)).Remove(ctx, follower.id); err != nil {
		t.Fatalf("MembersAPI.Remove(%s): %v", follower.name, err)
	}
	waitExit(t, follower)
	rest := without(all, follower)
	w.setTargets(rest)
	code, b, err = doJSON("DELETE", leader.clientURL+"/v2/members/"+follower.id, "")
	if err != nil || code != 410 || string(b) != fmt.Sprintf(`{"message":"Member permanently removed: %s"}`, follower.id) {
		t.Fatalf("remove a removed member: %d %s %v", code, b, err)
	}
	t.Logf("removed follower %s (%s)", follower.name, follower.id)

	// Remove the leader, through another member.
	other := rest[0]
	if other == leader {
		other = rest[1]
	}
	removedAt := time.Now()
	if code, b, err := doJSON("DELETE", other.clientURL+"/v2/members/"+leader.id, ""); err != nil || code != 204 || len(b) != 0 {
		t.Fatalf("remove the leader %s: %d %q %v", leader.name, code, b, err)
	}
	waitExit(t, leader)
	rest = without(rest, leader)
	w.setTargets(rest)
	newLeader := findLeader(t, rest)
	if _, err := put(&http.Client{Timeout: 10 * time.Second}, newLeader.clientURL, "/after/leader-removal", "ok"); err != nil {
		t.Fatalf("write after the leader's removal: %v", err)
	}
	t.Logf("removed leader %s; %s leads; a write served %v after the removal", leader.name, newLeader.name, time.Since(removedAt).Round(time.Millisecond))
	list, err = client.NewMembersAPI(newClient(t, newLeader.clientURL)).List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("MembersAPI.List after two removals: %+v %v", list, err)
	}

	// The joined member restarts from its data dir, membership intact.
	m4.kill9(t)
	waitReady(t, m4.start(t))
	checkMembersAPI(t, rest)

	acked, failed := w.stop()
	body = converge(t, rest)
	tree := flatten(t, body)
	for k, v := range acked {
		if tree[k] != v {
			t.Fatalf("acknowledged write %s=%s: the converged tree has %q", k, v, tree[k])
		}
	}
	t.Logf("%d writes acknowledged during the membership changes, %d attempts failed and were retried", len(acked), failed)
	for _, m := range []*testMember{follower, leader} {
		if code := m.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(m.stderr(), "strata: the member has been permanently removed from the cluster") {
			t.Fatalf("removed member %s exited with %d:\n%s", m.name, code, tail(m.stderr(), 10))
		}
	}
}

func initialCluster(ms ...*testMember) string {
	var ic []string
	for _, m := range ms {
		ic = append(ic, m.name+"="+m.peerURL)
	}
	return strings.Join(ic, ",")
}

func setFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag && i+1 < len(out) {
			out[i+1] = value
		}
	}
	return out
}

func without(ms []*testMember, x *testMember) []*testMember {
	var out []*testMember
	for _, m := range ms {
		if m != x {
			out = append(out, m)
		}
	}
	return out
}

func waitExit(t *testing.T, m *testMember) {
	t.Helper()
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop within 20s of its removal", m.name)
	}
}

func newClient(t *testing.T, url string) client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{url}, Transport: client.DefaultTransport, HeaderTimeoutPerRequest: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func doJSON(method, url, body string) (int, []byte, error) {
	return doJSONType(method, url, body, "application/json")
}

func doJSONType(method, url, body, ctype string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// loadKeys writes n keys /load/k<i> through the members, 32 writers.
func loadKeys(t *testing.T, ms []*testMember, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				if _, err := put(c, ms[g%len(ms)].clientURL, "/load/k"+strconv.Itoa(k), "value-"+strconv.Itoa(k)); err != nil {
					errs <- fmt.Errorf("load key %d: %w", k, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// writers write distinct keys continuously to the target members,
// retrying a key on the next member after a failure, and remember what
// was acknowledged.
type writers struct {
	mu      sync.Mutex
	targets []*testMember
	acked   map[string]string
	failed  int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startWriters(t *testing.T, n int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{acked: map[string]string{}, cancel: cancel}
	t.Cleanup(func() { cancel(); w.wg.Wait() })
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func(g int) {
			defer w.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			for k := 0; ctx.Err() == nil; k++ {
				key, val := fmt.Sprintf("/during/w%d/k%05d", g, k), fmt.Sprintf("v%d", k)
				for try := 0; ctx.Err() == nil; try++ {
					w.mu.Lock()
					var url string
					if len(w.targets) > 0 {
						url = w.targets[(g+try)%len(w.targets)].clientURL
					}
					w.mu.Unlock()
					if url != "" {
						if _, err := put(c, url, key, val); err == nil {
							w.mu.Lock()
							w.acked[key] = val
							w.mu.Unlock()
							break
						}
					}
					w.mu.Lock()
					w.failed++
					w.mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(g)
	}
	return w
}

func (w *writers) setTargets(ms []*testMember) {
	w.mu.Lock()
	w.targets = append([]*testMember(nil), ms...)
	w.mu.Unlock()
}

func (w *writers) stop() (map[string]string, int) {
	w.cancel()
	w.wg.Wait()
	return w.acked, w.failed
}

// convergeWith pauses the writers (retargeting them nowhere) while the
// members converge, then lets them go on.
func convergeWith(t *testing.T, ms []*testMember, w *writers) []byte {
	t.Helper()
	w.mu.Lock()
	saved := w.targets
	w.targets = nil
	w.mu.Unlock()
	body := converge(t, ms)
	w.setTargets(saved)
	return body
}
