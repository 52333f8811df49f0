package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// testDNSServerEnv points --discovery-srv's DNS lookups at one server
// (host:port) instead of the system's: tests only.
const testDNSServerEnv = "STRATA_TEST_DNS_SERVER"

// discoveredFile keeps, in the data dir, the --initial-cluster a
// discovery found, so a restart uses the same one without asking again
// (etcd restarts from its WAL and ignores discovery flags likewise).
const discoveredFile = "discovered-cluster"

// resolveBootstrap sets o.initialCluster from --discovery-srv or
// --discovery when one is given: from the data dir's record of an
// earlier discovery if there is one, otherwise by discovering (and then
// recording it). As etcd, at most one of --initial-cluster, --discovery
// and --discovery-srv may be given.
func resolveBootstrap(ctx context.Context, o *options, log *slog.Logger) error {
	n := 0
	for _, set := range []bool{o.initialClusterSet, o.discovery != "", o.discoverySRV != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("multiple discovery or bootstrap flags are set: choose one of --initial-cluster, --discovery or --discovery-srv")
	}
	if n == 0 || o.initialClusterSet {
		return nil
	}
	record := filepath.Join(o.dataDir, discoveredFile)
	if b, err := os.ReadFile(record); err == nil {
		o.initialCluster = strings.TrimSpace(string(b))
		log.Info("discovery: using the cluster found at first start", "file", record, "initial_cluster", o.initialCluster)
		return nil
	}
	var ic string
	var err error
	if o.discoverySRV != "" {
		ic, err = srvCluster(ctx, o)
	} else {
		ic, err = v2DiscoveryCluster(ctx, o, log)
	}
	if err != nil {
		return err
	}
	o.initialCluster = ic
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("record discovered cluster: %w", err)
	}
	if err := os.WriteFile(record, []byte(ic+"\n"), 0o600); err != nil {
		return fmt.Errorf("record discovered cluster: %w", err)
	}
	log.Info("discovery: initial cluster found", "initial_cluster", ic)
	return nil
}

func discoveryResolver() *net.Resolver {
	addr := os.Getenv(testDNSServerEnv)
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// srvCluster builds --initial-cluster from DNS SRV records, as etcd's
// pkg/srv.GetCluster: _etcd-server-ssl._tcp.<domain> (https) and
// _etcd-server._tcp.<domain> (http), with "-<--discovery-srv-name>"
// appended to the service when given. The record whose target resolves
// to one of this member's advertised peer URLs is named --name (and
// takes the scheme of that URL, which must match; unlike etcd, the URL
// must also be spelled as the record gives it, since member IDs hash the
// URLs as written); the others are named 0, 1, ... Peer URLs use the
// records' target names.
func srvCluster(ctx context.Context, o *options) (string, error) {
	r := discoveryResolver()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resolve := func(hostport string) (string, error) {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", err
		}
		if ip := net.ParseIP(host); ip != nil {
			return net.JoinHostPort(ip.String(), port), nil
		}
		addrs, err := r.LookupHost(ctx, host)
		if err != nil || len(addrs) == 0 {
			return "", fmt.Errorf("resolve %s: %v", host, err)
		}
		sort.Strings(addrs)
		return net.JoinHostPort(addrs[0], port), nil
	}
	self := map[string]*url.URL{} // resolved host:port -> advertised URL
	adv, err := parseURLs("initial-advertise-peer-urls", o.advertisePeer)
	if err != nil {
		return "", err
	}
	for _, a := range adv {
		u, _ := url.Parse(a)
		hp, err := resolve(u.Host)
		if err != nil {
			return "", fmt.Errorf("--discovery-srv: --initial-advertise-peer-urls %s: %w", a, err)
		}
		self[hp] = u
	}
	suffix := ""
	if o.discoverySRVName != "" {
		suffix = "-" + o.discoverySRVName
	}
	var parts, tried []string
	var errs []error
	temp := 0
	for _, svc := range []struct{ service, scheme string }{{"etcd-server-ssl" + suffix, "https"}, {"etcd-server" + suffix, "http"}} {
		_, recs, err := r.LookupSRV(ctx, svc.service, "tcp", o.discoverySRV)
		tried = append(tried, "_"+svc.service+"._tcp."+o.discoverySRV)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rec := range recs {
			port := strconv.Itoa(int(rec.Port))
			host := strings.TrimSuffix(rec.Target, ".")
			hp, err := resolve(net.JoinHostPort(host, port))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			name := ""
			if u, ok := self[hp]; ok {
				if u.Scheme != svc.scheme {
					return "", fmt.Errorf("--discovery-srv: bootstrap at %s://%s from DNS for %s has scheme mismatch with expected peer %s", svc.scheme, net.JoinHostPort(host, port), svc.service, u)
				}
				if got := svc.scheme + "://" + net.JoinHostPort(host, port); got != u.String() {
					return "", fmt.Errorf("--discovery-srv: the SRV record %s reaches this member's --initial-advertise-peer-urls %s under another name: advertise %s, as the other members will know this one", got, u, got)
				}
				name = o.name
			} else {
				name = strconv.Itoa(temp)
				temp++
			}
			parts = append(parts, name+"="+svc.scheme+"://"+net.JoinHostPort(host, port))
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("--discovery-srv %s: no SRV records (looked up %s): %w", o.discoverySRV, strings.Join(tried, ", "), errors.Join(errs...))
	}
	return strings.Join(parts, ","), nil
}
