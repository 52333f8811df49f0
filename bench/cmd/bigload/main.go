// Command bigload measures one server at scale: it starts a server binary
// (Strata on a backend, or etcd with the v2 API) on a fresh data dir,
// loads N keys of 100-byte values through the HTTP API with many concurrent
// keep-alive clients, and reports
//
//   - load time, then RssAnon and VmRSS (/proc/PID/status), the live heap
//     after a forced GC (pprof), and disk use (allocated blocks) by role;
//   - GET throughput with 16 clients over random keys of the whole set,
//     against a second server of the same kind holding only 10k keys
//     (rounds alternate between the two, median reported);
//   - restart to serving: SIGTERM, wait for exit, start the same command,
//     time until a GET of a loaded key answers 200; RssAnon after restart.
//
// Progress goes to stderr every --progress; the result is printed as one
// markdown table row and, with --json, written as JSON. Wrap runs in
// `flock /tmp/bench.lock` on a shared machine.
//
//	go run ./bench/cmd/bigload --server bbolt --keys 5000000
//	go run ./bench/cmd/bigload --server etcd --keys 1000000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-kv/strata/bench/internal/probe"
	"github.com/strata-kv/strata/bench/internal/procs"
	"github.com/strata-kv/strata/bench/load"
)

type options struct {
	server      string // etcd, or a Strata backend name
	strataBin   string
	etcdBin     string
	keys        int
	smallKeys   int
	clients     int
	getClients  int
	valueSize   int
	getDur      time.Duration
	rounds      int
	restarts    int
	dataRoot    string
	jsonPath    string
	progress    time.Duration
	extra       string
	keep        bool
	restartWait time.Duration
	settle      time.Duration
	profileDir  string
}

// Result is what one run measured.
type Result struct {
	Date      string  `json:"date"`
	Server    string  `json:"server"`
	Binary    string  `json:"binary"`
	Keys      int     `json:"keys"`
	ValueSize int     `json:"value_size"`
	Clients   int     `json:"clients"`
	LoadSec   float64 `json:"load_seconds"`
	LoadRate  float64 `json:"load_keys_per_second"`
	// Peak RssAnon seen by the progress sampler during the load.
	PeakRssAnon int64 `json:"peak_rss_anon"`
	RssAnon     int64 `json:"rss_anon"`
	VmRSS       int64 `json:"vm_rss"`
	LiveHeap    int64 `json:"live_heap"`
	DiskWAL     int64 `json:"disk_wal"`
	DiskSnap    int64 `json:"disk_snap"`
	DiskStore   int64 `json:"disk_store"`
	// GET ×getClients, req/s: median over rounds, and every round.
	GetSmall       float64   `json:"get_small"`
	GetBig         float64   `json:"get_big"`
	GetSmallRounds []float64 `json:"get_small_rounds"`
	GetBigRounds   []float64 `json:"get_big_rounds"`
	GetRatio       float64   `json:"get_ratio"`
	// Restart: seconds from start of the new process to the first 200.
	RestartSec         []float64 `json:"restart_seconds"`
	StopSec            []float64 `json:"stop_seconds"`
	RssAnonAfterStart  int64     `json:"rss_anon_after_restart"`
	LiveHeapAfterStart int64     `json:"live_heap_after_restart"`
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "bbolt", "etcd, or a Strata backend: memory, bbolt, badger")
	flag.StringVar(&o.strataBin, "strata-bin", "", "Strata binary (default: build ./cmd/strata into the data root)")
	flag.StringVar(&o.etcdBin, "etcd-bin", "/usr/bin/etcd", "etcd binary")
	flag.IntVar(&o.keys, "keys", 5_000_000, "keys to load")
	flag.IntVar(&o.smallKeys, "small-keys", 10_000, "keys on the comparison server")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients while loading")
	flag.IntVar(&o.getClients, "get-clients", 16, "concurrent clients for the GET rounds")
	flag.IntVar(&o.valueSize, "value-size", 100, "value size in bytes")
	flag.DurationVar(&o.getDur, "get-duration", 5*time.Second, "length of one GET round (after 1s warmup)")
	flag.IntVar(&o.rounds, "rounds", 3, "GET rounds per server, alternating")
	flag.IntVar(&o.restarts, "restarts", 2, "restarts to time")
	flag.StringVar(&o.dataRoot, "data-root", "", "where data dirs and logs go (default: a new temp dir)")
	flag.StringVar(&o.jsonPath, "json", "", "write the result as JSON to this file")
	flag.DurationVar(&o.progress, "progress", 10*time.Second, "progress line interval")
	flag.StringVar(&o.extra, "extra", "", "extra server flags, space separated")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs")
	flag.DurationVar(&o.restartWait, "restart-timeout", 10*time.Minute, "give up on a restart after this long")
	flag.StringVar(&o.profileDir, "profile", "", "write a CPU profile of each server during its last GET round to this directory (--enable-pprof)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "idle time after the load before measuring (snapshots, compactions)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "bigload:", err)
		os.Exit(1)
	}
}

