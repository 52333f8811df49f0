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
	watched := followers[0]

	// A raw watch on the follower, to see exactly what ends it.
	resp, err := hc.Get(watched.clientURL + "/v2/keys/k?wait=true")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("raw watch: %v %v", resp, err)
	}
	raw := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		raw <- fmt.Sprintf("%s|%v", b, err)
	}()

	// The Go client, its pinned (first) endpoint the follower that will
	// lose its leader: New shuffles the endpoints, so draw until it is.
	var c client.Client
	for c == nil || c.Endpoints()[0] != watched.clientURL {
		if c, err = client.New(client.Config{
			Endpoints: []string{watched.clientURL, followers[1].clientURL},
			Transport: client.DefaultTransport, HeaderTimeoutPerRequest: 5 * time.Second,
		}); err != nil {
			t.Fatal(err)
		}
	}
	w := client.NewKeysAPI(c).Watcher("/k", &client.WatcherOptions{AfterIndex: idx})
	type next struct {
		r   *client.Response
		err error
	}
	got := make(chan next, 1)
	go func() {
		r, err := w.Next(context.Background())
		got <- next{r, err}
	}()
	time.Sleep(300 * time.Millisecond) // let the client's watch reach the follower

	lead.kill9(t)
	select {
	case s := <-raw:
		want := regexp.MustCompile(`^\{"errorCode":300,"message":"Raft Internal Error","cause":"member ` + watched.id +
			` lost its leader ` + lead.id + `","index":[0-9]+\}\n\|unexpected EOF$`)
		if !want.MatchString(s) {
			t.Fatalf("raw watch ended with %q, want %s", s, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the follower's open watch was not ended after it lost its leader")
	}
	findLeader(t, followers)
	if _, err := put(hc, followers[1].clientURL, "/k", "v1"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n.err != nil || n.r.Action != "set" || n.r.Node.Value != "v1" {
			t.Fatalf("Go client watch across the leader kill: %+v %v", n.r, n.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the Go client's watch did not see the write made after the leader kill")
	}
}
