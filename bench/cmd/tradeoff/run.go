package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/strata-kv/strata/bench/internal/probe"
	"github.com/strata-kv/strata/bench/internal/procs"
	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

// instance is one server under test; restarts reuse its ports and data dir.
type instance struct {
	*procs.Server // named after its spec
}

// stop sends SIGTERM and waits up to a minute for a clean exit; it
// reports how long the exit took and whether SIGKILL was needed.
func (in *instance) stop() (time.Duration, bool) {
	if in.Proc == nil || in.Proc.Exited() {
		return 0, false
	}
	const grace = time.Minute
	d := in.Stop(grace)
	return d, d >= grace
}

// newInstance prepares a server under root with fresh ports. extra flags
// go to Strata only.
func newInstance(o *Options, sp spec, bin, root string, extra ...string) (*instance, error) {
	if sp.Backend == "" {
		s, err := procs.NewEtcd(o.EtcdBin, root, sp.Name)
		if err != nil {
			return nil, err
		}
		s.Argv = append(s.Argv, "--enable-pprof")
		return &instance{s}, nil
	}
	s, err := procs.NewStrata(bin, root, sp.Name)
	if err != nil {
		return nil, err
	}
	s.Argv = append(s.Argv, "--backend", sp.Backend, "--log-level", "warn", "--enable-pprof")
	if sp.NoFsync {
		s.Argv = append(s.Argv, "--unsafe-no-fsync")
	}
	s.Argv = append(s.Argv, extra...)
	return &instance{s}, nil
}

// Results is everything one run measured.
type Results struct {
	Date        string `json:"date"`
	CPUs        int    `json:"cpus"`
	GoVersion   string `json:"go_version"`
	EtcdVersion string `json:"etcd_version"`
	Keys        int    `json:"keys"`
	ValueSize   int    `json:"value_size"`
	Rounds      int    `json:"rounds"`
	Duration    string `json:"duration"`
	DataRoot    string `json:"data_root"`

	Footprint  []Footprint   `json:"footprint"`
	Throughput []Throughput  `json:"throughput"`
	Large      []LargeResult `json:"large,omitempty"`
	Notes      []string      `json:"notes,omitempty"`
	Samples    []sample      `json:"-"`
	order      []string      // server names, table order
	byName     map[string]*Footprint
}

// Footprint is the state of a server holding Keys keys.
type Footprint struct {
	Server      string          `json:"server"`
	LoadSeconds float64         `json:"load_s"`
	Mem         probe.MemStatus `json:"mem"`
	Heap        int64           `json:"live_heap"` // after a GC, see probe.LiveHeap
	Disk        probe.DiskUsage `json:"disk"`
	StopSeconds float64         `json:"stop_s"`
	StopKilled  bool            `json:"stop_killed,omitempty"`
	// RestartSeconds is from starting the process to the first 200 GET.
	RestartSeconds float64         `json:"restart_s"`
	MemAfter       probe.MemStatus `json:"mem_after_restart"`
	HeapAfter      int64           `json:"live_heap_after_restart"`
}

