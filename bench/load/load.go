// Package load is a closed-loop HTTP load generator for the etcd v2 keys API
// (PUT/GET /v2/keys/<prefix>/k<N>). It works against etcd, Strata or any
// server speaking the same protocol.
//
// Each client is one goroutine with its own http.Transport, so every client
// holds exactly one keep-alive connection that is reused for all of its
// requests (response bodies are always fully read and closed). Latencies are
// recorded in fixed-size histograms, so memory does not grow with run length.
package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/internal/loadclient"
)

// MaxDuration bounds every run: a run limited only by request count still
// stops after this long.
const MaxDuration = 10 * time.Minute

// Config describes one load run. The zero value is not valid: Target and at
// least one of Duration or Requests must be set; other fields have defaults.
type Config struct {
	// Target is the server base URL, e.g. "http://127.0.0.1:2379".
	Target string
	// Clients is the number of concurrent clients (default 1).
	Clients int
	// PutPercent is the percentage (0..100) of operations that are PUTs; the
	// rest are GETs. 100 = write-only, 0 = read-only.
	PutPercent int
	// ValueSize is the PUT value size in bytes (default 64).
	ValueSize int
	// Keys is the key space size: keys are <Prefix>/k0 .. k<Keys-1>, chosen
	// uniformly at random (default 1000).
	Keys int
	// Prefix is the directory under /v2/keys used for keys (default "bench").
	Prefix string
	// Duration is the measured run length. If Requests is also set, the run
	// stops at whichever limit is reached first.
	Duration time.Duration
	// Requests is the exact number of measured requests to issue (0 = no
	// count limit). Without Duration the run is still capped at MaxDuration.
	Requests int64
	// Warmup is run before measuring, with the same clients and connections;
	// its requests are not counted in the Result.
	Warmup time.Duration
	// Timeout is the per-request timeout (default 10s).
	Timeout time.Duration
	// Quorum adds ?quorum=true to GETs (linearizable reads in etcd v2).
	Quorum bool
	// NoPreload skips writing every key once before a run that contains GETs.
	NoPreload bool
	// Progress, if non-nil, receives a status line every ProgressInterval.
	Progress io.Writer
	// ProgressInterval defaults to one second.
	ProgressInterval time.Duration
	// Seed makes the key/op sequence reproducible (0 = random).
	Seed uint64
	// NetHTTP uses net/http's client instead of the lighter raw HTTP/1.1
	// client (loadclient.Conn); both keep one connection per client.
	NetHTTP bool
	// User, "name:password", sends HTTP basic auth with every request
	// (etcd's v2 auth); empty sends none.
	User string
	// TLS configures https targets (CAs, client certificate) for both
	// clients; nil uses the system roots. Each client connection does its
	// own handshake once, then keeps the connection.
	TLS *tls.Config
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Target == "" {
		return cfg, errors.New("load: Target is required")
	}
	u, err := url.Parse(cfg.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("load: invalid Target %q: want http(s)://host:port", cfg.Target)
	}
	cfg.Target = strings.TrimRight(cfg.Target, "/")
	if u.Scheme == "https" && cfg.TLS == nil {
		cfg.TLS = &tls.Config{}
	}
	if cfg.User != "" && !strings.Contains(cfg.User, ":") {
		return cfg, errors.New("load: User must be name:password")
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 1
	}
	if cfg.PutPercent < 0 || cfg.PutPercent > 100 {
		return cfg, fmt.Errorf("load: PutPercent %d out of range 0..100", cfg.PutPercent)
	}
	if cfg.ValueSize <= 0 {
		cfg.ValueSize = 64
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 1000
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bench"
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Duration < 0 || cfg.Requests < 0 || cfg.Warmup < 0 {
		return cfg, errors.New("load: Duration, Requests and Warmup must not be negative")
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		return cfg, errors.New("load: set Duration or Requests")
	}
	if cfg.Duration == 0 || cfg.Duration > MaxDuration {
		cfg.Duration = MaxDuration
	}
	if cfg.Warmup > MaxDuration {
		cfg.Warmup = MaxDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	return cfg, nil
}

// Result summarises the measured phase of a run (warmup and preload
// excluded); its JSON is the Summary's fields.
type Result struct {
	loadclient.Summary
	// Hist holds the latencies of successful requests.
	Hist *loadclient.Histogram `json:"-"`
}

// Op is a single request kind.
type Op int

// Operations issued by the load generator.
const (
	OpGet Op = iota
	OpPut
)

// client is one connection's worth of load.
type client struct {
	cfg   *Config
	raw   *loadclient.Conn // nil when Config.NetHTTP
	path  string           // "/v2/keys/<prefix>/k"
	http  *http.Client
	tr    *http.Transport
	rng   *rand.Rand
	body  string // pre-encoded form body
	hist  loadclient.Histogram
	stats counters
}

type counters struct {
	requests, ok, non2xx, errs int64
	status                     map[int]int64
	firstErr                   string
}

func newClient(cfg *Config, id int) *client {
	tr := &http.Transport{
		Proxy: nil, // never route loopback benchmarks through a proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1, // one client == one reused connection
		MaxConnsPerHost:     1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSClientConfig:     cfg.TLS,
	}
	var raw *loadclient.Conn
	if !cfg.NetHTTP {
		raw, _ = loadclient.NewConn(cfg.Target, cfg.Timeout, cfg.TLS, cfg.User) // validated in withDefaults
	}
	return &client{
		cfg:  cfg,
		raw:  raw,
		path: "/v2/keys/" + cfg.Prefix + "/k",
		http: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		tr:   tr,
		rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(id))),
		body: "value=" + strings.Repeat("x", cfg.ValueSize),
	}
}

