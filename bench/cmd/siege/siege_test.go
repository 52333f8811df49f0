package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/bench/internal/procs"
	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

func TestSlowStream(t *testing.T) {
	// head: the prefix, then header lines forever, never a blank line.
	s := newSlowStream(modeHead)
	if s.first != "" {
		t.Fatalf("head mode sends %q at once", s.first)
	}
	var all []byte
	for range 200 {
		all = append(all, s.next(3)...)
	}
	if len(all) != 600 || !bytes.HasPrefix(all, []byte(slowHeadPrefix+slowHeadFill)) {
		t.Fatalf("head stream %q", all)
	}
	if bytes.Contains(all, []byte("\r\n\r\n")) {
		t.Fatal("head stream ends the head")
	}
	// body: a whole head with Content-Length, then value= and filler.
	s = newSlowStream(modeBody)
	if !strings.HasSuffix(s.first, "Content-Length: 8192\r\n\r\n") || !strings.HasPrefix(s.first, "PUT /v2/keys/siege/slowbody HTTP/1.1\r\n") {
		t.Fatalf("body head %q", s.first)
	}
	if got := string(s.next(2)) + string(s.next(3)) + string(s.next(2)); got != "value=v" {
		t.Fatalf("body bytes %q", got)
	}
	s = newSlowStream(modeSilent)
	if s.first != "" || s.next(5) != nil {
		t.Fatal("silent mode sends something")
	}
}

