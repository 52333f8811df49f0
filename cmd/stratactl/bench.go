package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli"
)

// What etcdctl v2 lacks: `stratactl bench`, a load generator for the v2
// keys API (bench_run.go runs it, bench_report.go prints it).

func newBenchCommand() cli.Command {
	return cli.Command{
		Name:      "bench",
		Usage:     "load test: a put/get/watch mix, throughput and latency",
		ArgsUsage: " ",
		Description: `Runs --clients closed-loop clients, each on one kept-alive HTTP/1.1
   connection to an endpoint of --endpoints (round robin; the cluster is not
   synced), issuing PUT and GET requests on <prefix>/k0..k<keys-1> in the
   proportions of --mix, until --duration has passed or --requests requests
   were issued. Keys read are written once first (unless --no-preload).
   --watchers N adds N streaming watchers on <prefix> that report the events
   received and the notification latency: from the PUT's response to the
   watcher receiving its event. Progress goes to stderr (a bar on a
   terminal, a line a second otherwise, nothing with --quiet); the table
   and a latency histogram to stdout at the end. --csv FILE writes one row
   per second and operation. Exits 4 if any request failed.`,
		Flags: []cli.Flag{
			cli.StringFlag{Name: "mix", Value: "put=50,get=50", Usage: "operation weights, e.g. put=100 or put=20,get=80"},
			cli.IntFlag{Name: "watchers", Usage: "streaming watchers on the prefix (0: none)"},
			cli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent clients, one connection each"},
			cli.IntFlag{Name: "value-size", Value: 64, Usage: "bytes per PUT value"},
			cli.IntFlag{Name: "keys", Value: 1000, Usage: "key space: <prefix>/k0 .. k<keys-1>, chosen uniformly"},
			cli.StringFlag{Name: "prefix", Value: "/bench", Usage: "directory the keys are written under"},
			cli.DurationFlag{Name: "duration", Usage: "length of the run (0: 10s, or until --requests are done)"},
			cli.Int64Flag{Name: "requests", Usage: "exact number of requests to issue (0: no limit)"},
			cli.Float64Flag{Name: "rate", Usage: "total requests per second to aim at (0: as fast as the clients go)"},
			cli.BoolFlag{Name: "quorum, q", Usage: "GET with quorum=true"},
			cli.BoolFlag{Name: "no-preload", Usage: "do not write every key once before a run that reads"},
			cli.StringFlag{Name: "csv", Usage: "write per-second throughput and latency percentiles to `FILE`"},
			cli.StringFlag{Name: "summary-csv", Usage: "append one row of the whole run (bench/load's columns, for bench/cmd/plot) to `FILE`"},
			cli.StringFlag{Name: "label", Usage: "label of the --summary-csv row"},
			cli.BoolFlag{Name: "quiet", Usage: "no progress on stderr"},
			cli.Uint64Flag{Name: "seed", Usage: "seed of the key and operation sequence (0: random)"},
		},
		Action: benchCommand,
	}
}

// benchConfig is one bench run, validated.
type benchConfig struct {
	endpoints  []string
	tls        *tls.Config
	user       string // name:password or ""
	timeout    time.Duration
	putPercent int // the rest are GETs
	watchers   int
	clients    int
	valueSize  int
	keys       int
	prefix     string // "/bench", no trailing slash
	duration   time.Duration
	requests   int64
	rate       float64
	quorum     bool
	noPreload  bool
	seed       uint64
}

// parseMix reads "put=50,get=50" (weights, scaled to percentages).
func parseMix(s string) (putPercent int, err error) {
	var put, get int
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, perr := strconv.Atoi(val)
		if !ok || perr != nil || n < 0 {
			return 0, fmt.Errorf("--mix %q: want op=weight[,op=weight], e.g. put=20,get=80", s)
		}
		if seen[name] {
			return 0, fmt.Errorf("--mix %q: %s given twice", s, name)
		}
		seen[name] = true
		switch name {
		case "put":
			put = n
		case "get":
			get = n
		default:
			return 0, fmt.Errorf("--mix %q: unknown operation %q (put, get; watchers: --watchers)", s, name)
		}
	}
	if put+get == 0 {
		return 0, fmt.Errorf("--mix %q: the weights add up to 0", s)
	}
	if (put*100)%(put+get) != 0 {
		return 0, fmt.Errorf("--mix %q: the weights must make whole percentages", s)
	}
	return put * 100 / (put + get), nil
}

