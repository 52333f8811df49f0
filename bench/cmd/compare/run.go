package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/strata-kv/strata/bench/internal/procs"
	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

// sample is one measured run.
type sample struct {
	Round    int
	Server   string
	Scenario Scenario
	Res      *load.Result
}

func run(ctx context.Context, o *Options, stdout, stderr io.Writer) (err error) {
	tmp, cleanup, err := procs.RunDir(o.DataRoot, "strata-compare-", o.Keep, stderr)
	if err != nil {
		return err
	}
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
		cleanup()
	}()
	servers, notes, err := startServers(ctx, o, tmp, stderr)
	if err != nil {
		return err
	}
	base := load.Config{Keys: o.Keys, ValueSize: o.ValueSize, Prefix: "bench", Duration: o.Duration, Warmup: o.Warmup}
	preload(ctx, base, servers, stderr)
	samples, err := rounds(ctx, o, base, servers, stderr)
	if err != nil {
		return err
	}
	if o.CSVPath != "" {
		if err := writeSamplesCSV(o.CSVPath, samples); err != nil {
			return err
		}
	}
	for _, s := range servers {
		if s.dead != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", s.Name, s.dead))
		}
	}
	writeMarkdown(stdout, o, servers, samples, notes)
	return nil
}

// startServers starts every server first, so the order of startup does
// not matter; a server that does not start is a note, not an error.
func startServers(ctx context.Context, o *Options, tmp string, stderr io.Writer) (servers []*server, notes []string, err error) {
	if o.EtcdBin != "" {
		fmt.Fprintf(stderr, "starting etcd (%s)...\n", o.EtcdBin)
		if s, err := startEtcd(ctx, o, tmp); err != nil {
			notes = append(notes, fmt.Sprintf("etcd not run: %v", err))
			fmt.Fprintln(stderr, notes[len(notes)-1])
		} else {
			servers = append(servers, s)
		}
	}
	if !o.NoStrata {
		fmt.Fprintln(stderr, "building and starting strata...")
		if s, err := startStrata(ctx, o, tmp); err != nil {
			notes = append(notes, fmt.Sprintf("strata not run: %v", err))
			fmt.Fprintln(stderr, notes[len(notes)-1])
		} else {
			servers = append(servers, s)
		}
	}
	if !o.NoCeiling {
		s, err := startCeiling()
		if err != nil {
			return servers, notes, err
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, notes, fmt.Errorf("no server to benchmark:\n%s", strings.Join(notes, "\n"))
	}
	return servers, notes, ctx.Err()
}

// preload writes the key space into every server; one that fails is
// marked dead.
func preload(ctx context.Context, base load.Config, servers []*server, stderr io.Writer) {
	for _, s := range servers {
		fmt.Fprintf(stderr, "%s at %s: preloading %d keys...\n", s.Name, s.URL, base.Keys)
		cfg := base
		cfg.Target, cfg.Clients = s.URL, 8
		if err := load.Preload(ctx, cfg); err != nil {
			s.dead = fmt.Sprintf("preload failed: %v", err)
			fmt.Fprintf(stderr, "%s: %s\n", s.Name, s.dead)
		}
	}
}

// rounds runs every scenario on every live server, o.Rounds times. The
// server order rotates each round so no server always runs first (or
// right after a write-heavy neighbour).
func rounds(ctx context.Context, o *Options, base load.Config, servers []*server, stderr io.Writer) ([]sample, error) {
	total := o.Rounds * len(o.Scenarios) * len(servers)
	perRun := o.Warmup + o.Duration
	var samples []sample
	start := time.Now()
	n := 0
	for r := 0; r < o.Rounds; r++ {
		for _, sc := range o.Scenarios {
			for i := range servers {
				s := servers[(i+r)%len(servers)]
				n++
				if !s.alive() {
					continue
				}
				eta := time.Duration(total-n+1) * perRun
				fmt.Fprintf(stderr, "[%d/%d round %d/%d, eta %v] %-16s %s\n",
					n, total, r+1, o.Rounds, eta.Round(time.Second), s.Name, sc.Describe())
				res, err := measure(ctx, o, base, s, sc, stderr)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("interrupted after %v", time.Since(start).Round(time.Second))
				}
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", s.Name, sc.Name, err)
				}
				samples = append(samples, sample{Round: r + 1, Server: s.Name, Scenario: sc, Res: res})
				if !s.alive() {
					fmt.Fprintf(stderr, "%s died: %s\n", s.Name, s.dead)
				}
			}
		}
	}
	return samples, nil
}