// Throughput is the median of the rounds of one server × workload × clients.
type Throughput struct {
	Server   string  `json:"server"`
	Workload string  `json:"workload"`
	Clients  int     `json:"clients"`
	RPS      float64 `json:"req_per_sec"`
	RPSMin   float64 `json:"req_per_sec_min"`
	RPSMax   float64 `json:"req_per_sec_max"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Failed   int64   `json:"failed"`
}

// LargeResult is the large phase of one backend.
type LargeResult struct {
	Server          string          `json:"server"`
	Keys            int             `json:"keys"`
	LoadSeconds     float64         `json:"load_s"`
	SnapshotIndex   uint64          `json:"snapshot_index"`
	SnapshotSeconds float64         `json:"snapshot_s"`
	SnapshotBytes   int64           `json:"snapshot_bytes"`
	Mem             probe.MemStatus `json:"mem_loaded"`
	Heap            int64           `json:"live_heap_loaded"`
	Disk            probe.DiskUsage `json:"disk"`
	StopSeconds     float64         `json:"stop_s"`
	RestartSeconds  float64         `json:"restart_s"`
	MemAfter        probe.MemStatus `json:"mem_after_restart"`
	HeapAfter       int64           `json:"live_heap_after_restart"`
	Error           string          `json:"error,omitempty"`
}

type sample struct {
	server, workload string
	clients, round   int
	res              *load.Result
}

// logf prints a progress line with the time since the run started.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) logf(format string, args ...any) {
	fmt.Fprintf(p.w, "[%6s] %s\n", time.Since(p.start).Round(time.Second), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	tr := &tradeoffRun{o: o, pr: &progress{w: stderr, start: time.Now()},
		base: load.Config{Keys: o.Keys, ValueSize: o.ValueSize, Prefix: "bench"}}
	tmp, cleanup, err := procs.RunDir(o.DataRoot, "strata-tradeoff-", o.Keep, stderr)
	if err != nil {
		return err
	}
	tr.tmp = tmp
	defer func() {
		for _, in := range tr.live {
			in.stop()
		}
		cleanup()
	}()
	tr.pr.logf("building strata in %s", o.Repo)
	if tr.bin, err = procs.StrataBinary(ctx, o.StrataBin, o.Repo, tmp); err != nil {
		return err
	}
	tr.res = newResults(o, tr.bin)
	for _, phase := range []func(context.Context) error{tr.footprints, tr.throughput, tr.restarts, tr.large} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	writeMarkdown(stdout, o, tr.res)
	if o.JSONPath != "" {
		b, err := json.MarshalIndent(tr.res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.JSONPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	tr.pr.logf("done")
	return nil
}

func newResults(o *Options, bin string) *Results {
	res := &Results{
		Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), CPUs: runtime.NumCPU(),
		GoVersion: goVersion(bin), Keys: o.Keys, ValueSize: o.ValueSize, Rounds: o.Rounds,
		Duration: fmt.Sprintf("%v + %v warmup", o.Duration, o.Warmup), DataRoot: o.DataRoot,
		byName: map[string]*Footprint{},
	}
	for _, s := range append(append([]spec{}, o.Servers...), o.LargeServers...) {
		if s.Backend == "" {
			res.EtcdVersion = etcdVersion(o.EtcdBin)
		}
	}
	return res
}

// tradeoffRun is one run's servers and results.
type tradeoffRun struct {
	o        *Options
	pr       *progress
	base     load.Config // the --keys key space
	bin, tmp string
	res      *Results
	live     []*instance // servers of phases 1-3, stopped at the end
}

// footprints (phase 1) starts every server and fills it.
func (tr *tradeoffRun) footprints(ctx context.Context) error {
	res := tr.res
	for _, sp := range tr.o.Servers {
		fp, err := tr.footprint(ctx, sp)
		if err != nil {
			return fmt.Errorf("%s: %w", sp.Name, err)
		}
		res.Footprint = append(res.Footprint, fp)
		res.order = append(res.order, sp.Name)
	}
	for i := range res.Footprint {
		res.byName[res.Footprint[i].Server] = &res.Footprint[i]
	}
	return nil
}

// footprint starts the server of sp, fills it and measures it at rest.
func (tr *tradeoffRun) footprint(ctx context.Context, sp spec) (Footprint, error) {
	o := tr.o
	fp := Footprint{Server: sp.Name}
	in, err := newInstance(o, sp, tr.bin, tr.tmp)
	if err != nil {
		return fp, err
	}
	tr.pr.logf("%s: starting", sp.Name)
	if err := in.Start(); err != nil {
		return fp, err
	}
	tr.live = append(tr.live, in)
	if err := in.Ready(ctx, o.StartupMax); err != nil {
		return fp, err
	}
	if fp.LoadSeconds, err = fill(ctx, tr.pr, in, tr.base, o.LoadClients); err != nil {
		return fp, err
	}
	// Let background work settle (badger's memtable flush, etcd's
	// snapshot) so the footprint is the resting one.
	time.Sleep(2 * time.Second)
	if fp.Mem, err = probe.ReadMem(in.Proc.Pid()); err != nil {
		return fp, err
	}
	// RSS first: the GC LiveHeap forces would lower it.
	if fp.Heap, err = probe.LiveHeap(ctx, in.URL); err != nil {
		return fp, err
	}
	if fp.Disk, err = probe.MeasureDisk(in.Dir); err != nil {
		return fp, err
	}
	tr.pr.logf("%s: %d keys in %.1fs; RSS %s (anon %s), live heap %s, disk %s/key", sp.Name, o.Keys, fp.LoadSeconds,
		mib(fp.Mem.VmRSS), mib(fp.Mem.RssAnon), mib(fp.Heap), perKey(fp.Disk.Total(), o.Keys))
	return fp, nil
}

// throughput (phase 2) runs every workload × client count on every server,
// the server order rotated each round, then aggregates and writes the CSV.
func (tr *tradeoffRun) throughput(ctx context.Context) error {
	o, res, live := tr.o, tr.res, tr.live
	total := o.Rounds * len(o.Workloads) * len(o.Clients) * len(live)
	n := 0
	for r := 0; r < o.Rounds; r++ {
		for _, w := range o.Workloads {
			for _, c := range o.Clients {
				for i := range live {
					in := live[(i+r)%len(live)]
					n++
					cfg := tr.base
					cfg.Target, cfg.Clients, cfg.NoPreload = in.URL, c, true
					cfg.Duration, cfg.Warmup = o.Duration, o.Warmup
					if w == "put" {
						cfg.PutPercent = 100
					}
					lr, err := load.Run(ctx, cfg)
					if err != nil {
						return fmt.Errorf("%s %s%d: %w", in.Name, w, c, err)
					}
					eta := time.Duration(total-n) * (o.Duration + o.Warmup)
					tr.pr.logf("[%d/%d eta %v] %-22s %s%-3d %8.0f req/s  p99 %s ms  failed %d",
						n, total, eta.Round(time.Second), in.Name, w, c, lr.Throughput, loadclient.Ms(lr.P99), lr.Errors+lr.Non2xx)
					res.Samples = append(res.Samples, sample{server: in.Name, workload: w, clients: c, round: r + 1, res: lr})
				}
			}
		}
	}
	res.aggregate(o)
	if o.CSVPath != "" {
		return writeCSV(o.CSVPath, res.Samples)
	}
	return nil
}

// restarts (phase 3) restarts each server holding o.Keys keys, timing
// its stop and its way back to the first GET, then stops it for good.
func (tr *tradeoffRun) restarts(ctx context.Context) error {
	o := tr.o
	probePath := fmt.Sprintf("/v2/keys/bench/k%d", o.Keys-1)
	for _, in := range tr.live {
		fp := tr.res.byName[in.Name]
		d, killed := in.stop()
		fp.StopSeconds, fp.StopKilled = d.Seconds(), killed
		start := time.Now()
		if err := in.Start(); err != nil {
			return err
		}
		rd, err := probe.WaitGet(ctx, in.URL+probePath, start, o.StartupMax, in.Proc.Exited)
		if err != nil {
			return fmt.Errorf("%s restart: %w; log tail:\n%s", in.Name, err, in.Proc.LogTail(1500))
		}
		fp.RestartSeconds = rd.Seconds()
		time.Sleep(500 * time.Millisecond)
		fp.MemAfter, _ = probe.ReadMem(in.Proc.Pid())
		fp.HeapAfter, _ = probe.LiveHeap(ctx, in.URL)
		tr.pr.logf("%s: stop %.2fs, restart to first GET %.3fs, RSS after %s, live heap %s", in.Name, fp.StopSeconds, fp.RestartSeconds, mib(fp.MemAfter.VmRSS), mib(fp.HeapAfter))
		in.stop()
	}
	tr.live = nil
	return nil
}

// large (phase 4) runs the large store phase, one backend at a time with
// nothing else running.
func (tr *tradeoffRun) large(ctx context.Context) error {
	if tr.o.Large <= 0 {
		return nil
	}
	for _, sp := range tr.o.LargeServers {
		lr := largePhase(ctx, tr.o, tr.pr, sp, tr.bin, tr.tmp)
		if lr.Error != "" {
			tr.pr.logf("%s large: %s", sp.Name, lr.Error)
		}
		tr.res.Large = append(tr.res.Large, lr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// fill PUTs every key once with clients connections, printing progress
// (from X-Etcd-Index) every 5 s, and returns the seconds it took.
func fill(ctx context.Context, pr *progress, in *instance, base load.Config, clients int) (float64, error) {
	cfg := base
	cfg.Target, cfg.Clients = in.URL, clients
	idx0, _ := probe.EtcdIndex(ctx, in.URL)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if idx, err := probe.EtcdIndex(ctx, in.URL); err == nil {
					pr.logf("%s: loading, %d/%d keys", in.Name, idx-idx0, cfg.Keys)
				}
			}
		}
	}()
	start := time.Now()
	err := load.Preload(ctx, cfg)
	close(done)
	return time.Since(start).Seconds(), err
}

// largePhase loads o.Large keys without fsync into a server whose one
// snapshot falls at the end of the load, then restarts it with defaults.
func largePhase(ctx context.Context, o *Options, pr *progress, sp spec, bin, tmp string) (lr LargeResult) {
	lr = LargeResult{Server: sp.Name, Keys: o.Large}
	root := filepath.Join(tmp, "large")
	if err := os.MkdirAll(root, 0o755); err != nil {
		lr.Error = err.Error()
		return lr
	}
	defer os.RemoveAll(root)
	// --snapshot-count = Large: the entries of the load (plus the bootstrap
	// and readiness probe) cross it only in the last few PUTs.
	in, err := newInstance(o, sp, bin, root)
	if err != nil {
		lr.Error = err.Error()
		return lr
	}
	// The restart uses the default settings; later flags win.
	restartArgv := append([]string(nil), in.Argv...)
	in.Argv = append(in.Argv, "--snapshot-count", strconv.Itoa(o.Large))
	if sp.Backend != "" {
		in.Argv = append(in.Argv, "--unsafe-no-fsync", "--log-level", "debug")
	} else {
		restartArgv = in.Argv // etcd has no fsync-off mode; keep its snapshot
	}
	defer in.stop()
	pr.logf("%s: large phase, loading %d keys (%d clients)", sp.Name, o.Large, o.LoadClients)
	if err := in.Start(); err != nil {
		lr.Error = err.Error()
		return lr
	}
	if err := in.Ready(ctx, o.StartupMax); err != nil {
		lr.Error = err.Error()
		return lr
	}
	cfg := load.Config{Keys: o.Large, ValueSize: o.ValueSize, Prefix: "big"}
	if lr.LoadSeconds, err = fill(ctx, pr, in, cfg, o.LoadClients); err != nil {
		lr.Error = err.Error()
		return lr
	}
	if sp.Backend != "" {
		if err := waitSnapshot(in, o.Large, &lr); err != nil {
			lr.Error = err.Error()
			return lr
		}
		pr.logf("%s: snapshot at index %d took %.2fs (%s)", sp.Name, lr.SnapshotIndex, lr.SnapshotSeconds, mib(lr.SnapshotBytes))
	}
	time.Sleep(2 * time.Second)
	lr.Mem, _ = probe.ReadMem(in.Proc.Pid())
	lr.Heap, _ = probe.LiveHeap(ctx, in.URL)
	d, _ := in.stop()
	lr.StopSeconds = d.Seconds()
	lr.Disk, _ = probe.MeasureDisk(in.Dir)
	in.Argv = restartArgv
	start := time.Now()
	if err := in.Start(); err != nil {
		lr.Error = err.Error()
		return lr
	}
	rd, err := probe.WaitGet(ctx, fmt.Sprintf("%s/v2/keys/big/k%d", in.URL, o.Large-1), start, 5*time.Minute, in.Proc.Exited)
	if err != nil {
		lr.Error = fmt.Sprintf("restart: %v; log tail: %s", err, in.Proc.LogTail(800))
		return lr
	}
	lr.RestartSeconds = rd.Seconds()
	time.Sleep(500 * time.Millisecond)
	lr.MemAfter, _ = probe.ReadMem(in.Proc.Pid())
	lr.HeapAfter, _ = probe.LiveHeap(ctx, in.URL)
	pr.logf("%s: loaded: RSS %s (anon %s), live heap %s; stop %.2fs, restart to first GET %.2fs, RSS %s (anon %s), live heap %s after restart",
		sp.Name, mib(lr.Mem.VmRSS), mib(lr.Mem.RssAnon), mib(lr.Heap), lr.StopSeconds, lr.RestartSeconds, mib(lr.MemAfter.VmRSS), mib(lr.MemAfter.RssAnon), mib(lr.HeapAfter))
	return lr
}

// waitSnapshot waits (up to five minutes) for the log line of a snapshot
// at index large or later, and records it in lr. The snapshot runs off the
// raft loop, so it may finish after the load.
func waitSnapshot(in *instance, large int, lr *LargeResult) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		idx, d, ok, err := lastSnapshot(in.Log)
		if err != nil {
			return err
		}
		if ok && idx >= uint64(large) {
			lr.SnapshotIndex, lr.SnapshotSeconds = idx, d.Seconds()
			lr.SnapshotBytes = newestSnapSize(in.Dir)
			return nil
		}
		if time.Now().After(deadline) || in.Proc.Exited() {
			return errors.New("no snapshot logged after the load")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
