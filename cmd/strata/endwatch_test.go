package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"
)

// TestEndedWatchGoClient: a member that loses its leader ends its open
// watches with etcd's error JSON (300, naming the lost leader) and aborts
// the response; the official Go client, watching through that member,
// re-watches on the next member and sees the next write without an error.
//
// Which follower passes through "no leader" depends on the election, but
// the new leader always does (it was a candidate): so a raw watch and a Go
// client watch are opened through each follower, and the new leader's raw
// watch must have ended while both Go clients must see the write.
func TestEndedWatchGoClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-process cluster")
	}
	ms := newTestCluster(t, 3, "--heartbeat-interval", "50", "--election-timeout", "500")
	startAll(t, ms)
	hc := &http.Client{Timeout: 30 * time.Second}
	idx, err := put(hc, ms[0].clientURL, "/k", "v0")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, ms)
	lead := findLeader(t, ms)
	var followers []*testMember
	for _, m := range ms {
		if m != lead {
			followers = append(followers, m)
		}
	}

	raw := map[*testMember]chan string{}
	type next struct {
		r   *client.Response
		err error
	}
	got := map[*testMember]chan next{}
	for i, f := range followers {
		resp, err := hc.Get(f.clientURL + "/v2/keys/k?wait=true")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("raw watch on %s: %v %v", f.name, resp, err)
		}
		raw[f] = make(chan string, 1)
		go func(ch chan string) {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- fmt.Sprintf("%s|%v", b, err)
		}(raw[f])

		// A Go client pinned (first endpoint) to f: New shuffles the
		// endpoints, so draw until f comes first.
		var c client.Client
		for c == nil || c.Endpoints()[0] != f.clientURL {
			if c, err = client.New(client.Config{
				Endpoints: []string{f.clientURL, followers[1-i].clientURL},
				Transport: client.DefaultTransport, HeaderTimeoutPerRequest: 5 * time.Second,
			}); err != nil {
				t.Fatal(err)
			}
		}
		w := client.NewKeysAPI(c).Watcher("/k", &client.WatcherOptions{AfterIndex: idx})
		got[f] = make(chan next, 1)
		go func(ch chan next, name string) {
			// As programs do, call Next again after an error: the client
			// fails over within one Next, but the second member may end
			// the retried watch too when it, later, drops the dead leader.
			for i := 0; ; i++ {
				r, err := w.Next(context.Background())
				if err == nil || i == 2 {
					ch <- next{r, err}
					return
				}
				t.Logf("Go client pinned to %s: Next error %d: %v", name, i+1, err)
			}
		}(got[f], f.name)
	}
	time.Sleep(300 * time.Millisecond) // let the clients' watches reach the followers

	lead.kill9(t)
	newLead := findLeader(t, followers)
	select {
	case s := <-raw[newLead]:
		want := regexp.MustCompile(`^\{"errorCode":300,"message":"Raft Internal Error","cause":"member ` + newLead.id +
			` lost its leader ` + lead.id + `","index":[0-9]+\}\n\|unexpected EOF$`)
		if !want.MatchString(s) {
			t.Fatalf("raw watch on the new leader ended with %q, want %s", s, want)
		}
		t.Logf("raw watch on %s (lost its leader): %q", newLead.name, s)
	case <-time.After(15 * time.Second):
		t.Fatal("the new leader's open watch was not ended after it lost its leader")
	}
	if _, err := put(hc, newLead.clientURL, "/k", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range followers {
		select {
		case n := <-got[f]:
			if n.err != nil || n.r.Action != "set" || n.r.Node.Value != "v1" {
				t.Fatalf("Go client pinned to %s, watch across the leader kill: %+v %v", f.name, n.r, n.err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the Go client pinned to %s did not see the write made after the leader kill", f.name)
		}
	}
}