var start = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6s] %s\n", time.Since(start).Round(time.Second), fmt.Sprintf(format, args...))
}

// newServer prepares the etcd or Strata server o describes under root, with
// fresh ports and o.extra flags last.
func newServer(o *options, bin, root, name string) (*procs.Server, error) {
	var s *procs.Server
	var err error
	if o.server == "etcd" {
		s, err = procs.NewEtcd(o.etcdBin, root, name)
	} else {
		s, err = procs.NewStrata(bin, root, name)
	}
	if err != nil {
		return nil, err
	}
	if o.server != "etcd" {
		s.Argv = append(s.Argv, "--backend", o.server, "--log-level", "info")
	}
	s.Argv = append(s.Argv, "--enable-pprof")
	s.Argv = append(s.Argv, strings.Fields(o.extra)...)
	return s, nil
}

// startReady starts s and waits until it accepts writes.
func startReady(ctx context.Context, s *procs.Server) error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.Ready(ctx, 5*time.Minute)
}

func run(ctx context.Context, o *options) error {
	root, cleanup, err := dataRoot(o)
	if err != nil {
		return err
	}
	defer cleanup()
	bin := o.etcdBin
	if o.server != "etcd" {
		if o.strataBin == "" {
			logf("building ./cmd/strata into %s", filepath.Join(root, "strata"))
		}
		if bin, err = procs.StrataBinary(ctx, o.strataBin, procs.ModuleRoot(), root); err != nil {
			return fmt.Errorf("build strata: %w", err)
		}
	}
	r := &bigRun{o: o, base: load.Config{ValueSize: o.valueSize, Prefix: "big", Timeout: 30 * time.Second},
		res: &Result{Date: time.Now().UTC().Format(time.RFC3339), Server: o.server, Binary: bin,
			Keys: o.keys, ValueSize: o.valueSize, Clients: o.clients}}
	if r.small, err = newServer(o, bin, root, "small"); err != nil {
		return err
	}
	if r.big, err = newServer(o, bin, root, "big"); err != nil {
		return err
	}
	for _, s := range []*procs.Server{r.small, r.big} {
		os.RemoveAll(s.Dir)
		defer s.Stop(30 * time.Second)
	}
	logf("%s: starting the %d-key comparison server, logs in %s", o.server, o.smallKeys, root)
	for _, phase := range []func(context.Context) error{r.loadSmall, r.loadBig, r.measureLoaded, r.getRounds, r.restart} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	return r.res.write(o.jsonPath)
}

// dataRoot returns the directory for data dirs and logs (o.dataRoot, or a
// new temp dir) and a cleanup that removes the data dirs unless o.keep.
func dataRoot(o *options) (string, func(), error) {
	root := o.dataRoot
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "bigload-"); err != nil {
			return "", nil, err
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return "", nil, err
	}
	return root, func() {
		if o.keep {
			return
		}
		for _, n := range []string{"big-data", "small-data"} {
			os.RemoveAll(filepath.Join(root, n))
		}
	}, nil
}

// bigRun is one run's servers and what it measured so far.
type bigRun struct {
	o          *options
	base       load.Config
	small, big *procs.Server
	res        *Result
}

// loadSmall starts the comparison server and fills it.
func (r *bigRun) loadSmall(ctx context.Context) error {
	if err := startReady(ctx, r.small); err != nil {
		return err
	}
	cfg := r.base
	cfg.Target, cfg.Clients, cfg.Keys = r.small.URL, r.o.clients, r.o.smallKeys
	if err := load.Preload(ctx, cfg); err != nil {
		return fmt.Errorf("load small: %w", err)
	}
	return nil
}

