// Command siege measures how a v2 keys server answers normal traffic while
// it is besieged by slow clients (slowloris) and many idle watchers.
//
//	go run ./bench/cmd/siege --target http://127.0.0.1:2379 --pid $(pgrep -n strata) \
//	    --slow 1000 --slow-mode mix --watchers 10000 --watch-proto h1 --duration 30s
//
// Against a running server it opens --slow slow connections (mode head:
// a request head trickled a few bytes per --slow-interval, never finished;
// body: a whole PUT head, then a body that trickles; silent: connect and
// say nothing; mix: a third each), each reconnecting when the server cuts
// it, and --watchers long-poll watches (GET ?wait=true) on --watch-keys
// keys, over one HTTP/1.1 connection each (h1) or multiplexed over
// --watch-conns HTTP/2 prior-knowledge connections (h2c). Once the watches
// are registered and --settle has passed, it runs GET and durable PUT load
// (bench/load's raw HTTP/1.1 client) for --duration and samples the server
// (/proc/PID: RssAnon, VmRSS, open fds, threads; goroutines from
// /debug/pprof/goroutine?debug=1 if --enable-pprof, else /metrics) every
// second. Then it stops the slow clients, writes each watched key once and
// counts the watchers that got exactly that event, and prints a report with
// a markdown table row.
//
// With HTTP/1.1 watchers the tool holds one fd per watcher and per slow
// client: it raises its own RLIMIT_NOFILE to the hard limit; the server
// needs the same (ulimit -n in its shell).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

type config struct {
	Target       string
	PID          int
	Label        string
	Slow         int
	SlowMode     string
	SlowInterval time.Duration
	SlowChunk    int
	Watchers     int
	WatchProto   string
	WatchConns   int
	WatchKeys    int
	GetClients   int
	PutClients   int
	Keys         int
	Duration     time.Duration
	Settle       time.Duration
	SettleCuts   int64
	OpenTimeout  time.Duration
	WakeTimeout  time.Duration
}

func (c *config) validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--target %q: want http://host:port", c.Target)
	}
	c.Target = strings.TrimRight(c.Target, "/")
	if c.SlowMode != "mix" && !slices.Contains(slowModes, c.SlowMode) {
		return fmt.Errorf("--slow-mode %q: want head, body, silent or mix", c.SlowMode)
	}
	if c.WatchProto != "h1" && c.WatchProto != "h2c" {
		return fmt.Errorf("--watch-proto %q: want h1 or h2c", c.WatchProto)
	}
	switch {
	case c.Slow < 0 || c.Watchers < 0 || c.GetClients < 0 || c.PutClients < 0:
		return errors.New("counts must not be negative")
	case c.SlowInterval <= 0 || c.SlowChunk <= 0:
		return errors.New("--slow-interval and --slow-chunk must be positive")
	case c.WatchKeys <= 0 || c.WatchConns <= 0 || c.Keys <= 0:
		return errors.New("--watch-keys, --watch-conns and --keys must be positive")
	case c.Duration <= 0 || c.Duration > load.MaxDuration:
		return fmt.Errorf("--duration must be in (0, %v]", load.MaxDuration)
	case c.GetClients+c.PutClients == 0:
		return errors.New("need at least one GET or PUT client")
	}
	if c.Label == "" {
		c.Label = fmt.Sprintf("%d slow (%s) + %d watchers (%s)", c.Slow, c.SlowMode, c.Watchers, c.WatchProto)
	}
	return nil
}

// fdsNeeded is the tool's own file-descriptor need, with some slack.
func (c *config) fdsNeeded() uint64 {
	n := c.Slow + c.GetClients + c.PutClients + 64
	if c.WatchProto == "h1" {
		n += c.Watchers
	} else {
		n += c.WatchConns
	}
	return uint64(n)
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit and returns
// the resulting soft limit.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, err
		}
	}
	return rl.Cur, nil
}

