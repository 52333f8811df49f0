// Command v2load drives load against an etcd v2 compatible keys API
// (etcd --enable-v2, Strata) and reports throughput and latency percentiles.
//
// Examples:
//
//	v2load --target http://127.0.0.1:2379 --workload put --clients 16 --duration 10s
//	v2load --workload get --clients 16 --keys 1000 --duration 10s --json
//	v2load --workload mixed --put-pct 20 --requests 50000 --csv >> runs.csv
//
// Progress is printed to stderr once per second; the result goes to stdout as
// a table (default), CSV (--csv) or JSON (--json). The exit status is 1 if
// any request failed (transport error or non-2xx), 2 on usage errors.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strata-kv/strata/bench/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, o.cfg)
	if res == nil {
		fmt.Fprintf(stderr, "v2load: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "v2load: %v (partial result follows)\n", err)
	}
	switch {
	case o.asCSV:
		err = load.WriteCSV(stdout, []string{o.label}, res)
	case o.asJSON:
		err = res.WriteJSON(stdout)
	default:
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "v2load: %v\n", err)
		return 1
	}
	if res.Errors > 0 || res.Non2xx > 0 {
		return 1
	}
	return 0
}

// options is the parsed command line.
type options struct {
	cfg           load.Config
	asCSV, asJSON bool
	label         string
}

// parseFlags parses args; on an error it has said why on stderr (or
// printed the usage).
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("v2load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	cfg := &o.cfg
	var (
		workload string
		putPct   int
		quiet    bool
	)
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:2379", "server base URL")
	fs.StringVar(&workload, "workload", "put", "put | get | mixed")
	fs.IntVar(&putPct, "put-pct", 50, "percentage of PUTs for --workload mixed")
	fs.IntVar(&cfg.Clients, "clients", 1, "concurrent clients, one keep-alive connection each")
	fs.IntVar(&cfg.ValueSize, "value-size", 64, "value size in bytes")
	fs.IntVar(&cfg.Keys, "keys", 1000, "key space size (keys <prefix>/k0..k<N-1>)")
	fs.StringVar(&cfg.Prefix, "prefix", "bench", "key directory under /v2/keys")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration (max "+load.MaxDuration.String()+")")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after exactly this many measured requests (0 = duration only)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "warmup before measuring (not counted)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&cfg.Quorum, "quorum", false, "GET with ?quorum=true")
	fs.StringVar(&cfg.User, "user", "", "HTTP basic auth as name:password (etcd v2 auth)")
	fs.BoolVar(&cfg.NetHTTP, "net-http", false, "use net/http's client instead of the lighter raw HTTP/1.1 client")
	fs.BoolVar(&cfg.NoPreload, "no-preload", false, "do not write all keys before a run containing GETs")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0 = random)")
	fs.BoolVar(&o.asCSV, "csv", false, "print result as CSV (header + row)")
	fs.BoolVar(&o.asJSON, "json", false, "print result as JSON")
	fs.StringVar(&o.label, "label", "", "label column for --csv")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	var caFile, certFile, keyFile string
	var insecure bool
	fs.StringVar(&caFile, "cacert", "", "CA certificates (PEM) to verify an https target with")
	fs.StringVar(&certFile, "cert", "", "client certificate (PEM) for an https target")
	fs.StringVar(&keyFile, "key", "", "key (PEM) of --cert")
	fs.BoolVar(&insecure, "insecure-skip-verify", false, "do not verify an https target's certificate")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fail := func(err error) (*options, error) {
		fmt.Fprintf(stderr, "v2load: %v\n", err)
		return nil, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if caFile != "" || certFile != "" || insecure {
		tc, err := tlsConfig(caFile, certFile, keyFile, insecure)
		if err != nil {
			return fail(err)
		}
		cfg.TLS = tc
	}
	switch workload {
	case "put":
		cfg.PutPercent = 100
	case "get":
		cfg.PutPercent = 0
	case "mixed":
		cfg.PutPercent = putPct
	default:
		return fail(fmt.Errorf("--workload must be put, get or mixed, got %q", workload))
	}
	if o.asCSV && o.asJSON {
		return fail(errors.New("--csv and --json are exclusive"))
	}
	if !quiet {
		cfg.Progress = stderr
	}
	return o, nil
}

// tlsConfig builds the client TLS configuration from the flags.
func tlsConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert: no PEM certificate in %s", caFile)
		}
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}
