// Command compare runs the Strata vs etcd head-to-head benchmark.
//
// It starts etcd 3.4 (v2 API enabled) and Strata, each with a fresh data
// directory under the same --data-root, plus an in-process bare net/http
// server that answers every request with a small fixed JSON body (the ceiling
// of the HTTP stack and load generator on this machine). It then runs each
// scenario against each server, alternating servers round-robin, for
// --rounds rounds, and prints a markdown table of medians.
//
// Strata is built with `go build -o <tmp>/strata ./cmd/strata` in --repo
// (or taken from --strata-bin). If it does not build or does not start, the
// comparison continues with etcd and the ceiling only.
//
// All child processes run in their own process groups and are killed on exit,
// on error and on Ctrl-C/SIGTERM; temporary directories are removed unless
// --keep is given.
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
	os.Exit(command.Main("compare", os.Args[1:], os.Stdout, os.Stderr, parseFlags, run))
}

// Options configures a comparison run.
type Options struct {
	Duration  time.Duration
	Warmup    time.Duration
	Rounds    int
	Scenarios []Scenario
	Keys      int
	ValueSize int

	EtcdBin    string // "" = skip etcd
	Repo       string // module root used to build Strata
	StrataBin  string // prebuilt binary; "" = build from Repo
	StrataCmd  string // command template, see flag help
	NoStrata   bool
	NoCeiling  bool
	DataRoot   string
	Keep       bool
	CSVPath    string
	Quiet      bool
	StartupMax time.Duration
}

const defaultStrataCmd = "{bin} --name strata --data-dir {data} --listen-client-urls {client} --advertise-client-urls {client}"

func parseFlags(args []string, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &Options{}
	var scen string
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured duration of each run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "warmup before each run")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; servers alternate round-robin within each, medians are reported")
	fs.StringVar(&scen, "scenarios", "put1,put16,get16", "comma-separated scenarios: put<N>, get<N>, mixed<P>x<N> (P% puts, N clients)")
	fs.IntVar(&o.Keys, "keys", 1000, "key space size (preloaded before GETs)")
	fs.IntVar(&o.ValueSize, "value-size", 64, "value size in bytes")
	fs.StringVar(&o.EtcdBin, "etcd-bin", "/usr/bin/etcd", "etcd binary (empty = skip etcd)")
	fs.StringVar(&o.Repo, "repo", "", "Strata module root (default: nearest go.mod above the working directory)")
	fs.StringVar(&o.StrataBin, "strata-bin", "", "prebuilt Strata binary (default: go build ./cmd/strata)")
	fs.StringVar(&o.StrataCmd, "strata-cmd", defaultStrataCmd,
		"Strata command line, split on spaces; placeholders {bin} {data} {client} {port} and a spare loopback {peer} URL / {peerport}")
	fs.BoolVar(&o.NoStrata, "no-strata", false, "skip Strata")
	fs.BoolVar(&o.NoCeiling, "no-ceiling", false, "skip the bare net/http ceiling server")
	fs.StringVar(&o.DataRoot, "data-root", os.TempDir(), "parent of the fresh data directories (same disk for all servers)")
	fs.BoolVar(&o.Keep, "keep", false, "keep data directories and logs")
	fs.StringVar(&o.CSVPath, "csv", "", "also write every individual run to this CSV file")
	fs.BoolVar(&o.Quiet, "quiet", false, "no per-second progress lines")
	fs.DurationVar(&o.StartupMax, "startup-timeout", 30*time.Second, "max time for a server to accept writes")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return nil, err
	}
	var err error
	if o.Scenarios, err = ParseScenarios(scen); err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return nil, err
	}
	if o.Rounds < 1 || o.Rounds > 100 || o.Duration <= 0 || o.Duration > time.Hour {
		err := errors.New("--rounds must be 1..100 and --duration in (0, 1h]")
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return nil, err
	}
	if o.Repo == "" {
		o.Repo = procs.ModuleRoot()
	}
	return o, nil
}

// expand replaces {name} placeholders in a space-separated template.
func expand(tmpl string, vars map[string]string) []string {
	fields := strings.Fields(tmpl)
	for i, f := range fields {
		for k, v := range vars {
			f = strings.ReplaceAll(f, "{"+k+"}", v)
		}
		fields[i] = f
	}
	return fields
}
