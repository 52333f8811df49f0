package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/strata-kv/strata/bench/internal/probe"
	"github.com/strata-kv/strata/bench/internal/procs"
	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

// sample is one measured run of one cluster.
type sample struct {
	Round   int
	System  string
	Mode    Mode
	Clients int
	RPS     float64 // sum over the members' loads
	P50     time.Duration
	P99     time.Duration
	Failed  int64 // non-2xx + transport errors
}

func run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	tmp, cleanup, err := procs.RunDir(o.DataRoot, "strata-clustercompare-", o.Keep, stderr)
	if err != nil {
		return err
	}
	var clusters []*cluster
	defer func() {
		for _, c := range clusters {
			c.stop()
		}
		cleanup()
	}()
	if o.CPUProfile != "" {
		if err := os.MkdirAll(o.CPUProfile, 0o755); err != nil {
			return fmt.Errorf("cpu profile dir: %w", err)
		}
	}

	clusters, notes, err := startClusters(ctx, o, tmp, stderr)
	if err != nil {
		return err
	}
	samples, err := rounds(ctx, o, clusters, stderr)
	if err != nil {
		return err
	}
	for _, c := range clusters {
		if c.alive() {
			continue
		}
		notes = append(notes, fmt.Sprintf("%s: %s", c.System, c.dead))
	}
	systems := make([]string, len(clusters))
	for i, c := range clusters {
		systems[i] = c.System
	}
	writeMarkdown(stdout, o, systems, samples, notes)
	return nil
}

// startClusters starts each system's cluster; one that does not start is
// a note, not an error.
func startClusters(ctx context.Context, o *Options, tmp string, stderr io.Writer) (clusters []*cluster, notes []string, err error) {
	token := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if o.EtcdBin != "" {
		fmt.Fprintf(stderr, "starting a %d-member etcd cluster (%s)...\n", o.Size, o.EtcdBin)
		c, err := startEtcdCluster(ctx, o, tmp, token)
		if err != nil {
			notes = append(notes, fmt.Sprintf("etcd not run: %v", err))
			fmt.Fprintln(stderr, notes[len(notes)-1])
		} else {
			clusters = append(clusters, c)
		}
	}
	if !o.NoStrata {
		fmt.Fprintf(stderr, "building and starting a %d-member strata cluster...\n", o.Size)
		c, err := startStrataCluster(ctx, o, tmp, token)
		if err != nil {
			notes = append(notes, fmt.Sprintf("strata not run: %v", err))
			fmt.Fprintln(stderr, notes[len(notes)-1])
		} else {
			clusters = append(clusters, c)
		}
	}
	if len(clusters) == 0 {
		return nil, notes, fmt.Errorf("no cluster to benchmark:\n%s", strings.Join(notes, "\n"))
	}
	for _, c := range clusters {
		var urls []string
		for _, m := range c.Members {
			urls = append(urls, m.Name+"="+m.Client)
		}
		fmt.Fprintf(stderr, "%s cluster up: %s\n", c.System, strings.Join(urls, " "))
	}

	return clusters, notes, nil
}

// rounds measures every client count × mode on every live cluster,
// o.Rounds times, the cluster that goes first alternating.
func rounds(ctx context.Context, o *Options, clusters []*cluster, stderr io.Writer) ([]sample, error) {
	total := o.Rounds * len(o.Clients) * len(o.Modes) * len(clusters)
	perRun := o.Warmup + o.Duration
	var samples []sample
	n := 0
	for r := 0; r < o.Rounds; r++ {
		for _, nc := range o.Clients {
			for _, mode := range o.Modes {
				for i := range clusters {
					c := clusters[(i+r)%len(clusters)] // alternate who goes first
					n++
					if !c.alive() {
						continue
					}
					eta := time.Duration(total-n+1) * perRun
					fmt.Fprintf(stderr, "[%d/%d round %d/%d, eta %v] %-6s PUT, %d clients, %s\n",
						n, total, r+1, o.Rounds, eta.Round(time.Second), c.System, nc, mode.Describe())
					profile := ""
					if o.CPUProfile != "" && r == 0 && c.System == "strata" {
						profile = filepath.Join(o.CPUProfile, fmt.Sprintf("strata-%s-%d", mode, nc))
					}
					s, err := measure(ctx, o, c, mode, nc, profile, stderr)
					if ctx.Err() != nil {
						return nil, fmt.Errorf("interrupted")
					}
					if err != nil {
						c.dead = err.Error()
						fmt.Fprintf(stderr, "%s: %v\n", c.System, err)
						continue
					}
					s.Round = r + 1
					samples = append(samples, s)
					fmt.Fprintf(stderr, "    => %.0f req/s  p50 %sms  p99 %sms  failed %d\n",
						s.RPS, loadclient.Ms(s.P50), loadclient.Ms(s.P99), s.Failed)
				}
			}
		}
	}
	return samples, nil
}

func startEtcdCluster(ctx context.Context, o *Options, tmp, token string) (*cluster, error) {
	if _, err := os.Stat(o.EtcdBin); err != nil {
		return nil, err
	}
	ports, err := procs.FreePorts(2 * o.Size)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, "etcd")
	if err := mkdirs(root); err != nil {
		return nil, err
	}
	ms := layout("etcd", root, o.Size, ports)
	return startCluster(ctx, "etcd", ms, func(m *member) []string {
		return etcdArgv(o.EtcdBin, m, ms, token, o.EtcdArgs)
	}, root, o.StartupMax)
}