func TestHelpers(t *testing.T) {
	if got := []string{modeFor("mix", 0), modeFor("mix", 1), modeFor("mix", 2), modeFor("mix", 3), modeFor("body", 1)}; strings.Join(got, ",") != "head,body,silent,head,body" {
		t.Fatalf("modeFor: %v", got)
	}
	for in, want := range map[string]string{
		"HTTP/1.1 408 Request Timeout\r\n": "HTTP/1.1 408",
		"HTTP/1.1 400":                     "HTTP/1.1 400",
		"garbage":                          "",
		"":                                 "",
	} {
		if got := statusOf([]byte(in)); got != want {
			t.Errorf("statusOf(%q) = %q, want %q", in, got, want)
		}
	}
	if watchKey(0, 3) != "/siege/w0" || watchKey(7, 3) != "/siege/w1" || watchKey(5, 1) != "/siege/w0" {
		t.Fatal("watchKey")
	}
	if err := checkEvent([]byte(`{"action":"set","node":{"key":"/siege/w1","value":"wake"}}`), "/siege/w1"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"action":"delete","node":{"key":"/siege/w1"}}`, `{"action":"set","node":{"key":"/siege/w2"}}`, `nope`} {
		if checkEvent([]byte(bad), "/siege/w1") == nil {
			t.Errorf("checkEvent accepted %s", bad)
		}
	}
	h := summarizeHeld([]time.Duration{3, 1, 2, 5})
	if h != (heldStat{N: 4, Min: 1, Median: 3, Max: 5}) {
		t.Fatalf("summarizeHeld: %+v", h)
	}
}

func TestParse(t *testing.T) {
	status := "Name:\tstrata\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nRssAnon:\t   40000 kB\nRssFile:\t 11234 kB\nThreads:\t12\n"
	s := sample{RssAnonKiB: -1, VmRSSKiB: -1, Threads: -1}
	parseProcStatus([]byte(status), &s)
	if s.VmRSSKiB != 51234 || s.RssAnonKiB != 40000 || s.Threads != 12 {
		t.Fatalf("parseProcStatus: %+v", s)
	}
	if n, ok := parseGoroutines([]byte("goroutine profile: total 10443\n5 @ 0x1\n")); !ok || n != 10443 {
		t.Fatalf("pprof: %d %v", n, ok)
	}
	if n, ok := parseGoroutines([]byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 321\n")); !ok || n != 321 {
		t.Fatalf("metrics: %d %v", n, ok)
	}
	if _, ok := parseGoroutines([]byte("404 page not found\n")); ok {
		t.Fatal("parsed a 404")
	}
	p := peak([]sample{{RssAnonKiB: 5, VmRSSKiB: 9, FDs: 3, Threads: 1, Goroutines: 7}, {RssAnonKiB: 8, VmRSSKiB: 2, FDs: -1, Threads: 4, Goroutines: 6}})
	if p != (sample{RssAnonKiB: 8, VmRSSKiB: 9, FDs: 3, Threads: 4, Goroutines: 7}) {
		t.Fatalf("peak: %+v", p)
	}
	if kib(-1) != "-" || kib(2048) != "2.0 MiB" || num(-1) != "-" || num(12) != "12" {
		t.Fatal("kib/num")
	}
}

func TestValidateAndRow(t *testing.T) {
	good := config{Target: "http://127.0.0.1:2379/", SlowMode: "mix", WatchProto: "h1", SlowInterval: time.Second, SlowChunk: 2,
		WatchKeys: 1, WatchConns: 1, Keys: 10, Duration: time.Second, GetClients: 1, Slow: 3, Watchers: 4}
	c := good
	if err := c.validate(); err != nil || c.Target != "http://127.0.0.1:2379" || c.Label != "3 slow (mix) + 4 watchers (h1)" {
		t.Fatalf("validate: %v %+v", err, c)
	}
	if c.fdsNeeded() != 3+1+4+64 {
		t.Fatalf("fdsNeeded %d", c.fdsNeeded())
	}
	for name, mut := range map[string]func(*config){
		"https":      func(c *config) { c.Target = "https://x:1" },
		"mode":       func(c *config) { c.SlowMode = "fast" },
		"proto":      func(c *config) { c.WatchProto = "h3" },
		"negative":   func(c *config) { c.Slow = -1 },
		"no clients": func(c *config) { c.GetClients = 0 },
		"duration":   func(c *config) { c.Duration = 0 },
		"keys":       func(c *config) { c.WatchKeys = 0 },
	} {
		c := good
		mut(&c)
		if c.validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r := &report{cfg: config{Label: "x"}, get: &load.Result{Summary: loadclient.Summary{Throughput: 1234.4, P50: time.Millisecond, P99: 2 * time.Millisecond, P999: 3 * time.Millisecond}},
		top: sample{RssAnonKiB: 1024, VmRSSKiB: 2048, FDs: 10, Goroutines: 20}}
	if got, want := r.row(), "| x | 1234 | 1.000 | 2.000 | 3.000 | - | - | - | - | 1.0 MiB | 2.0 MiB | 10 | 20 |\n"; got != want {
		t.Fatalf("row:\n%s\nwant\n%s", got, want)
	}
}

// TestSiegeStrata besieges a real strata process on loopback with 50 slow
// clients (all three modes) and 200 HTTP/1.1 watchers, and checks what
// happened, not how fast: every mode's connections were cut by the server
// without an answer, normal requests all succeeded, and each watcher got
// exactly its key's wake event.
func TestSiegeStrata(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs strata")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := procs.StrataBinary(ctx, "", "../../..", dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := procs.NewStrata(bin, dir, "strata")
	if err != nil {
		t.Fatal(err)
	}
	s.Argv = append(s.Argv, "--read-header-timeout", "300ms", "--enable-pprof", "--log-level", "warn")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(5 * time.Second)
	if err := s.Ready(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	client := s.URL
	c := config{Target: client, PID: s.Proc.Pid(), Slow: 50, SlowMode: "mix", SlowInterval: 100 * time.Millisecond, SlowChunk: 2,
		Watchers: 200, WatchProto: "h1", WatchConns: 1, WatchKeys: 10, GetClients: 1, PutClients: 1, Keys: 20,
		Duration: 500 * time.Millisecond, SettleCuts: 100, OpenTimeout: time.Minute, WakeTimeout: time.Minute}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	var prog bytes.Buffer
	rep, err := run(ctx, c, &prog)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, prog.String())
	}
	var out bytes.Buffer
	rep.write(&out)
	t.Logf("\n%s", out.String())
	for _, m := range slowModes {
		if rep.slowHeld[m].N == 0 {
			t.Errorf("no %s-mode connection was cut", m)
		}
	}
	if rep.slowCuts < 100 || rep.slowAnswered != 0 {
		t.Errorf("slow: %d cut, %d answered; want >= 100 cut (SettleCuts), none answered", rep.slowCuts, rep.slowAnswered)
	}
	if rep.watchWaiting != 200 || rep.wakeWrites != 10 || rep.watchAnswered != 200 || rep.watchBad != 0 || rep.watchErrs != 0 || len(rep.watchRefused) != 0 {
		t.Errorf("watchers: %d waiting at wake, %d writes, %d answered, %d wrong, %d errors, refused %v; want 200, 10, 200, 0, 0, none",
			rep.watchWaiting, rep.wakeWrites, rep.watchAnswered, rep.watchBad, rep.watchErrs, rep.watchRefused)
	}
	for name, res := range map[string]*load.Result{"GET": rep.get, "PUT": rep.put} {
		if res == nil || res.OK == 0 || res.Errors != 0 || res.Non2xx != 0 {
			t.Errorf("%s load: %+v", name, res)
		}
	}
	if rep.top.FDs <= 200 || rep.top.Goroutines <= 200 || rep.goroutineSource != "/debug/pprof/goroutine?debug=1" {
		t.Errorf("samples: peak %+v from %q; want > 200 fds and goroutines (one per watcher) from pprof", rep.top, rep.goroutineSource)
	}
	if !rep.ok() {
		t.Error("report not ok")
	}
	if !strings.Contains(out.String(), "| 50 slow (mix) + 200 watchers (h1) |") {
		t.Errorf("no table row in\n%s", out.String())
	}
}
