package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/internal/loadclient"
)

// Operations measured by bench.
const (
	opPut = iota
	opGet
	opWatch
	numOps
)

var opNames = [numOps]string{"put", "get", "watch"}

// benchMaxDuration caps a run limited only by --requests (bench/load caps
// its runs the same).
const benchMaxDuration = 10 * time.Minute

// opWindow is what one operation did in one interval. For watch, requests
// and ok count events received, errors count broken watch streams, and the
// histogram holds notification latencies.
type opWindow struct {
	requests, ok, errors int64
	hist                 loadclient.Histogram
}

func (w *opWindow) merge(o *opWindow) {
	w.requests += o.requests
	w.ok += o.ok
	w.errors += o.errors
	w.hist.Merge(&o.hist)
}

func (w *opWindow) reset() {
	if w.requests == 0 && w.errors == 0 && w.hist.Count() == 0 {
		return
	}
	*w = opWindow{}
}

// recorder collects one goroutine's measurements; the collector drains it
// every interval.
type recorder struct {
	mu       sync.Mutex
	w        [numOps]opWindow
	firstErr string
}

func (r *recorder) record(op int, ok bool, lat time.Duration, err string) {
	r.mu.Lock()
	w := &r.w[op]
	w.requests++
	if ok {
		w.ok++
		w.hist.Record(lat)
	} else {
		w.errors++
		if r.firstErr == "" {
			r.firstErr = err
		}
	}
	r.mu.Unlock()
}

// drainInto adds the recorder's windows to dst and empties them.
func (r *recorder) drainInto(dst *[numOps]opWindow, firstErr *string) {
	r.mu.Lock()
	for op := range dst {
		dst[op].merge(&r.w[op])
		r.w[op].reset()
	}
	if *firstErr == "" {
		*firstErr = r.firstErr
	}
	r.mu.Unlock()
}

// secondRow is one interval of one operation (a --csv row).
type secondRow struct {
	elapsed  time.Duration // end of the interval, from the start of the run
	interval time.Duration
	op       int
	w        *opWindow
}

// benchResult is a finished run.
type benchResult struct {
	cfg      *benchConfig
	elapsed  time.Duration
	total    [numOps]opWindow
	rows     []secondRow
	firstErr string
}

// failed reports whether any request or watch stream failed.
func (r *benchResult) failed() bool {
	for op := range r.total {
		if r.total[op].errors > 0 {
			return true
		}
	}
	return false
}

// ops lists the operations of the run, in table order.
func (r *benchResult) ops() []int {
	var ops []int
	if r.cfg.putPercent > 0 {
		ops = append(ops, opPut)
	}
	if r.cfg.putPercent < 100 {
		ops = append(ops, opGet)
	}
	if r.cfg.watchers > 0 {
		ops = append(ops, opWatch)
	}
	return ops
}

// connectError means an endpoint could not be reached before the run.
type connectError struct {
	endpoint string
	err      error
}

func (e *connectError) Error() string { return fmt.Sprintf("%s: %v", e.endpoint, e.err) }

// progressPrinter is told the state of the run every interval.
type progressPrinter interface {
	preload(keys int)
	tick(elapsed time.Duration, rows []secondRow)
	done()
}

// benchClient is one connection's worth of load.
type benchClient struct {
	conn *loadclient.Conn
	rng  *rand.Rand
	rec  recorder
}

func runBench(ctx context.Context, cfg *benchConfig, prog progressPrinter) (*benchResult, error) {
	clients, err := dialBench(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, cl := range clients {
			cl.conn.Close()
		}
	}()
	br := &benchRun{cfg: cfg, keyPath: "/v2/keys" + cfg.prefix + "/k", body: "value=" + strings.Repeat("x", cfg.valueSize)}
	if cfg.quorum {
		br.getSuffix = "?quorum=true"
	}
	if cfg.putPercent < 100 && !cfg.noPreload {
		if prog != nil {
			prog.preload(cfg.keys)
		}
		if err := benchPreload(ctx, clients, br.keyPath, br.body, cfg.keys); err != nil {
			return nil, err
		}
	}
	var watchWG sync.WaitGroup
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	if cfg.watchers > 0 {
		if br.acks, err = startWatchers(ctx, wctx, cfg, clients[0].conn, &watchWG); err != nil {
			return nil, err
		}
	}
	br.start = time.Now()
	limit := cfg.duration
	if limit == 0 {
		limit = benchMaxDuration
	}
	br.deadline = br.start.Add(limit)
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); br.drive(ctx, cl) }()
	}
	res := &benchResult{cfg: cfg}
	col := newCollector(res, clients, br.acks, br.start)
	col.untilDone(&wg, prog)
	if br.acks != nil {
		// Give the watchers a moment for the last events.
		grace := time.Now().Add(2 * time.Second)
		for ctx.Err() == nil && time.Now().Before(grace) && br.acks.pending() {
			time.Sleep(10 * time.Millisecond)
		}
		stopWatchers()
		watchWG.Wait()
	}
	end := time.Now()
	col.collect(end)
	res.elapsed = end.Sub(br.start)
	if prog != nil {
		prog.done()
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintln(stderr, "bench: interrupted")
	}
	return res, nil
}

