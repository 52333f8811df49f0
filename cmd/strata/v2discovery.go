package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/strata-kv/strata/server"
)

// Errors of etcd's v2 discovery, with its messages.
var (
	errDiscoverySizeNotFound = errors.New("discovery: size key not found")
	errDiscoveryFullCluster  = errors.New("discovery: cluster is full")
	errDiscoveryDuplicateID  = errors.New("discovery: found duplicate id")
	errDiscoveryDuplicateNam = errors.New("discovery: found duplicate name")
)

// v2DiscoveryCluster bootstraps through an etcd v2 discovery URL
// (--discovery), speaking etcd's protocol with the official v2 client:
// the URL's path is a /v2/keys directory holding _config/size (the
// number of members); each member registers itself as <member ID hex> =
// "name=peerURL,..." (create only), the first size registrations (by
// creation index) are the cluster, and a member waits, watching the
// directory, until that many have registered. A member that finds the
// cluster full fails, as etcd's does without a proxy fallback. Any v2
// store serves as the directory: etcd, the public discovery service, or
// a Strata (curl -XPUT $URL/_config/size -d value=3).
func v2DiscoveryCluster(ctx context.Context, o *options, log *slog.Logger) (string, error) {
	u, err := url.Parse(o.discovery)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--discovery: %q is not a valid http(s) URL", o.discovery)
	}
	dir := path.Clean("/" + u.Path)
	u.Path, u.RawQuery = "", ""
	c, err := client.New(client.Config{Endpoints: []string{u.String()}, HeaderTimeoutPerRequest: 5 * time.Second})
	if err != nil {
		return "", fmt.Errorf("--discovery: %w", err)
	}
	kapi := client.NewKeysAPIWithPrefix(c, "")
	adv, err := parseURLs("initial-advertise-peer-urls", o.advertisePeer)
	if err != nil {
		return "", err
	}
	self := fmt.Sprintf("%x", server.MemberID(adv, o.token))
	var mine []string
	for _, a := range adv {
		mine = append(mine, o.name+"="+a)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	// etcd's joinCluster: fail fast on a full cluster, register, then wait.
	if _, _, _, err := discoveryCheck(ctx, kapi, dir, self); err != nil {
		return "", err
	}
	if err := retry(ctx, log, func() error {
		_, err := kapi.Create(ctx, path.Join(dir, self), strings.Join(mine, ","))
		var ce client.Error
		if errors.As(err, &ce) && ce.Code == client.ErrorCodeNodeExist {
			return permanent{errDiscoveryDuplicateID}
		}
		return err
	}); err != nil {
		return "", fmt.Errorf("--discovery %s: register: %w", o.discovery, err)
	}
	nodes, size, index, err := discoveryCheck(ctx, kapi, dir, self)
	if err != nil {
		return "", err
	}
	if len(nodes) < size {
		log.Info("discovery: waiting for members to register", "have", len(nodes), "want", size, "url", o.discovery)
	}
	w := kapi.Watcher(dir, &client.WatcherOptions{AfterIndex: index, Recursive: true})
	for len(nodes) < size {
		resp, err := w.Next(ctx)
		if err != nil {
			return "", fmt.Errorf("--discovery %s: waiting for %d members, %d registered: %w", o.discovery, size, len(nodes), err)
		}
		// Event keys are store keys: dir without the URL's /v2/keys.
		if resp.Action == "create" && strings.HasSuffix(dir, path.Dir(resp.Node.Key)) && path.Base(resp.Node.Key) != "_config" {
			nodes = append(nodes, resp.Node)
		}
	}
	var vals []string
	names := map[string]bool{}
	for _, n := range nodes[:size] {
		vals = append(vals, n.Value)
		for _, kv := range strings.Split(n.Value, ",") {
			name, _, _ := strings.Cut(kv, "=")
			names[name] = true
		}
	}
	if len(names) != size {
		return "", errDiscoveryDuplicateNam
	}
	return strings.Join(vals, ","), nil
}

// discoveryCheck reads the size and the registrations (sorted by
// creation), as etcd's checkCluster: once size have registered, self
// must be among the first size.
func discoveryCheck(ctx context.Context, kapi client.KeysAPI, dir, self string) (client.Nodes, int, uint64, error) {
	var nodes client.Nodes
	var size int
	var index uint64
	err := retry(ctx, nil, func() error {
		resp, err := kapi.Get(ctx, path.Join(dir, "_config", "size"), nil)
		var ce client.Error
		if errors.As(err, &ce) && ce.Code == client.ErrorCodeKeyNotFound {
			return permanent{errDiscoverySizeNotFound}
		}
		if err != nil {
			return err
		}
		if size, err = strconv.Atoi(resp.Node.Value); err != nil || size <= 0 {
			return permanent{fmt.Errorf("discovery: bad size %q", resp.Node.Value)}
		}
		resp, err = kapi.Get(ctx, dir, nil)
		if err != nil {
			return err
		}
		nodes = nodes[:0]
		for _, n := range resp.Node.Nodes {
			if path.Base(n.Key) != "_config" {
				nodes = append(nodes, n)
			}
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].CreatedIndex < nodes[j].CreatedIndex })
		index = resp.Index
		return nil
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("--discovery: %w", err)
	}
	if len(nodes) >= size {
		in := false
		for _, n := range nodes[:size] {
			in = in || path.Base(n.Key) == self
		}
		if !in {
			return nil, 0, 0, errDiscoveryFullCluster
		}
	}
	return nodes, size, index, nil
}

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retry runs f until it succeeds, fails permanently, or ctx ends,
// waiting 0.5 s, 1 s, 2 s... (at most 8 s) between transient failures.
func retry(ctx context.Context, log *slog.Logger, f func() error) error {
	wait := 500 * time.Millisecond
	for {
		err := f()
		var p permanent
		if err == nil || errors.As(err, &p) {
			if err != nil {
				return p.error
			}
			return nil
		}
		if log != nil {
			log.Warn("discovery: retrying", "err", err, "in", wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 8*time.Second)
	}
}