func main() {
	var c config
	fs := flag.NewFlagSet("siege", flag.ExitOnError)
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:2379", "server base URL (loopback only)")
	fs.IntVar(&c.PID, "pid", 0, "server process id, for /proc sampling (0: no memory/fd figures)")
	fs.StringVar(&c.Label, "label", "", "scenario name in the report")
	fs.IntVar(&c.Slow, "slow", 1000, "slow clients (slowloris)")
	fs.StringVar(&c.SlowMode, "slow-mode", "mix", "head, body, silent or mix")
	fs.DurationVar(&c.SlowInterval, "slow-interval", time.Second, "a slow client sends --slow-chunk bytes this often")
	fs.IntVar(&c.SlowChunk, "slow-chunk", 2, "bytes per slow send")
	fs.IntVar(&c.Watchers, "watchers", 10000, "idle long-poll watchers")
	fs.StringVar(&c.WatchProto, "watch-proto", "h1", "h1 (one connection per watch) or h2c (multiplexed)")
	fs.IntVar(&c.WatchConns, "watch-conns", 4, "h2c connections the watches share")
	fs.IntVar(&c.WatchKeys, "watch-keys", 100, "distinct watched keys, shared round robin (1: all on one key)")
	fs.IntVar(&c.GetClients, "get-clients", 2, "closed-loop GET clients (one connection each)")
	fs.IntVar(&c.PutClients, "put-clients", 2, "closed-loop PUT clients")
	fs.IntVar(&c.Keys, "keys", 1000, "key space of the normal load")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured load duration")
	fs.DurationVar(&c.Settle, "settle", 12*time.Second, "wait after the watches are registered (let slow clients reach a cut-and-reconnect cycle)")
	fs.Int64Var(&c.SettleCuts, "settle-cuts", 0, "also wait (up to --open-timeout) until the server has cut this many slow connections")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 2*time.Minute, "give up waiting for all watches to register after this")
	fs.DurationVar(&c.WakeTimeout, "wake-timeout", 30*time.Second, "how long the woken watchers have to answer")
	fs.Parse(os.Args[1:])
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "siege:", err)
		os.Exit(2)
	}
	lim, err := raiseNoFile()
	fmt.Fprintf(os.Stderr, "siege: RLIMIT_NOFILE %d (needs ~%d)", lim, c.fdsNeeded())
	if err != nil {
		fmt.Fprintf(os.Stderr, " (raising failed: %v)", err)
	}
	fmt.Fprintln(os.Stderr)
	if lim < c.fdsNeeded() {
		fmt.Fprintf(os.Stderr, "siege: too few file descriptors: raise the hard limit or use --watch-proto h2c\n")
		os.Exit(2)
	}
	if c.WatchProto == "h1" && c.Watchers+c.Slow > 1000 {
		fmt.Fprintf(os.Stderr, "siege: the server holds one fd per connection too: start it with `ulimit -n %d` or more\n", c.Watchers+c.Slow+1000)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, c, os.Stderr)
	if rep != nil {
		rep.write(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "siege:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}

// report is the outcome of one run.
type report struct {
	cfg                     config
	get, put                *load.Result
	before, end, top        sample
	samples                 []sample
	goroutineSource         string
	slowConns, slowCuts     int64
	slowAnswered, slowOpen  int64
	slowHeld                map[string]heldStat // by mode
	slowStatus              map[string]int64
	watchWaiting            int64 // registered when the wake writes went out
	watchAnswered, watchBad int64
	watchErrs               int64
	watchRefused            map[int]int64
	watchFirstErr           string
	wakeWrites              int
}

// ok: every registered watcher got its event and no normal request failed.
func (r *report) ok() bool {
	bad := func(res *load.Result) bool { return res != nil && (res.Errors > 0 || res.Non2xx > 0) }
	return r.watchAnswered == int64(r.cfg.Watchers) && r.watchBad == 0 && !bad(r.get) && !bad(r.put)
}

// lastLine keeps the latest progress line a load run wrote.
type lastLine struct {
	mu   sync.Mutex
	line string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line = strings.TrimSpace(string(p))
	return len(p), nil
}

func (l *lastLine) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

// run besieges c.Target and measures it; progress lines go to prog.
func run(ctx context.Context, c config, prog io.Writer) (*report, error) {
	sg := &siege{c: c, prog: prog, addr: strings.TrimPrefix(c.Target, "http://"), rep: &report{cfg: c},
		sp: newSampler(c.PID, c.Target), t0: time.Now(), ws: &watchStats{}, ss: &slowStats{},
		getLine: &lastLine{}, putLine: &lastLine{}, phase: "open",
		progStop: make(chan struct{}), progDone: make(chan struct{})}
	sg.rep.before = sg.sp.take(ctx, 0)
	var watchCtx, slowCtx context.Context
	watchCtx, sg.stopWatch = context.WithCancel(ctx)
	defer sg.stopWatch()
	if c.WatchProto == "h2c" {
		sg.h2 = h2cTransports(c.WatchConns)
		defer func() {
			for _, t := range sg.h2 {
				t.CloseIdleConnections()
			}
		}()
	}
	sg.startWatchers(ctx, watchCtx)
	slowCtx, sg.stopSlow = context.WithCancel(ctx)
	defer sg.stopSlow()
	sg.startSlow(slowCtx)
	go sg.progress(ctx)
	sg.settle(ctx)
	err := sg.measure(ctx)
	if err == nil {
		err = sg.wake(ctx)
	}
	sg.finish()
	if err != nil {
		return sg.rep, err
	}
	return sg.rep, ctx.Err()
}

// siege is one run's clients, their counters and its progress state.
type siege struct {
	c                   config
	prog                io.Writer
	addr                string
	rep                 *report
	sp                  *sampler
	t0                  time.Time
	ws                  *watchStats
	ss                  *slowStats
	h2                  []*http.Transport // nil for h1 watchers
	watchWG, slowWG     sync.WaitGroup
	stopWatch, stopSlow context.CancelFunc
	getLine, putLine    *lastLine
	progStop, progDone  chan struct{}

	mu        sync.Mutex // guards phase, measuring and rep.samples
	phase     string
	measuring bool
}

func (sg *siege) setPhase(p string, measuring bool) {
	sg.mu.Lock()
	sg.phase, sg.measuring = p, measuring
	sg.mu.Unlock()
}

// startWatchers opens c.Watchers watches, paced so the listen queue never
// overflows.
func (sg *siege) startWatchers(ctx, watchCtx context.Context) {
	c := sg.c
	for i := 0; i < c.Watchers; i++ {
		do := h1Watch(sg.addr)
		if sg.h2 != nil {
			do = h2cWatch(c.Target, sg.h2[i%len(sg.h2)])
		}
		sg.watchWG.Add(1)
		go func() { defer sg.watchWG.Done(); runWatcher(watchCtx, watchKey(i, c.WatchKeys), do, sg.ws) }()
		for int64(i+1)-sg.ws.started.Load()-sg.ws.errs.Load() > 256 && ctx.Err() == nil && time.Since(sg.t0) < c.OpenTimeout {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// startSlow starts c.Slow slow clients, their first sends spread over one
// interval.
func (sg *siege) startSlow(slowCtx context.Context) {
	c := sg.c
	for i := 0; i < c.Slow; i++ {
		sg.slowWG.Add(1)
		start := c.SlowInterval * time.Duration(i) / time.Duration(max(c.Slow, 1))
		go func() {
			defer sg.slowWG.Done()
			runSlow(slowCtx, sg.addr, modeFor(c.SlowMode, i), c.SlowInterval, c.SlowChunk, sg.ss, start)
		}()
	}
}

// progress samples the server and prints a line once a second until
// progStop closes.
func (sg *siege) progress(ctx context.Context) {
	defer close(sg.progDone)
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-sg.progStop:
			return
		case <-tk.C:
		}
		s := sg.sp.take(ctx, time.Since(sg.t0))
		sg.mu.Lock()
		sg.rep.samples = append(sg.rep.samples, s)
		ph, m := sg.phase, sg.measuring
		sg.mu.Unlock()
		ss, ws := sg.ss, sg.ws
		line := fmt.Sprintf("%6.1fs %-7s slow open %d conns %d cuts %d | watch waiting %d answered %d errs %d | server rssanon %s rss %s fds %s gor %s",
			s.At.Seconds(), ph, ss.open.Load(), ss.conns.Load(), ss.cuts.Load(),
			ws.waiting.Load(), ws.answered.Load(), ws.errs.Load(),
			kib(s.RssAnonKiB), kib(s.VmRSSKiB), num(s.FDs), num(s.Goroutines))
		if m {
			line += " | GET " + sg.getLine.get() + " | PUT " + sg.putLine.get()
		}
		fmt.Fprintln(sg.prog, line)
	}
}

// finish stops the progress, the slow clients and the watchers, and fills
// the report from their counters.
func (sg *siege) finish() {
	close(sg.progStop)
	<-sg.progDone
	sg.stopSlow()
	sg.slowWG.Wait()
	sg.stopWatch()
	sg.watchWG.Wait()
	sg.rep.goroutineSource = sg.sp.source
	sg.rep.fill(sg.ss, sg.ws)
}

// settle waits until every watch is registered, then c.Settle, then until
// c.SettleCuts slow connections were cut (each wait bounded by
// c.OpenTimeout since the start).
func (sg *siege) settle(ctx context.Context) {
	c, ws, ss := sg.c, sg.ws, sg.ss
	for ws.waiting.Load()+ws.answered.Load() < int64(c.Watchers) && ctx.Err() == nil {
		if time.Since(sg.t0) > c.OpenTimeout {
			fmt.Fprintf(sg.prog, "siege: only %d of %d watches registered after %v; measuring anyway\n", ws.waiting.Load(), c.Watchers, c.OpenTimeout)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sg.setPhase("settle", false)
	select {
	case <-ctx.Done():
	case <-time.After(c.Settle):
	}
	for ss.cuts.Load() < c.SettleCuts && ctx.Err() == nil {
		if time.Since(sg.t0) > c.OpenTimeout {
			fmt.Fprintf(sg.prog, "siege: only %d of %d slow connections cut after %v; measuring anyway\n", ss.cuts.Load(), c.SettleCuts, c.OpenTimeout)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// measure runs the GET and PUT load at once and records the server's
// state at its end.
func (sg *siege) measure(ctx context.Context) error {
	c, rep := sg.c, sg.rep
	sg.setPhase("measure", true)
	var lwg sync.WaitGroup
	var getErr, putErr error
	lc := load.Config{Target: c.Target, Keys: c.Keys, Prefix: "siege/load", Duration: c.Duration, ProgressInterval: time.Second}
	if c.GetClients > 0 {
		if err := load.Preload(ctx, lc); err != nil {
			return err
		}
		g := lc
		g.Clients, g.PutPercent, g.NoPreload, g.Progress = c.GetClients, 0, true, sg.getLine
		lwg.Add(1)
		go func() { defer lwg.Done(); rep.get, getErr = load.Run(ctx, g) }()
	}
	if c.PutClients > 0 {
		p := lc
		p.Clients, p.PutPercent, p.Progress = c.PutClients, 100, sg.putLine
		lwg.Add(1)
		go func() { defer lwg.Done(); rep.put, putErr = load.Run(ctx, p) }()
	}
	lwg.Wait()
	sg.mu.Lock()
	sg.measuring = false
	rep.end = sg.sp.take(ctx, time.Since(sg.t0))
	rep.top = peak(rep.samples)
	sg.mu.Unlock()
	return errors.Join(getErr, putErr)
}

// wake stops the slow clients, writes every watched key once and waits
// (up to c.WakeTimeout) for the watchers to answer.
func (sg *siege) wake(ctx context.Context) error {
	c, rep, ws := sg.c, sg.rep, sg.ws
	sg.setPhase("wake", false)
	sg.stopSlow()
	sg.slowWG.Wait()
	rep.watchWaiting = ws.waiting.Load()
	if c.Watchers == 0 {
		return nil
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for k := 0; k < min(c.WatchKeys, c.Watchers); k++ {
		u := c.Target + "/v2/keys" + watchKey(k, c.WatchKeys)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader("value=wake"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := cl.Do(req)
		if err != nil {
			return fmt.Errorf("wake write: %w", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("wake write %s: HTTP %d", u, resp.StatusCode)
		}
		rep.wakeWrites++
	}
	deadline := time.Now().Add(c.WakeTimeout)
	for ws.answered.Load()+ws.wrong.Load() < int64(c.Watchers) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func (r *report) fill(ss *slowStats, ws *watchStats) {
	r.slowConns, r.slowCuts, r.slowAnswered, r.slowOpen = ss.conns.Load(), ss.cuts.Load(), ss.answered.Load(), ss.open.Load()
	ss.mu.Lock()
	r.slowHeld = map[string]heldStat{}
	for m, h := range ss.held {
		r.slowHeld[m] = summarizeHeld(h)
	}
	r.slowStatus = ss.status
	ss.mu.Unlock()
	r.watchAnswered, r.watchBad, r.watchErrs = ws.answered.Load(), ws.wrong.Load(), ws.errs.Load()
	ws.mu.Lock()
	r.watchRefused, r.watchFirstErr = ws.refused, ws.firstErr
	ws.mu.Unlock()
}

// tableHeader and row: the markdown table of docs/benchmarks.md.
const tableHeader = "| scenario | GET req/s | GET p50 | GET p99 | GET p99.9 | PUT req/s | PUT p50 | PUT p99 | PUT p99.9 | RssAnon | VmRSS | fds | goroutines |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"

func (r *report) row() string {
	cells := []string{r.cfg.Label}
	for _, res := range []*load.Result{r.get, r.put} {
		if res == nil {
			cells = append(cells, "-", "-", "-", "-")
			continue
		}
		cells = append(cells, fmt.Sprintf("%.0f", res.Throughput), loadclient.Ms(res.P50), loadclient.Ms(res.P99), loadclient.Ms(res.P999))
	}
	cells = append(cells, kib(r.top.RssAnonKiB), kib(r.top.VmRSSKiB), num(r.top.FDs), num(r.top.Goroutines))
	return "| " + strings.Join(cells, " | ") + " |\n"
}

func (r *report) write(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "scenario    %s\n", c.Label)
	fmt.Fprintf(w, "target      %s (pid %d)\n", c.Target, c.PID)
	fmt.Fprintf(w, "slow        %d clients, mode %s, %d B every %v: %d connections, %d cut by the server (%d with a response %s), %d still open at the end\n",
		c.Slow, c.SlowMode, c.SlowChunk, c.SlowInterval, r.slowConns, r.slowCuts, r.slowAnswered, fmtStatus(r.slowStatus), r.slowOpen)
	for _, m := range slowModes {
		if h, ok := r.slowHeld[m]; ok {
			fmt.Fprintf(w, "            %-6s %d cut, held min %v median %v max %v\n", m, h.N, h.Min.Round(10*time.Millisecond), h.Median.Round(10*time.Millisecond), h.Max.Round(10*time.Millisecond))
		}
	}
	fmt.Fprintf(w, "watchers    %d over %s", c.Watchers, c.WatchProto)
	if c.WatchProto == "h2c" {
		fmt.Fprintf(w, " (%d connections)", c.WatchConns)
	}
	fmt.Fprintf(w, " on %d keys: %d registered at wake, %d wake writes, %d answered with their event, %d wrong, %d transport errors",
		min(c.WatchKeys, max(c.Watchers, 1)), r.watchWaiting, r.wakeWrites, r.watchAnswered, r.watchBad, r.watchErrs)
	if len(r.watchRefused) > 0 {
		fmt.Fprintf(w, ", refused %v", r.watchRefused)
	}
	if r.watchFirstErr != "" {
		fmt.Fprintf(w, " (first: %s)", r.watchFirstErr)
	}
	fmt.Fprintln(w)
	for _, x := range []struct {
		name string
		res  *load.Result
	}{{"GET", r.get}, {"PUT", r.put}} {
		if x.res == nil {
			continue
		}
		fmt.Fprintf(w, "%s         %d clients: %.0f req/s, %d ok, %d non-2xx, %d errors; ms p50 %s p99 %s p99.9 %s max %s\n",
			x.name, x.res.Clients, x.res.Throughput, x.res.OK, x.res.Non2xx, x.res.Errors,
			loadclient.Ms(x.res.P50), loadclient.Ms(x.res.P99), loadclient.Ms(x.res.P999), loadclient.Ms(x.res.Max))
	}
	src := r.goroutineSource
	if src == "" {
		src = "n/a"
	}
	fmt.Fprintf(w, "server      before: rssanon %s rss %s fds %s goroutines %s\n", kib(r.before.RssAnonKiB), kib(r.before.VmRSSKiB), num(r.before.FDs), num(r.before.Goroutines))
	fmt.Fprintf(w, "            peak:   rssanon %s rss %s fds %s goroutines %s (threads %s)\n", kib(r.top.RssAnonKiB), kib(r.top.VmRSSKiB), num(r.top.FDs), num(r.top.Goroutines), num(r.top.Threads))
	fmt.Fprintf(w, "            end:    rssanon %s rss %s fds %s goroutines %s (goroutines from %s)\n", kib(r.end.RssAnonKiB), kib(r.end.VmRSSKiB), num(r.end.FDs), num(r.end.Goroutines), src)
	fmt.Fprint(w, "\n"+tableHeader+r.row())
}

func fmtStatus(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// heldStat summarises how long the server let slow connections live.
type heldStat struct {
	N                int
	Min, Median, Max time.Duration
}

func summarizeHeld(h []time.Duration) heldStat {
	if len(h) == 0 {
		return heldStat{}
	}
	h = slices.Clone(h)
	slices.Sort(h)
	return heldStat{N: len(h), Min: h[0], Median: h[len(h)/2], Max: h[len(h)-1]}
}