// loadBig starts the big server and fills it, logging progress and
// tracking the peak RssAnon.
func (r *bigRun) loadBig(ctx context.Context) error {
	o, res := r.o, r.res
	logf("%s: starting the big server and loading %d keys with %d clients", o.server, o.keys, o.clients)
	if err := startReady(ctx, r.big); err != nil {
		return err
	}
	cfg := r.base
	cfg.Target, cfg.Clients, cfg.Keys = r.big.URL, o.clients, o.keys
	t0 := time.Now()
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(o.progress)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r.logLoad(ctx, t0, &peak)
		}
	}()
	err := load.Preload(ctx, cfg)
	close(stop)
	<-done
	if err != nil {
		return fmt.Errorf("load big: %w", err)
	}
	res.LoadSec = time.Since(t0).Seconds()
	res.LoadRate = float64(o.keys) / res.LoadSec
	res.PeakRssAnon = peak.Load()
	logf("loaded %d keys in %.1f s (%.0f/s)", o.keys, res.LoadSec, res.LoadRate)
	return nil
}

// logLoad prints one progress line of the big load and raises peak.
func (r *bigRun) logLoad(ctx context.Context, t0 time.Time, peak *atomic.Int64) {
	idx, _ := probe.EtcdIndex(ctx, r.big.URL)
	m, _ := probe.ReadMem(r.big.Proc.Pid())
	if m.RssAnon > peak.Load() {
		peak.Store(m.RssAnon)
	}
	rate := float64(idx) / time.Since(t0).Seconds()
	eta := time.Duration(0)
	if rate > 0 && int(idx) < r.o.keys {
		eta = time.Duration(float64(r.o.keys-int(idx))/rate) * time.Second
	}
	logf("load: index %d of ~%d (%.0f/s), RssAnon %s VmRSS %s, ETA %s",
		idx, r.o.keys, rate, mib(m.RssAnon), mib(m.VmRSS), eta.Round(time.Second))
}

// measureLoaded records the big server's memory and disk once the load
// has settled.
func (r *bigRun) measureLoaded(ctx context.Context) error {
	res := r.res
	// Let a snapshot or compaction that the load started settle.
	time.Sleep(r.o.settle)
	m, err := probe.ReadMem(r.big.Proc.Pid())
	if err != nil {
		return err
	}
	res.RssAnon, res.VmRSS = m.RssAnon, m.VmRSS
	if h, err := probe.LiveHeap(ctx, r.big.URL); err == nil {
		res.LiveHeap = h
	} else {
		logf("live heap: %v", err)
	}
	d, err := probe.MeasureDisk(r.big.Dir)
	if err != nil {
		return err
	}
	res.DiskWAL, res.DiskSnap, res.DiskStore = d.WAL, d.Snap, d.Store
	logf("loaded: RssAnon %s, VmRSS %s, live heap %s, disk: wal %s, snap %s, store %s",
		mib(res.RssAnon), mib(res.VmRSS), mib(res.LiveHeap), mib(d.WAL), mib(d.Snap), mib(d.Store))
	return nil
}

// getRounds runs the GET rounds, alternating the two servers, then stops
// the small one.
func (r *bigRun) getRounds(ctx context.Context) error {
	o, res := r.o, r.res
	for round := range o.rounds {
		pair := []*procs.Server{r.small, r.big}
		if round%2 == 1 {
			slices.Reverse(pair)
		}
		for _, s := range pair {
			keys := o.keys
			if s == r.small {
				keys = o.smallKeys
			}
			rps, err := r.getRound(ctx, s, keys, o.profileDir != "" && round == o.rounds-1)
			if err != nil {
				return err
			}
			if s == r.small {
				res.GetSmallRounds = append(res.GetSmallRounds, rps)
			} else {
				res.GetBigRounds = append(res.GetBigRounds, rps)
			}
		}
	}
	res.GetSmall, res.GetBig = load.Median(res.GetSmallRounds), load.Median(res.GetBigRounds)
	if res.GetSmall > 0 {
		res.GetRatio = res.GetBig / res.GetSmall
	}
	r.small.Stop(30 * time.Second)
	return nil
}