// measure runs scenario sc once against s.
func measure(ctx context.Context, o *Options, base load.Config, s *server, sc Scenario, stderr io.Writer) (*load.Result, error) {
	cfg := base
	cfg.Target, cfg.Clients, cfg.PutPercent, cfg.NoPreload = s.URL, sc.Clients, sc.PutPercent, true
	if !o.Quiet {
		cfg.Progress = load.PrefixLines(stderr, "    ")
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "    => %.0f req/s  p50 %sms  p99 %sms  non2xx %d  errors %d\n",
		res.Throughput, loadclient.Ms(res.P50), loadclient.Ms(res.P99), res.Non2xx, res.Errors)
	if res.Errors+res.Non2xx > 0 && res.FirstError != "" {
		fmt.Fprintf(stderr, "    first error: %s\n", res.FirstError)
	}
	return res, nil
}

// aggregate is the median summary of one server × scenario.
func aggregate(samples []sample, server string, sc Scenario) (load.Medians, bool) {
	var r load.Rounds
	for _, s := range samples {
		if s.Server == server && s.Scenario == sc {
			r.Add(s.Res.Throughput, s.Res.P50, s.Res.P99, s.Res.Errors+s.Res.Non2xx)
		}
	}
	return r.Medians()
}

func writeMarkdown(w io.Writer, o *Options, servers []*server, samples []sample, notes []string) {
	fmt.Fprintf(w, "\n## Strata vs etcd (v2 API), %d round(s) × %v per run (+%v warmup), medians\n\n",
		o.Rounds, o.Duration, o.Warmup)
	fmt.Fprintf(w, "Keys %d, value %d B, CPUs %d, data root %s.\n\n", o.Keys, o.ValueSize, numCPU(), o.DataRoot)
	fmt.Fprintln(w, "| scenario | server | req/s (median) | req/s range | p50 ms | p99 ms | ÷ etcd req/s | failed reqs |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, sc := range o.Scenarios {
		etcd, haveEtcd := aggregate(samples, "etcd", sc)
		for _, s := range servers {
			a, ok := aggregate(samples, s.Name, sc)
			if !ok {
				fmt.Fprintf(w, "| %s | %s | – | – | – | – | – | – |\n", sc.Describe(), s.Name)
				continue
			}
			ratio := "–"
			if haveEtcd && etcd.RPS > 0 {
				ratio = fmt.Sprintf("%.2f", a.RPS/etcd.RPS)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.0f–%.0f | %.3f | %.3f | %s | %d |\n",
				sc.Describe(), s.Name, a.RPS, a.RPSMin, a.RPSMax, a.P50ms, a.P99ms, ratio, a.Failed)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(strings.TrimSpace(n), "\n", "\n  "))
		}
	}
	fmt.Fprintln(w)
}

func writeSamplesCSV(path string, samples []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	labels := make([]string, len(samples))
	results := make([]*load.Result, len(samples))
	for i, s := range samples {
		labels[i] = fmt.Sprintf("%s/%s/r%d", s.Server, s.Scenario.Name, s.Round)
		results[i] = s.Res
	}
	if err := load.WriteCSV(f, labels, results...); err != nil {
		f.Close()
		return fmt.Errorf("csv %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("csv %s: %w", path, err)
	}
	return nil
}

func numCPU() int { return runtime.NumCPU() }
