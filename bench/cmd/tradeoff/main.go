// Command tradeoff measures what each Strata storage backend costs over
// HTTP, next to etcd 3.4 (v2 API) in the same run:
//
//  1. footprint: each server gets a fresh data dir and --keys keys of
//     --value-size bytes (PUT with --load-clients clients); then the
//     server's VmRSS/RssAnon/VmHWM and the data dir's allocated bytes per
//     key (WAL, snapshots, store) are recorded;
//  2. throughput: PUT and GET at each --clients count over that key space,
//     --rounds rounds, the server order rotated each round; medians of
//     req/s and p99 (every run also goes to --csv, for bench/cmd/plot);
//  3. restart at --keys keys: SIGTERM, wait for exit, start the same
//     command, time until a GET of a loaded key answers 200;
//  4. large (--large keys, default 1M, per --large-servers backend): a
//     fresh server started with --unsafe-no-fsync and --snapshot-count
//     = --large is loaded through the raw HTTP client (bench/load, 64
//     clients), so its one snapshot is taken right at the end of the load;
//     its duration comes from the server's debug log. Then SIGTERM and a
//     restart with the default (fsync'd) settings, timed until a GET of the
//     last key answers 200, and the RSS after restart.
//
// Servers are "etcd", a backend name ("bbolt") or a backend with
// "-nofsync" ("memory-nofsync": --unsafe-no-fsync). Results go to stdout as
// markdown; --json keeps them machine-readable. Everything runs on
// loopback; child processes die with this one (Pdeathsig).
//
//	go run ./bench/cmd/tradeoff --csv /tmp/tradeoff.csv --json /tmp/tradeoff.json
//	go run ./bench/cmd/tradeoff --servers etcd,bbolt --keys 1000 --duration 1s --rounds 1 --large 0
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/strata-kv/strata/bench/internal/command"
	"github.com/strata-kv/strata/bench/internal/procs"
)

func main() {
	os.Exit(command.Main("tradeoff", os.Args[1:], os.Stdout, os.Stderr, parseFlags, run))
}

// Options configure a run.
type Options struct {
	Servers      []spec
	Clients      []int
	Workloads    []string // "put", "get"
	Rounds       int
	Duration     time.Duration
	Warmup       time.Duration
	Keys         int
	ValueSize    int
	LoadClients  int
	Large        int
	LargeServers []spec

	EtcdBin    string
	StrataBin  string
	Repo       string
	DataRoot   string
	CSVPath    string
	JSONPath   string
	Keep       bool
	StartupMax time.Duration
}

// spec is one server configuration under test.
type spec struct {
	Name    string // "etcd", "strata-bbolt", "strata-bbolt-nofsync"
	Backend string // "" for etcd
	NoFsync bool
}

func parseSpecs(s string) ([]spec, error) {
	var out []spec
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var sp spec
		switch {
		case f == "etcd":
			sp = spec{Name: "etcd"}
		case strings.HasSuffix(f, "-nofsync"):
			b := strings.TrimSuffix(f, "-nofsync")
			sp = spec{Name: "strata-" + f, Backend: b, NoFsync: true}
		default:
			sp = spec{Name: "strata-" + f, Backend: f}
		}
		if f != "etcd" && !validName(sp.Backend) {
			return nil, fmt.Errorf("server %q: bad backend name", f)
		}
		if seen[sp.Name] {
			return nil, fmt.Errorf("server %q listed twice", f)
		}
		seen[sp.Name] = true
		out = append(out, sp)
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func parseFlags(args []string, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("tradeoff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &Options{}
	servers := fs.String("servers", "etcd,memory,bbolt,badger,memory-nofsync,bbolt-nofsync", "servers: etcd, <backend> or <backend>-nofsync")
	clients := fs.String("clients", "1,16,64", "client counts of the throughput runs")
	workloads := fs.String("workloads", "put,get", "throughput workloads: put, get")
	large := fs.String("large-servers", "memory,bbolt,badger", "backends of the large (restart/snapshot) phase; etcd allowed (no fsync-off mode there)")
	fs.IntVar(&o.Rounds, "rounds", 3, "throughput rounds (medians reported)")
	fs.DurationVar(&o.Duration, "duration", 3*time.Second, "measured length of each throughput run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "warmup before each throughput run")
	fs.IntVar(&o.Keys, "keys", 100_000, "keys loaded before the footprint and throughput phases")
	fs.IntVar(&o.ValueSize, "value-size", 100, "value size in bytes")
	fs.IntVar(&o.LoadClients, "load-clients", 64, "clients used to load keys")
	fs.IntVar(&o.Large, "large", 1_000_000, "keys of the large phase (0 = skip it)")
	fs.StringVar(&o.EtcdBin, "etcd-bin", "/usr/bin/etcd", "etcd binary")
	fs.StringVar(&o.StrataBin, "strata-bin", "", "prebuilt Strata binary (default: go build ./cmd/strata in --repo)")
	fs.StringVar(&o.Repo, "repo", "", "Strata module root (default: nearest go.mod above the working directory)")
	fs.StringVar(&o.DataRoot, "data-root", os.TempDir(), "parent of the fresh data directories")
	fs.StringVar(&o.CSVPath, "csv", "", "write every throughput run here (bench/cmd/plot reads it)")
	fs.StringVar(&o.JSONPath, "json", "", "write all results here as JSON")
	fs.BoolVar(&o.Keep, "keep", false, "keep data directories and logs")
	fs.DurationVar(&o.StartupMax, "startup-timeout", 60*time.Second, "max time for a server to start or restart")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	bad := func(err error) (*Options, error) {
		fmt.Fprintf(stderr, "tradeoff: %v\n", err)
		return nil, err
	}
	if fs.NArg() > 0 {
		return bad(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	var err error
	if o.Servers, err = parseSpecs(*servers); err != nil {
		return bad(err)
	}
	if o.LargeServers, err = parseSpecs(*large); err != nil {
		return bad(err)
	}
	for _, s := range o.LargeServers {
		if s.NoFsync {
			return bad(fmt.Errorf("--large-servers: %s: the large phase always loads without fsync and restarts with it", s.Name))
		}
	}
	if o.Clients, err = command.ParseClients(*clients); err != nil {
		return bad(fmt.Errorf("--clients: %w", err))
	}
	for _, w := range strings.Split(*workloads, ",") {
		switch w = strings.TrimSpace(w); w {
		case "put", "get":
			o.Workloads = append(o.Workloads, w)
		case "":
		default:
			return bad(fmt.Errorf("--workloads: %q is not put or get", w))
		}
	}
	if o.Rounds < 1 || o.Rounds > 50 || o.Duration <= 0 || o.Duration > 10*time.Minute || o.Warmup < 0 {
		return bad(errors.New("--rounds must be 1..50 and --duration in (0, 10m]"))
	}
	if o.Keys < 1 || o.ValueSize < 1 || o.LoadClients < 1 || o.Large < 0 {
		return bad(errors.New("--keys, --value-size and --load-clients must be positive, --large not negative"))
	}
	if o.Repo == "" {
		o.Repo = procs.ModuleRoot()
	}
	return o, nil
}

func goVersion(bin string) string {
	out, err := exec.Command("go", "version", bin).Output()
	if err != nil {
		return "unknown"
	}
	// "<bin>: go1.26.8"
	if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), ": "); ok {
		return v
	}
	return strings.TrimSpace(string(out))
}

func etcdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "etcd Version:"))
}
