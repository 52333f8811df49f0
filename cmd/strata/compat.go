package main

import (
	"flag"
	"fmt"
)

// compatFlag is an etcd flag Strata accepts so an etcd command line, unit
// file or config works unchanged, but does not act on.
type compatFlag struct {
	name, def string
	isBool    bool
	why       string
}

// ignoredFlags do not change what a client can observe or weaken
// security; a start that sets one logs it once (see logIgnored).
var ignoredFlags = []compatFlag{
	{"wal-dir", "", false, "the WAL stays under --data-dir"},
	{"initial-election-tick-advance", "true", true, "raft's pre-vote makes it moot"},
	{"backend-batch-interval", "0s", false, "v3 backend tuning"},
	{"backend-batch-limit", "0", false, "v3 backend tuning"},
	{"max-txn-ops", "128", false, "v3 transactions only"},
	{"grpc-keepalive-min-time", "5s", false, "no gRPC"},
	{"grpc-keepalive-interval", "2h0m0s", false, "no gRPC"},
	{"grpc-keepalive-timeout", "20s", false, "no gRPC"},
	{"strict-reconfig-check", "true", true, "membership changes are always checked"},
	{"pre-vote", "false", true, "raft pre-vote is always on"},
	{"auto-compaction-retention", "0", false, "v3 MVCC only"},
	{"auto-compaction-mode", "periodic", false, "v3 MVCC only"},
	{"auth-token", "simple", false, "v3 auth only"},
	{"bcrypt-cost", "10", false, "v3 auth only"},
	{"auth-token-ttl", "300", false, "v3 auth only"},
	{"metrics", "basic", false, "/metrics always serves every metric"},
	{"listen-metrics-urls", "", false, "/metrics is served on the client URLs"},
	{"logger", "capnslog", false, "one logger; see --log-format"},
	{"log-outputs", "default", false, "logs go to stderr"},
	{"debug", "false", true, "use --log-level debug"},
	{"log-package-levels", "", false, "use --log-level"},
	{"discovery-fallback", "proxy", false, "no proxy mode: a failed discovery stops the member"},
	{"discovery-proxy", "", false, "discovery URLs are dialled directly"},
	{"proxy-failure-wait", "5000", false, "no proxy mode"},
	{"proxy-refresh-interval", "30000", false, "no proxy mode"},
	{"proxy-dial-timeout", "1000", false, "no proxy mode"},
	{"proxy-write-timeout", "5000", false, "no proxy mode"},
	{"proxy-read-timeout", "0", false, "no proxy mode"},
	{"experimental-initial-corrupt-check", "false", true, "v3 backend only"},
	{"experimental-corrupt-check-time", "0s", false, "v3 backend only"},
	{"experimental-enable-v2v3", "", false, "v2 is served natively"},
	{"experimental-backend-bbolt-freelist-type", "map", false, "v3 backend only"},
	{"experimental-enable-lease-checkpoint", "false", true, "v3 leases only"},
	{"experimental-compaction-batch-limit", "1000", false, "v3 MVCC only"},
	{"experimental-watch-progress-notify-interval", "10m0s", false, "v3 watches only"},
	{"experimental-warning-apply-duration", "100ms", false, "slow applies show in /metrics"},
}

// refusedFlags are etcd security settings Strata does not implement:
// accepting and ignoring one would silently weaken what the operator
// asked for, so a non-default value is an error.
var refusedFlags = []compatFlag{
	{"client-crl-file", "", false, ""},
	{"peer-crl-file", "", false, ""},
	{"client-cert-allowed-hostname", "", false, ""},
	{"peer-cert-allowed-cn", "", false, ""},
	{"peer-cert-allowed-hostname", "", false, ""},
	{"cipher-suites", "", false, ""},
	{"host-whitelist", "*", false, ""},
	{"experimental-peer-skip-client-san-verification", "false", true, ""},
}

func registerCompat(fs *flag.FlagSet) {
	for _, f := range ignoredFlags {
		registerCompatFlag(fs, f, "accepted for etcd compatibility and ignored: "+f.why)
	}
	for _, f := range refusedFlags {
		registerCompatFlag(fs, f, "etcd security setting Strata does not implement: refused unless left at its default")
	}
	fs.String("proxy", "off", "etcd's proxy mode is out of scope: only off is accepted")
}

func registerCompatFlag(fs *flag.FlagSet, f compatFlag, usage string) {
	if f.isBool {
		fs.Bool(f.name, f.def == "true", usage)
	} else {
		fs.String(f.name, f.def, usage)
	}
}

// checkCompat refuses refused flags set to anything but their default and
// a proxy mode, and returns the ignored flags that were set, as
// "--name=value".
func checkCompat(fs *flag.FlagSet) (ignored []string, err error) {
	if v := fs.Lookup("proxy").Value.String(); v != "off" {
		return nil, fmt.Errorf("--proxy=%s: etcd's proxy mode is out of scope for Strata (run a member, or point clients at the cluster)", v)
	}
	for _, f := range refusedFlags {
		if v := fs.Lookup(f.name).Value.String(); v != f.def {
			return nil, fmt.Errorf("--%s=%s: Strata does not implement this etcd security setting, and will not start without it rather than ignore it", f.name, v)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range ignoredFlags {
		if set[f.name] {
			ignored = append(ignored, "--"+f.name+"="+fs.Lookup(f.name).Value.String())
		}
	}
	return ignored, nil
}