// getRound runs one GET round on s over keys and returns its req/s; with
// profile it also saves a CPU profile of s taken during the round.
func (r *bigRun) getRound(ctx context.Context, s *procs.Server, keys int, profile bool) (float64, error) {
	o := r.o
	cfg := r.base
	cfg.Target, cfg.Clients, cfg.Keys, cfg.PutPercent = s.URL, o.getClients, keys, 0
	cfg.NoPreload, cfg.Duration, cfg.Warmup = true, o.getDur, time.Second
	var prof chan error
	if profile {
		prof = make(chan error, 1)
		path := filepath.Join(o.profileDir, fmt.Sprintf("%s-get-%dkeys.pprof", o.server, keys))
		go func() { prof <- probe.CPUProfile(ctx, s.URL, time.Second+o.getDur/2, path) }()
	}
	lr, err := load.Run(ctx, cfg)
	if prof != nil {
		if perr := <-prof; perr != nil {
			logf("profile: %v", perr)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("GET round on %s: %w", s.Name, err)
	}
	if lr.OK != lr.Requests {
		return 0, fmt.Errorf("GET round on %s: %d of %d requests failed (%s)", s.Name, lr.Requests-lr.OK, lr.Requests, lr.FirstError)
	}
	logf("GET x%d over %d keys: %.0f req/s, p99 %v", o.getClients, keys, lr.Throughput, lr.P99)
	return lr.Throughput, nil
}

// restart times o.restarts restarts of the big server, then records its
// memory.
func (r *bigRun) restart(ctx context.Context) error {
	o, res, big := r.o, r.res, r.big
	probeURL := fmt.Sprintf("%s/v2/keys/%s/k%d", big.URL, r.base.Prefix, o.keys/2)
	for i := range o.restarts {
		stopped := big.Stop(5 * time.Minute)
		if err := ctx.Err(); err != nil {
			return err
		}
		t2 := time.Now()
		if err := big.Start(); err != nil {
			return err
		}
		dur, err := probe.WaitGet(ctx, probeURL, t2, o.restartWait, big.Proc.Exited)
		if err != nil {
			return fmt.Errorf("restart %d: %w; log tail:\n%s", i+1, err, big.Proc.LogTail(2000))
		}
		res.StopSec = append(res.StopSec, stopped.Seconds())
		res.RestartSec = append(res.RestartSec, dur.Seconds())
		logf("restart %d: stopped in %.2f s, serving after %.2f s", i+1, stopped.Seconds(), dur.Seconds())
	}
	time.Sleep(2 * time.Second)
	if m, err := probe.ReadMem(big.Proc.Pid()); err == nil {
		res.RssAnonAfterStart = m.RssAnon
	}
	if h, err := probe.LiveHeap(ctx, big.URL); err == nil {
		res.LiveHeapAfterStart = h
	}
	logf("after restart: RssAnon %s, live heap %s", mib(res.RssAnonAfterStart), mib(res.LiveHeapAfterStart))
	return nil
}

// write prints res as a markdown table row and, with a path, as JSON.
func (res *Result) write(jsonPath string) error {
	fmt.Println("| server | keys | load (s) | keys/s | peak RssAnon loading | RssAnon | VmRSS | live heap | disk: wal / snap / store | GET x16 small | GET x16 big | ratio | restart (s) | RssAnon after restart |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
	rs := make([]string, len(res.RestartSec))
	for i, v := range res.RestartSec {
		rs[i] = fmt.Sprintf("%.2f", v)
	}
	fmt.Printf("| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s / %s / %s | %.0f | %.0f | %.2f | %s | %s |\n",
		res.Server, res.Keys, res.LoadSec, res.LoadRate, mib(res.PeakRssAnon), mib(res.RssAnon), mib(res.VmRSS), mib(res.LiveHeap),
		mib(res.DiskWAL), mib(res.DiskSnap), mib(res.DiskStore), res.GetSmall, res.GetBig, res.GetRatio,
		strings.Join(rs, " / "), mib(res.RssAnonAfterStart))
	if jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", jsonPath, err)
	}
	return nil
}

func mib(b int64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