// dialBench makes the clients, dealt over the endpoints in turn, and
// checks that every endpoint answers GET /version before the run starts.
func dialBench(ctx context.Context, cfg *benchConfig) ([]*benchClient, error) {
	seed := cfg.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	clients := make([]*benchClient, cfg.clients)
	for i := range clients {
		conn, err := loadclient.NewConn(cfg.endpoints[i%len(cfg.endpoints)], cfg.timeout, cfg.tls, cfg.user)
		if err != nil {
			return nil, err
		}
		clients[i] = &benchClient{conn: conn, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	for i, ep := range cfg.endpoints {
		if i >= len(clients) {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		code, _, err := clients[i].conn.Do(pctx, "GET", "/version", "")
		cancel()
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /version: %s", http.StatusText(code))
		}
		if err != nil {
			for _, cl := range clients {
				cl.conn.Close()
			}
			return nil, &connectError{endpoint: ep, err: err}
		}
	}
	return clients, nil
}

// startWatchers starts cfg.watchers watchers, dealt over the endpoints,
// from the index after the last write so far (read over conn): no event
// of the run can be missed by a watcher that connects late.
func startWatchers(ctx, wctx context.Context, cfg *benchConfig, conn *loadclient.Conn, wg *sync.WaitGroup) (*ackBook, error) {
	code, idx, err := conn.Do(ctx, "GET", "/v2/keys/", "")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("reading the etcd index before watching: status %d, %v", code, err)
	}
	acks := &ackBook{watchers: cfg.watchers, m: map[uint64]*ackEntry{}}
	for i := 0; i < cfg.watchers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchLoop(wctx, cfg, cfg.endpoints[i%len(cfg.endpoints)], idx+1, acks)
		}()
	}
	return acks, nil
}

// benchRun is what the clients of one run share.
type benchRun struct {
	cfg             *benchConfig
	keyPath, body   string
	getSuffix       string
	acks            *ackBook // nil without watchers
	start, deadline time.Time
	issued          atomic.Int64 // tickets: requests started
}

// drive sends cl's requests until the deadline, the request budget or ctx
// ends the run.
func (br *benchRun) drive(ctx context.Context, cl *benchClient) {
	for ctx.Err() == nil && time.Now().Before(br.deadline) {
		if !br.turn(ctx) {
			return
		}
		br.request(ctx, cl)
	}
}

