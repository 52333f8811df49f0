package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"
)

// These tests drive a real strata over loopback with etcd's official v2
// client, the way existing etcd users' programs will.

func newKeysAPI(t *testing.T, url string) (client.KeysAPI, client.Client) {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{url}, Transport: client.DefaultTransport, HeaderTimeoutPerRequest: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return client.NewKeysAPI(c), c
}

func errCode(err error) int {
	var e client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// forEachBackend runs a client test against a fresh server per backend.
func forEachBackend(t *testing.T, test func(t *testing.T, url string)) {
	for _, be := range backendNames() {
		t.Run(be, func(t *testing.T) { test(t, startStrata(t, "--backend", be)) })
	}
}

func TestClientKeys(t *testing.T) { forEachBackend(t, testClientKeys) }

func TestClientTTLAndWatchers(t *testing.T) { forEachBackend(t, testClientTTLAndWatchers) }

func testClientKeys(t *testing.T, url string) {
	kapi, _ := newKeysAPI(t, url)
	ctx := context.Background()

	r, err := kapi.Set(ctx, "/foo", "bar", nil)
	if err != nil || r.Action != "set" || r.Node.Value != "bar" || r.PrevNode != nil {
		t.Fatalf("set: %+v %v", r, err)
	}
	first := r.Node.ModifiedIndex
	if r.Index != first {
		t.Fatalf("X-Etcd-Index %d, node index %d", r.Index, first)
	}
	r, err = kapi.Get(ctx, "/foo", nil)
	if err != nil || r.Node.Value != "bar" || r.Node.CreatedIndex != first {
		t.Fatalf("get: %+v %v", r, err)
	}
	if _, err = kapi.Create(ctx, "/foo", "again"); errCode(err) != client.ErrorCodeNodeExist {
		t.Fatalf("create existing: %v", err)
	}
	r, err = kapi.Update(ctx, "/foo", "baz")
	if err != nil || r.Action != "update" || r.PrevNode.Value != "bar" || r.Node.ModifiedIndex != first+1 {
		t.Fatalf("update: %+v %v", r, err)
	}
	if _, err = kapi.Set(ctx, "/foo", "x", &client.SetOptions{PrevValue: "nope"}); errCode(err) != client.ErrorCodeTestFailed {
		t.Fatalf("cas mismatch: %v", err)
	}
	r, err = kapi.Set(ctx, "/foo", "cas", &client.SetOptions{PrevIndex: first + 1})
	if err != nil || r.Action != "compareAndSwap" || r.Node.Value != "cas" {
		t.Fatalf("cas: %+v %v", r, err)
	}
	if _, err = kapi.Delete(ctx, "/foo", &client.DeleteOptions{PrevValue: "nope"}); errCode(err) != client.ErrorCodeTestFailed {
		t.Fatalf("cad mismatch: %v", err)
	}
	r, err = kapi.Delete(ctx, "/foo", &client.DeleteOptions{PrevValue: "cas"})
	if err != nil || r.Action != "compareAndDelete" || r.PrevNode.Value != "cas" {
		t.Fatalf("cad: %+v %v", r, err)
	}
	if _, err = kapi.Get(ctx, "/foo", nil); !client.IsKeyNotFound(err) {
		t.Fatalf("get deleted: %v", err)
	}

	// Directories and in-order keys.
	if _, err = kapi.Set(ctx, "/dir", "", &client.SetOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 0; i < 3; i++ {
		r, err := kapi.CreateInOrder(ctx, "/dir", fmt.Sprintf("job%d", i), nil)
		if err != nil || r.Action != "create" {
			t.Fatalf("in-order: %+v %v", r, err)
		}
		names = append(names, r.Node.Key)
	}
	r, err = kapi.Get(ctx, "/dir", &client.GetOptions{Sort: true, Recursive: true})
	if err != nil || !r.Node.Dir || len(r.Node.Nodes) != 3 {
		t.Fatalf("list: %+v %v", r, err)
	}
	for i, n := range r.Node.Nodes {
		if n.Key != names[i] || n.Value != fmt.Sprintf("job%d", i) {
			t.Fatalf("child %d: %s=%s, want %s=job%d", i, n.Key, n.Value, names[i], i)
		}
	}
	if _, err = kapi.Delete(ctx, "/dir", &client.DeleteOptions{Dir: true}); errCode(err) != client.ErrorCodeDirNotEmpty {
		t.Fatalf("delete non-empty dir: %v", err)
	}
	if _, err = kapi.Delete(ctx, "/dir", &client.DeleteOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
}

func testClientTTLAndWatchers(t *testing.T, url string) {
	kapi, _ := newKeysAPI(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	r, err := kapi.Set(ctx, "/svc/a", "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := r.Index
	// A recursive watcher from the next index sees each change in order.
	w := kapi.Watcher("/svc", &client.WatcherOptions{AfterIndex: start, Recursive: true})
	if _, err := kapi.Set(ctx, "/svc/b", "2", &client.SetOptions{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := kapi.Set(ctx, "/svc/a", "1b", nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"set /svc/b 2", "set /svc/a 1b", "expire /svc/b "}
	for i, exp := range want {
		r, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watch event %d: %v", i, err)
		}
		got := fmt.Sprintf("%s %s %s", r.Action, r.Node.Key, r.Node.Value)
		if got != exp {
			t.Fatalf("watch event %d: %q, want %q", i, got, exp)
		}
		if r.Node.ModifiedIndex != start+uint64(i)+1 {
			t.Fatalf("event %d index %d, want %d", i, r.Node.ModifiedIndex, start+uint64(i)+1)
		}
	}
	if _, err := kapi.Get(ctx, "/svc/b", nil); !client.IsKeyNotFound(err) {
		t.Fatalf("expired key still there: %v", err)
	}
	// Refresh keeps the value and does not wake a watcher.
	if _, err := kapi.Set(ctx, "/lease", "held", &client.SetOptions{TTL: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	r, err = kapi.Set(ctx, "/lease", "", &client.SetOptions{TTL: 60 * time.Second, Refresh: true, PrevExist: client.PrevExist})
	if err != nil || r.Node.Value != "held" || r.Node.TTL != 60 {
		t.Fatalf("refresh: %+v %v", r, err)
	}
}

func TestClientMembers(t *testing.T) {
	url := startStrata(t, "--name", "solo")
	_, c := newKeysAPI(t, url)
	ms, err := client.NewMembersAPI(c).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "solo" || len(ms[0].ClientURLs) != 1 || ms[0].PeerURLs[0] != "http://127.0.0.1:2380" {
		t.Fatalf("members: %+v", ms)
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatalf("client sync via members API: %v", err)
	}
}