// newClients makes cfg.Clients clients; each dials on its first request.
func newClients(cfg *Config) []*client {
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		clients[i] = newClient(cfg, i)
	}
	return clients
}

func closeClients(clients []*client) {
	for _, cl := range clients {
		cl.closeConns()
	}
}

func (c *client) closeConns() {
	c.tr.CloseIdleConnections()
	if c.raw != nil {
		c.raw.Close()
	}
}

func (c *client) keyURL(k int) string {
	return c.cfg.Target + "/v2/keys/" + c.cfg.Prefix + "/k" + strconv.Itoa(k)
}

// do issues one request and returns its status code (0 on transport error).
func (c *client) do(ctx context.Context, op Op, key int) (int, error) {
	if c.raw != nil {
		p := c.path + strconv.Itoa(key)
		if op == OpPut {
			code, _, err := c.raw.Do(ctx, "PUT", p, c.body)
			return code, err
		}
		if c.cfg.Quorum {
			p += "?quorum=true"
		}
		code, _, err := c.raw.Do(ctx, "GET", p, "")
		return code, err
	}
	var req *http.Request
	var err error
	u := c.keyURL(key)
	if op == OpPut {
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(c.body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		if c.cfg.Quorum {
			u += "?quorum=true"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	}
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if name, pw, ok := strings.Cut(c.cfg.User, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain fully so the connection goes back to the idle pool.
	_, err = io.Copy(io.Discard, resp.Body)
	cerr := resp.Body.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}

func (c *client) record(code int, err error, lat time.Duration, live *liveCounters) {
	c.stats.requests++
	switch {
	case err != nil:
		c.stats.errs++
		if c.stats.firstErr == "" {
			c.stats.firstErr = err.Error()
		}
		live.errs.Add(1)
	case code < 200 || code > 299:
		c.stats.non2xx++
		if c.stats.status == nil {
			c.stats.status = map[int]int64{}
		}
		c.stats.status[code]++
		live.non2xx.Add(1)
	default:
		c.stats.ok++
		c.hist.Record(lat)
	}
	live.requests.Add(1)
}

type liveCounters struct {
	requests, non2xx, errs atomic.Int64
}

// phase runs all clients until the deadline, the ticket budget (if >0) is
// used up, or ctx is done.
func phase(ctx context.Context, clients []*client, d time.Duration, budget int64, live *liveCounters) time.Duration {
	var issued atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if budget > 0 && issued.Add(1) > budget {
					return
				}
				op := OpGet
				if c.cfg.PutPercent > 0 && c.rng.IntN(100) < c.cfg.PutPercent {
					op = OpPut
				}
				key := c.rng.IntN(c.cfg.Keys)
				t0 := time.Now()
				code, err := c.do(ctx, op, key)
				lat := time.Since(t0)
				if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
					return // interrupted: don't count cancelled requests
				}
				c.record(code, err, lat, live)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// progress prints a status line every interval until stop is closed.
func progress(w io.Writer, label string, every time.Duration, live *liveCounters, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if w == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	var last int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := live.requests.Load()
			fmt.Fprintf(w, "%s %5.1fs  %9d req  %8.0f req/s  non2xx %d  errors %d\n",
				label, now.Sub(start).Seconds(), n, float64(n-last)/every.Seconds(), live.non2xx.Load(), live.errs.Load())
			last = n
		}
	}
}

// Run executes the configured load and returns the measured result.
//
// Sequence: preload (if the mix contains GETs and NoPreload is false), then
// Warmup, then the measured phase. With Requests > 0 exactly that many
// measured requests are issued unless Duration expires or ctx is cancelled
// first. Requests in flight at the deadline are allowed to finish (bounded by
// Timeout) and are counted. If ctx is cancelled, Run returns the partial
// result together with ctx.Err(). Transport errors and non-2xx responses are
// counted, not returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	clients := newClients(&c)
	defer closeClients(clients)

	if c.PutPercent < 100 && !c.NoPreload {
		if err := preload(ctx, clients); err != nil {
			return nil, err
		}
	}

	run := func(label string, d time.Duration, budget int64) (time.Duration, *liveCounters) {
		live := &liveCounters{}
		stop, done := make(chan struct{}), make(chan struct{})
		go progress(c.Progress, label, c.ProgressInterval, live, stop, done)
		el := phase(ctx, clients, d, budget, live)
		close(stop)
		<-done
		return el, live
	}
	if c.Warmup > 0 {
		run("warmup ", c.Warmup, 0)
		for _, cl := range clients {
			cl.hist.Reset()
			cl.stats = counters{}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load: interrupted during warmup: %w", err)
		}
	}
	elapsed, _ := run("measure", c.Duration, c.Requests)

	res := &Result{Hist: &loadclient.Histogram{}, Summary: loadclient.Summary{
		Target: c.Target, Clients: c.Clients, PutPercent: c.PutPercent,
		ValueSize: c.ValueSize, Keys: c.Keys, Elapsed: elapsed,
	}}
	for _, cl := range clients {
		res.Hist.Merge(&cl.hist)
		res.Requests += cl.stats.requests
		res.OK += cl.stats.ok
		res.Non2xx += cl.stats.non2xx
		res.Errors += cl.stats.errs
		for code, n := range cl.stats.status {
			if res.Status == nil {
				res.Status = map[int]int64{}
			}
			res.Status[code] += n
		}
		if res.FirstError == "" {
			res.FirstError = cl.stats.firstErr
		}
	}
	if elapsed > 0 {
		res.Throughput = float64(res.OK) / elapsed.Seconds()
	}
	h := res.Hist
	res.Mean, res.P50, res.P90, res.P99, res.P999, res.Max =
		h.Mean(), h.Percentile(50), h.Percentile(90), h.Percentile(99), h.Percentile(99.9), h.Max()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("load: interrupted: %w", err)
	}
	return res, nil
}

// Preload writes every key in the configured key space once (PUT), using
// cfg.Clients connections. It fails if any write does not return 2xx.
func Preload(ctx context.Context, cfg Config) error {
	if cfg.Duration == 0 && cfg.Requests == 0 {
		cfg.Requests = 1 // Preload itself is bounded by key count.
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	clients := newClients(&c)
	defer closeClients(clients)
	return preload(ctx, clients)
}

func preload(ctx context.Context, clients []*client) error {
	cfg := clients[0].cfg
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= cfg.Keys {
					return
				}
				code, err := c.do(ctx, OpPut, k)
				if err == nil && (code < 200 || code > 299) {
					err = fmt.Errorf("HTTP status %d", code)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("load: preload key %s/k%d: %w", cfg.Prefix, k, err)
					}
					mu.Unlock()
					next.Store(int64(cfg.Keys)) // stop everyone
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load: preload interrupted: %w", err)
	}
	return nil
}