// turn takes a ticket and, with --rate, waits until its time; false when
// the run is over first.
func (br *benchRun) turn(ctx context.Context) bool {
	cfg := br.cfg
	ticket := br.issued.Add(1)
	if cfg.requests > 0 && ticket > cfg.requests {
		return false
	}
	if cfg.rate <= 0 {
		return true
	}
	at := br.start.Add(time.Duration(float64(ticket-1) / cfg.rate * float64(time.Second)))
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	if at.After(br.deadline) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// request sends one PUT or GET over cl and records it (not if ctx ended
// it).
func (br *benchRun) request(ctx context.Context, cl *benchClient) {
	cfg := br.cfg
	op := opGet
	if cfg.putPercent > 0 && cl.rng.IntN(100) < cfg.putPercent {
		op = opPut
	}
	path := br.keyPath + strconv.Itoa(cl.rng.IntN(cfg.keys))
	t0 := time.Now()
	var code int
	var idx uint64
	var err error
	if op == opPut {
		code, idx, err = cl.conn.Do(ctx, "PUT", path, br.body)
	} else {
		code, _, err = cl.conn.Do(ctx, "GET", path+br.getSuffix, "")
	}
	t1 := time.Now()
	if ctx.Err() != nil {
		return // interrupted: not counted
	}
	switch {
	case err != nil:
		cl.rec.record(op, false, 0, err.Error())
	case code < 200 || code > 299:
		cl.rec.record(op, false, 0, fmt.Sprintf("%s %s: HTTP status %d", map[int]string{opPut: "PUT", opGet: "GET"}[op], path, code))
	default:
		cl.rec.record(op, true, t1.Sub(t0), "")
		if br.acks != nil && op == opPut {
			br.acks.acked(idx, t1)
		}
	}
}

// collector drains the recorders into per-second rows and the totals.
type collector struct {
	res         *benchResult
	recs        []*recorder
	start, last time.Time
}

func newCollector(res *benchResult, clients []*benchClient, acks *ackBook, start time.Time) *collector {
	recs := make([]*recorder, 0, len(clients)+1)
	for _, cl := range clients {
		recs = append(recs, &cl.rec)
	}
	if acks != nil {
		recs = append(recs, &acks.rec)
	}
	return &collector{res: res, recs: recs, start: start, last: start}
}

// collect adds the interval up to now as one row per operation.
func (c *collector) collect(now time.Time) {
	res := c.res
	var sec [numOps]opWindow
	for _, r := range c.recs {
		r.drainInto(&sec, &res.firstErr)
	}
	for _, op := range res.ops() {
		w := new(opWindow)
		*w = sec[op]
		res.rows = append(res.rows, secondRow{elapsed: now.Sub(c.start), interval: now.Sub(c.last), op: op, w: w})
		res.total[op].merge(&sec[op])
	}
	c.last = now
}

// untilDone collects every second, showing each second on prog, until
// the writers of wg are done.
func (c *collector) untilDone(wg *sync.WaitGroup, prog progressPrinter) {
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	printed := 0
	for {
		select {
		case <-writersDone:
			return
		case now := <-tick.C:
			c.collect(now)
			if prog != nil {
				prog.tick(now.Sub(c.start), c.res.rows[printed:])
			}
			printed = len(c.res.rows)
		}
	}
}

// benchPreload writes every key once.
func benchPreload(ctx context.Context, clients []*benchClient, keyPath, body string, keys int) error {
	var next atomic.Int64
	errc := make(chan error, len(clients))
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= keys {
					return
				}
				code, _, err := cl.conn.Do(ctx, "PUT", keyPath+strconv.Itoa(k), body)
				if err == nil && (code < 200 || code > 299) {
					err = fmt.Errorf("HTTP status %d", code)
				}
				if err != nil {
					errc <- fmt.Errorf("preload: PUT %s%d: %w", keyPath, k, err)
					next.Store(int64(keys))
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("preload interrupted: %w", err)
	}
	return nil
}

// ackBook matches the watchers' events with the PUT responses of the same
// index: notification latency is receipt minus acknowledgement, or 0 when
// a watcher got the event before the writer got its response.
type ackBook struct {
	mu       sync.Mutex
	watchers int
	m        map[uint64]*ackEntry
	waiting  int // acknowledged writes not yet seen by every watcher
	rec      recorder
}

type ackEntry struct {
	ack   time.Time
	early []time.Time // receipts before the ack
	seen  int
}

// entry returns the entry of index idx, adding it if needed; b.mu held.
func (b *ackBook) entry(idx uint64) *ackEntry {
	e := b.m[idx]
	if e == nil {
		e = &ackEntry{}
		b.m[idx] = e
	}
	return e
}

func (b *ackBook) acked(idx uint64, at time.Time) {
	if idx == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(idx)
	e.ack = at
	for _, r := range e.early {
		b.rec.record(opWatch, true, max(0, r.Sub(at)), "")
	}
	e.early = nil
	if e.seen >= b.watchers {
		delete(b.m, idx)
	} else {
		b.waiting++
	}
}

func (b *ackBook) received(idx uint64, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(idx)
	e.seen++
	if e.ack.IsZero() {
		e.early = append(e.early, at) // recorded when the ack arrives
		return
	}
	b.rec.record(opWatch, true, at.Sub(e.ack), "")
	if e.seen >= b.watchers {
		delete(b.m, idx)
		b.waiting--
	}
}

func (b *ackBook) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting > 0
}

func (b *ackBook) failed(err string) {
	b.rec.record(opWatch, false, 0, "watch: "+err)
}

// watchEvent is the part of a v2 watch event bench reads.
type watchEvent struct {
	Action string `json:"action"`
	Node   struct {
		ModifiedIndex uint64 `json:"modifiedIndex"`
	} `json:"node"`
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Index     uint64 `json:"index"`
}

// watchLoop streams events of cfg.prefix from waitIndex until ctx is done,
// re-watching after the last event seen when a stream breaks.
func watchLoop(ctx context.Context, cfg *benchConfig, ep string, waitIndex uint64, acks *ackBook) {
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg.tls, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	authz := ""
	if cfg.user != "" {
		authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.user))
	}
	for ctx.Err() == nil {
		url := fmt.Sprintf("%s/v2/keys%s?wait=true&recursive=true&stream=true&waitIndex=%d", strings.TrimRight(ep, "/"), cfg.prefix, waitIndex)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			acks.failed(err.Error())
			return
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				acks.failed(err.Error())
				sleepCtx(ctx, 100*time.Millisecond)
			}
			continue
		}
		dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
		for {
			var ev watchEvent
			if err = dec.Decode(&ev); err != nil {
				break
			}
			at := time.Now()
			if ev.ErrorCode != 0 {
				// e.g. 401 "event index cleared": the watcher fell behind
				// the server's event history; go on from now.
				err = fmt.Errorf("%d: %s", ev.ErrorCode, ev.Message)
				waitIndex = ev.Index + 1
				break
			}
			acks.received(ev.Node.ModifiedIndex, at)
			waitIndex = ev.Node.ModifiedIndex + 1
		}
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		acks.failed(err.Error())
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
