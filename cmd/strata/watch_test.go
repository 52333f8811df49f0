package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestH2CThousandsOfWatchesOneConnection: HTTP/2 cleartext with prior
// knowledge lets one TCP connection carry thousands of long-poll watches
// (etcd v2 users ran out of sockets with one connection per watch).
func TestH2CThousandsOfWatchesOneConnection(t *testing.T) {
	base := startStrata(t)
	var dials atomic.Int32
	tr := &http.Transport{
		Protocols: new(http.Protocols),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	// One request first: the client learns the server's stream limit from
	// its SETTINGS before it opens thousands of streams.
	if r, err := h2.Get(base + "/version"); err != nil || r.ProtoMajor != 2 {
		t.Fatalf("h2c prior knowledge: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	const n = 2000
	type result struct {
		key, value string
		proto      int
	}
	results := make(chan result, n)
	var registered sync.WaitGroup
	for i := 0; i < n; i++ {
		registered.Add(1)
		go func(i int) {
			resp, err := h2.Get(fmt.Sprintf("%s/v2/keys/w/k%d?wait=true", base, i))
			registered.Done() // headers arrive once the watch is registered
			if err != nil {
				results <- result{key: err.Error()}
				return
			}
			defer resp.Body.Close()
			var ev struct{ Node struct{ Key, Value string } }
			json.NewDecoder(resp.Body).Decode(&ev)
			results <- result{ev.Node.Key, ev.Node.Value, resp.ProtoMajor}
		}(i)
	}
	registered.Wait()
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		if _, err := put(c, base, fmt.Sprintf("/w/k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		r := <-results
		var k int
		if _, err := fmt.Sscanf(r.key, "/w/k%d", &k); err != nil || r.value != fmt.Sprintf("v%d", k) || r.proto != 2 {
			t.Fatalf("watch answered %+v", r)
		}
		seen[r.key] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct watches answered, want %d", len(seen), n)
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("%d TCP connections for %d watches, want 1", d, n)
	}
}

// TestStreamWatch: stream=true sends one JSON event per line, each change
// once, in index order, until the client goes away.
func TestStreamWatch(t *testing.T) {
	base := startStrata(t)
	c := &http.Client{Timeout: 10 * time.Second}
	put(c, base, "/s/dir/a", "0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v2/keys/s/dir/a?wait=true&stream=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for i := 1; i <= 3; i++ {
		put(c, base, "/s/dir/a", fmt.Sprint(i))
	}
	delReq, _ := http.NewRequest("DELETE", base+"/v2/keys/s/dir?recursive=true", nil)
	if r, err := c.Do(delReq); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for len(got) < 4 && sc.Scan() {
		var ev struct {
			Action string
			Node   struct{ Key, Value string }
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, ev.Action+" "+ev.Node.Key+" "+ev.Node.Value)
	}
	want := "set /s/dir/a 1|set /s/dir/a 2|set /s/dir/a 3|delete /s/dir "
	if strings.Join(got, "|") != want {
		t.Fatalf("stream:\n got %q\nwant %q", strings.Join(got, "|"), want)
	}
}