func startStrataCluster(ctx context.Context, o *Options, tmp, token string) (*cluster, error) {
	// Not tmp/strata: that is the members' root.
	bin, err := procs.StrataBinary(ctx, o.StrataBin, o.Repo, filepath.Join(tmp, "bin"))
	if err != nil {
		return nil, err
	}
	ports, err := procs.FreePorts(2 * o.Size)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, "strata")
	if err := mkdirs(root); err != nil {
		return nil, err
	}
	ms := layout("strata", root, o.Size, ports)
	return startCluster(ctx, "strata", ms, func(m *member) []string {
		return strataArgv(bin, m, ms, token, o.CPUProfile != "", o.StrataArgs)
	}, root, o.StartupMax)
}

// targets returns the client URL of each client group and its size: the
// clients dealt over all members (spread) or all on the current leader.
func targets(ctx context.Context, o *Options, c *cluster, mode Mode, clients int) ([]string, []int, error) {
	if mode == Leader {
		l, err := waitLeader(ctx, c, o.StartupMax)
		if err != nil {
			return nil, nil, err
		}
		return []string{l.Client}, []int{clients}, nil
	}
	var urls []string
	var sizes []int
	for i, k := range split(clients, len(c.Members)) {
		if k > 0 {
			urls = append(urls, c.Members[i].Client)
			sizes = append(sizes, k)
		}
	}
	return urls, sizes, nil
}

// measure runs one PUT load against c: one load.Run per target member, all
// at once with the same warmup and duration; req/s are summed and latency
// histograms merged.
func measure(ctx context.Context, o *Options, c *cluster, mode Mode, clients int, profile string, stderr io.Writer) (sample, error) {
	s := sample{System: c.System, Mode: mode, Clients: clients}
	urls, sizes, err := targets(ctx, o, c, mode, clients)
	if err != nil {
		return s, err
	}
	results := make([]*load.Result, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i := range urls {
		cfg := load.Config{
			Target: urls[i], Clients: sizes[i], PutPercent: 100, Keys: o.Keys, ValueSize: o.ValueSize,
			Prefix: "bench", Duration: o.Duration, Warmup: o.Warmup, NoPreload: true,
		}
		if !o.Quiet && i == 0 { // one progress line per second, from the first group
			cfg.Progress = load.PrefixLines(stderr, fmt.Sprintf("    (%d of %d clients, on %s) ", sizes[0], clients, urls[0]))
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = load.Run(ctx, cfg)
		}(i)
	}
	var pw sync.WaitGroup
	if profile != "" {
		lead, _ := waitLeader(ctx, c, 2*time.Second)
		for _, m := range c.Members {
			name := profile + "-" + m.Name
			if m == lead {
				name += "-leader"
			}
			pw.Add(1)
			go func(m *member, path string) {
				defer pw.Done()
				if err := cpuProfile(ctx, m.Client, o.Warmup, o.Duration, path); err != nil {
					fmt.Fprintf(stderr, "    cpu profile of %s: %v\n", m.Name, err)
				}
			}(m, name+".pprof")
		}
	}
	wg.Wait()
	pw.Wait()
	h := &loadclient.Histogram{}
	for i, r := range results {
		if errs[i] != nil {
			return s, fmt.Errorf("load on %s: %w", urls[i], errs[i])
		}
		s.RPS += r.Throughput
		s.Failed += r.Errors + r.Non2xx
		h.Merge(r.Hist)
		if r.FirstError != "" {
			fmt.Fprintf(stderr, "    first error on %s: %s\n", urls[i], r.FirstError)
		}
	}
	s.P50, s.P99 = h.Percentile(50), h.Percentile(99)
	return s, nil
}

// cpuProfile waits out the warmup, then takes a CPU profile of base
// covering the measured phase.
func cpuProfile(ctx context.Context, base string, warmup, d time.Duration, path string) error {
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	return probe.CPUProfile(ctx, base, d, path)
}

// aggregate is the median summary of one system × scenario.
func aggregate(samples []sample, system string, mode Mode, clients int) (load.Medians, bool) {
	var r load.Rounds
	for _, s := range samples {
		if s.System == system && s.Mode == mode && s.Clients == clients {
			r.Add(s.RPS, s.P50, s.P99, s.Failed)
		}
	}
	return r.Medians()
}

// writeMarkdown prints the table: one row per client count × mode × system,
// with each system's req/s divided by etcd's for the same scenario.
func writeMarkdown(w io.Writer, o *Options, systems []string, samples []sample, notes []string) {
	fmt.Fprintf(w, "\n## %d-member Strata vs %d-member etcd, durable PUTs, %d round(s) × %v per run (+%v warmup), medians\n\n",
		o.Size, o.Size, o.Rounds, o.Duration, o.Warmup)
	fmt.Fprintf(w, "Keys %d, value %d B, CPUs %d, data root %s.\n\n", o.Keys, o.ValueSize, runtime.NumCPU(), o.DataRoot)
	fmt.Fprintln(w, "| clients | sent to | system | req/s (median) | req/s range | p50 ms | p99 ms | ÷ etcd req/s | failed reqs |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|---:|")
	for _, nc := range o.Clients {
		for _, mode := range o.Modes {
			etcd, haveEtcd := aggregate(samples, "etcd", mode, nc)
			for _, sys := range systems {
				a, ok := aggregate(samples, sys, mode, nc)
				if !ok {
					fmt.Fprintf(w, "| %d | %s | %s | – | – | – | – | – | – |\n", nc, mode.Describe(), sys)
					continue
				}
				ratio := "–"
				if haveEtcd && etcd.RPS > 0 {
					ratio = fmt.Sprintf("%.2f", a.RPS/etcd.RPS)
				}
				fmt.Fprintf(w, "| %d | %s | %s | %.0f | %.0f–%.0f | %.3f | %.3f | %s | %d |\n",
					nc, mode.Describe(), sys, a.RPS, a.RPSMin, a.RPSMax, a.P50ms, a.P99ms, ratio, a.Failed)
			}
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
