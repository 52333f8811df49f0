package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/strata-kv/strata/bench/internal/procs"
)

// server is one benchmark target.
type server struct {
	Name string
	URL  string
	proc *procs.Process // nil for in-process servers
	stop func()         // releases the server; safe to call twice
	// dead is set when the server stopped working mid-run; it is skipped
	// afterwards and the reason is reported.
	dead string
}

func (s *server) alive() bool {
	if s.dead != "" {
		return false
	}
	if s.proc != nil && s.proc.Exited() {
		s.dead = "process exited; log tail:\n" + s.proc.LogTail(1500)
		return false
	}
	return true
}

// ceilingBody is what the bare HTTP server returns for every request: about
// the size of a real v2 response for a small key.
const ceilingBody = `{"action":"set","node":{"key":"/bench/k1","value":"xxxxxxxxxxxxxxxx","modifiedIndex":7,"createdIndex":7}}` + "\n"

// startCeiling starts an in-process net/http server on loopback that drains
// the request body and answers 200 with a fixed JSON body. It measures what
// the HTTP stack and the load generator can do on this machine, with no
// storage at all.
func startCeiling() (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ceiling: listen: %w", err)
	}
	body := []byte(ceilingBody)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &server{
		Name: "net/http ceiling",
		URL:  "http://" + l.Addr().String(),
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		},
	}, nil
}

// startEtcd starts etcd with a fresh data dir under tmp.
func startEtcd(ctx context.Context, o *Options, tmp string) (*server, error) {
	if _, err := os.Stat(o.EtcdBin); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	e, err := procs.StartEtcd(ctx, o.EtcdBin, tmp)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return &server{Name: "etcd", URL: e.URL, proc: e.Proc, stop: func() { e.Stop(5 * time.Second) }}, nil
}

// startStrata builds (if needed) and starts Strata with a fresh data dir,
// its command line from o.StrataCmd.
func startStrata(ctx context.Context, o *Options, tmp string) (*server, error) {
	bin, err := procs.StrataBinary(ctx, o.StrataBin, o.Repo, tmp)
	if err != nil {
		return nil, fmt.Errorf("strata: %w", err)
	}
	s, err := procs.NewServer(tmp, "strata")
	if err != nil {
		return nil, err
	}
	s.Argv = expand(o.StrataCmd, map[string]string{
		"bin": bin, "data": s.Dir, "client": s.URL, "port": strconv.Itoa(s.Port),
		"peer": s.Peer, "peerport": strconv.Itoa(s.PeerPort),
	})
	if len(s.Argv) == 0 {
		return nil, errors.New("strata: empty --strata-cmd")
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("strata: %w", err)
	}
	if err := s.Ready(ctx, o.StartupMax); err != nil {
		s.Stop(2 * time.Second)
		return nil, fmt.Errorf("strata: %w (command: %s)", err, strings.Join(s.Argv, " "))
	}
	return &server{Name: "strata", URL: s.URL, proc: s.Proc, stop: func() { s.Stop(5 * time.Second) }}, nil
}
