package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	p, u, err := procs.StartEtcd(ctx, o.EtcdBin, filepath.Join(tmp, "etcd-data"), filepath.Join(tmp, "etcd.log"))
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return &server{Name: "etcd", URL: u, proc: p, stop: func() { p.Stop(5 * time.Second) }}, nil
}

// buildStrata builds ./cmd/strata in o.Repo into tmp and returns the binary.
func buildStrata(ctx context.Context, o *Options, tmp string) (string, error) {
	if o.StrataBin != "" {
		return o.StrataBin, nil
	}
	bin := filepath.Join(tmp, "strata")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/strata")
	cmd.Dir = o.Repo
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 1500 {
			msg = msg[:1500] + "…"
		}
		return "", fmt.Errorf("strata: go build ./cmd/strata in %s: %w\n%s", o.Repo, err, msg)
	}
	return bin, nil
}

// startStrata builds (if needed) and starts Strata with a fresh data dir.
func startStrata(ctx context.Context, o *Options, tmp string) (*server, error) {
	bin, err := buildStrata(ctx, o, tmp)
	if err != nil {
		return nil, err
	}
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", port)
	argv := expand(o.StrataCmd, map[string]string{
		"bin": bin, "data": filepath.Join(tmp, "strata-data"), "client": client, "port": strconv.Itoa(port),
		"peer": fmt.Sprintf("http://127.0.0.1:%d", peerPort), "peerport": strconv.Itoa(peerPort),
	})
	if len(argv) == 0 {
		return nil, errors.New("strata: empty --strata-cmd")
	}
	p, err := procs.Start("strata", argv, filepath.Join(tmp, "strata.log"))
	if err != nil {
		return nil, fmt.Errorf("strata: %w", err)
	}
	if err := procs.WaitReady(ctx, p, client, o.StartupMax); err != nil {
		p.Stop(2 * time.Second)
		return nil, fmt.Errorf("strata: %w (command: %s)", err, strings.Join(argv, " "))
	}
	return &server{Name: "strata", URL: client, proc: p, stop: func() { p.Stop(5 * time.Second) }}, nil
}
