// Command clustercompare measures the write throughput of a 3-member Strata
// cluster against a 3-member etcd 3.4 cluster on the same machine, in the
// same run.
//
// It starts both clusters (fresh data dirs under the same --data-root, every
// member with its own client and peer ports on loopback), waits until each
// has a leader that every member agrees on, then runs durable PUT load for
// each client count in --clients, in each mode of --modes:
//
//   - spread: clients are dealt round-robin over all members, as real clients
//     do (a follower forwards each write to the leader);
//   - leader: every client talks to the leader.
//
// Only one cluster is under load at a time (the other sits idle); the order
// of the two alternates every round, and medians over --rounds are reported
// as a markdown table on stdout. Progress goes to stderr.
//
// With --cpu-profile DIR, Strata members run with --enable-pprof and a CPU
// profile of every Strata member is taken during each Strata run of the first
// round (DIR/strata-<mode>-<clients>-<member>[-leader].pprof).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/strata-kv/strata/bench/internal/command"
	"github.com/strata-kv/strata/bench/internal/procs"
)

func main() {
	os.Exit(command.Main("clustercompare", os.Args[1:], os.Stdout, os.Stderr, parseFlags, run))
}

// Mode says which members the clients of a run talk to.
type Mode string

// The two modes.
const (
	Spread Mode = "spread" // clients dealt round-robin over all members
	Leader Mode = "leader" // every client on the leader
)

// Describe is the mode's label in the table.
func (m Mode) Describe() string {
	if m == Leader {
		return "leader only"
	}
	return "all members"
}

// Options configures a run.
type Options struct {
	Size       int
	Clients    []int
	Modes      []Mode
	Duration   time.Duration
	Warmup     time.Duration
	Rounds     int
	Keys       int
	ValueSize  int
	EtcdBin    string // "" = skip etcd
	NoStrata   bool
	Repo       string
	StrataBin  string
	StrataArgs []string // extra flags for every Strata member
	EtcdArgs   []string // extra flags for every etcd member
	DataRoot   string
	Keep       bool
	Quiet      bool
	CPUProfile string // directory for Strata CPU profiles ("" = none)
	StartupMax time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("clustercompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &Options{}
	var clients, modes, strataArgs, etcdArgs string
	fs.IntVar(&o.Size, "cluster", 3, "members per cluster (odd, 1..7)")
	fs.StringVar(&clients, "clients", "16,64", "comma-separated client counts; each is one PUT scenario")
	fs.StringVar(&modes, "modes", "spread,leader", "comma-separated: spread (clients over all members), leader (all clients on the leader)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured duration of each run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "warmup before each run")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; the two clusters alternate within each, medians are reported")
	fs.IntVar(&o.Keys, "keys", 1000, "key space size")
	fs.IntVar(&o.ValueSize, "value-size", 64, "value size in bytes")
	fs.StringVar(&o.EtcdBin, "etcd-bin", "/usr/bin/etcd", "etcd binary (empty = skip etcd)")
	fs.BoolVar(&o.NoStrata, "no-strata", false, "skip Strata")
	fs.StringVar(&o.Repo, "repo", "", "Strata module root (default: nearest go.mod above the working directory)")
	fs.StringVar(&o.StrataBin, "strata-bin", "", "prebuilt Strata binary (default: go build ./cmd/strata)")
	fs.StringVar(&strataArgs, "strata-args", "", "extra flags for every Strata member, space-separated (e.g. \"--backend bbolt\")")
	fs.StringVar(&etcdArgs, "etcd-args", "", "extra flags for every etcd member, space-separated")
	fs.StringVar(&o.DataRoot, "data-root", os.TempDir(), "parent of the fresh data directories (same disk for both clusters)")
	fs.BoolVar(&o.Keep, "keep", false, "keep data directories and logs")
	fs.BoolVar(&o.Quiet, "quiet", false, "no per-second progress lines")
	fs.StringVar(&o.CPUProfile, "cpu-profile", "", "directory: CPU-profile every Strata member during the first round's Strata runs")
	fs.DurationVar(&o.StartupMax, "startup-timeout", 30*time.Second, "max time for a cluster to elect a leader and accept writes")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fail := func(err error) (*Options, error) {
		fmt.Fprintf(stderr, "clustercompare: %v\n", err)
		return nil, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.Size < 1 || o.Size > 7 || o.Size%2 == 0 {
		return fail(fmt.Errorf("--cluster must be odd and 1..7, not %d", o.Size))
	}
	var err error
	if o.Clients, err = command.ParseClients(clients); err != nil {
		return fail(fmt.Errorf("--clients: %w", err))
	}
	if o.Modes, err = parseModes(modes); err != nil {
		return fail(err)
	}
	if o.Rounds < 1 || o.Rounds > 100 || o.Duration <= 0 || o.Duration > time.Hour || o.Warmup < 0 {
		return fail(errors.New("--rounds must be 1..100, --duration in (0, 1h] and --warmup >= 0"))
	}
	if o.Keys < 1 || o.ValueSize < 1 {
		return fail(errors.New("--keys and --value-size must be positive"))
	}
	if o.NoStrata && o.EtcdBin == "" {
		return fail(errors.New("nothing to measure: --no-strata and an empty --etcd-bin"))
	}
	o.StrataArgs, o.EtcdArgs = strings.Fields(strataArgs), strings.Fields(etcdArgs)
	if o.Repo == "" {
		o.Repo = procs.ModuleRoot()
	}
	return o, nil
}

func parseModes(s string) ([]Mode, error) {
	var out []Mode
	for _, f := range strings.Split(s, ",") {
		switch m := Mode(strings.TrimSpace(f)); m {
		case "":
		case Spread, Leader:
			out = append(out, m)
		default:
			return nil, fmt.Errorf("--modes: unknown mode %q (want spread or leader)", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--modes: no modes in %q", s)
	}
	return out, nil
}

// split deals n clients round-robin over k members: member i gets n/k, and
// the first n%k members one more.
func split(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}