func benchConfigOf(c *cli.Context) (*benchConfig, error) {
	if len(c.Args()) != 0 {
		return nil, errors.New("bench takes no arguments")
	}
	cfg := &benchConfig{
		timeout:   c.GlobalDuration("timeout"),
		watchers:  c.Int("watchers"),
		clients:   c.Int("clients"),
		valueSize: c.Int("value-size"),
		keys:      c.Int("keys"),
		prefix:    "/" + strings.Trim(c.String("prefix"), "/"),
		duration:  c.Duration("duration"),
		requests:  c.Int64("requests"),
		rate:      c.Float64("rate"),
		quorum:    c.Bool("quorum"),
		noPreload: c.Bool("no-preload"),
		seed:      c.Uint64("seed"),
	}
	var err error
	if cfg.putPercent, err = parseMix(c.String("mix")); err != nil {
		return nil, err
	}
	switch {
	case cfg.clients < 1:
		return nil, errors.New("--clients must be at least 1")
	case cfg.watchers < 0:
		return nil, errors.New("--watchers must not be negative")
	case cfg.valueSize < 1:
		return nil, errors.New("--value-size must be at least 1")
	case cfg.keys < 1:
		return nil, errors.New("--keys must be at least 1")
	case cfg.prefix == "/":
		return nil, errors.New("--prefix must name a directory below /")
	case cfg.duration < 0 || cfg.requests < 0 || cfg.rate < 0:
		return nil, errors.New("--duration, --requests and --rate must not be negative")
	case cfg.watchers > 0 && cfg.putPercent == 0:
		return nil, errors.New("--watchers needs puts in --mix")
	}
	if cfg.duration == 0 && cfg.requests == 0 {
		cfg.duration = 10 * time.Second
	}
	if cfg.timeout <= 0 {
		cfg.timeout = 2 * time.Second
	}
	if cfg.endpoints, err = endpoints(c); err != nil {
		return nil, err
	}
	if !endpointsGiven(c) {
		cfg.endpoints = cfg.endpoints[:1] // nothing serves the legacy :4001
	}
	tr, err := newTransport(c)
	if err != nil {
		return nil, err
	}
	cfg.tls = tr.TLSClientConfig
	uFlag := c.GlobalString("username")
	if uFlag == "" {
		uFlag = os.Getenv("ETCDCTL_USERNAME")
	}
	if uFlag != "" {
		name, pw, err := usernamePassword("Password: ", uFlag)
		if err != nil {
			return nil, err
		}
		cfg.user = name + ":" + pw
	}
	return cfg, nil
}

func benchCommand(c *cli.Context) error {
	cfg, err := benchConfigOf(c)
	if err != nil {
		return handleError(c, exitBadArgs, err)
	}
	var csvFile, summaryFile *os.File
	if name := c.String("csv"); name != "" {
		if csvFile, err = os.Create(name); err != nil {
			return handleError(c, exitBadArgs, err)
		}
		defer csvFile.Close()
	}
	if name := c.String("summary-csv"); name != "" {
		if summaryFile, err = os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return handleError(c, exitBadArgs, err)
		}
		defer summaryFile.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var prog progressPrinter
	if !c.Bool("quiet") {
		prog = newProgress(cfg)
	}
	res, err := runBench(ctx, cfg, prog)
	if err != nil {
		var ce *connectError
		if errors.As(err, &ce) {
			return handleError(c, exitBadConnection, err)
		}
		return handleError(c, exitServerError, err)
	}
	res.writeReport(stdout)
	if csvFile != nil {
		if err := res.writeCSV(csvFile); err == nil {
			err = csvFile.Close()
		}
		if err != nil {
			return handleError(c, exitBadArgs, err)
		}
	}
	if summaryFile != nil {
		if err := res.appendSummary(summaryFile, c.String("label")); err != nil {
			return handleError(c, exitBadArgs, err)
		}
	}
	if res.failed() {
		return exit(exitServerError)
	}
	return nil
}
