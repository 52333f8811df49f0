package httpd

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// TestWatchHistoryHiddenKeysLikeEtcd drives the official v2 client over
// loopback: a recursive watch from a past index gets the hidden ('_') node
// changed there, as etcd 3.4.23 answered (recorded with
// `etcd --enable-v2=true`):
//
//	PUT /v2/keys/dir/_h value=h; PUT /v2/keys/dir/x value=x
//	GET /v2/keys/dir?wait=true&recursive=true&waitIndex=<_h>
//	  {"action":"set","node":{"key":"/dir/_h","value":"h",...}}
//	PUT /v2/keys/_r value=r; PUT /v2/keys/y value=y
//	GET /v2/keys/?wait=true&recursive=true&waitIndex=<_r>
//	  {"action":"set","node":{"key":"/_r","value":"r",...}}
//
// while a live recursive watch skips them (etcd: PUT /dir/_h2 then /dir/x
// wakes it with /dir/x). The auth store's NUL-named nodes stay hidden.
func TestWatchHistoryHiddenKeysLikeEtcd(t *testing.T) {
	addr, _ := serveConfig(t, true, Config{}, newEngineStore(t), 0)
	c, err := client.New(client.Config{Endpoints: []string{"http://" + addr}, Transport: client.DefaultTransport, HeaderTimeoutPerRequest: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kapi := client.NewKeysAPI(c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	set := func(k, v string) uint64 {
		t.Helper()
		r, err := kapi.Set(ctx, k, v, nil)
		if err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
		return r.Node.ModifiedIndex
	}
	first := func(key string, waitIndex uint64) string {
		t.Helper()
		r, err := kapi.Watcher(key, &client.WatcherOptions{AfterIndex: waitIndex - 1, Recursive: true}).Next(ctx)
		if err != nil {
			t.Fatalf("watch %s from %d: %v", key, waitIndex, err)
		}
		return r.Action + " " + r.Node.Key + "=" + r.Node.Value
	}
	set("/warm-up", "w") // AfterIndex 0 would mean "from now"
	h := set("/dir/_h", "h")
	set("/dir/x", "x")
	r := set("/_r", "r")
	y := set("/y", "y")
	// Auth writes nodes under /_auth\x00: a watch on / from before them
	// must skip to the next ordinary key.
	req, _ := http.NewRequest("PUT", "http://"+addr+"/v2/auth/users/root", strings.NewReader(`{"user":"root","password":"pw"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create root: %s", resp.Status)
	}
	set("/after-auth", "a")
	cases := []struct {
		key  string
		from uint64
		want string
	}{
		{"/dir", h, "set /dir/_h=h"},
		{"/dir", h + 1, "set /dir/x=x"},
		{"/", r, "set /_r=r"},
		{"/", y + 1, "set /after-auth=a"}, // y+1 is the auth store's write
	}
	for _, tc := range cases {
		if got := first(tc.key, tc.from); got != tc.want {
			t.Errorf("recursive watch on %s from %d: %q, want %q", tc.key, tc.from, got, tc.want)
		}
	}

	// Live: the hidden write does not wake a recursive watch. The
	// response head comes once the watch is registered.
	resp, err = http.Get("http://" + addr + "/v2/keys/dir?wait=true&recursive=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	set("/dir/_h2", "h2")
	set("/dir/x", "x3")
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"key":"/dir/x","value":"x3"`) {
		t.Errorf("live recursive watch: %s, want the set of /dir/x", b)
	}
}
