// Package procs starts and stops benchmark server processes (etcd, Strata)
// in their own process groups so that they, and anything they spawn, can be
// cleaned up reliably.
package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a running child in its own process group.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
	waitErr error
}

// Start runs argv in a new process group with stdout and stderr appended to
// logPath. On Linux the child receives SIGKILL if this process dies
// (Pdeathsig), so a crashed benchmark does not leave servers behind.
func Start(name string, argv []string, logPath string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("procs: empty command line")
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("procs: open log for %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = groupAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("procs: start %s (%s): %w", name, argv[0], err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the child's process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has terminated.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL and waits for exit. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	// Kill leftovers in the group even if the leader exited.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// LogTail returns up to the last n bytes of the process log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// WaitReady polls until a PUT of a probe key under baseURL/v2/keys returns
// 2xx (for etcd this means a leader was elected), the process exits, ctx is
// done, or timeout elapses.
func WaitReady(ctx context.Context, p *Process, baseURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	u := strings.TrimRight(baseURL, "/") + "/v2/keys/_bench_ready"
	var last string
	for i := 0; i < 1000; i++ {
		if p != nil && p.Exited() {
			return fmt.Errorf("procs: %s exited before becoming ready (%v); log tail:\n%s", p.Name, p.waitErr, p.LogTail(2000))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader("value=1"))
		if err != nil {
			return fmt.Errorf("procs: build probe: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = "HTTP " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			name := "server"
			if p != nil {
				name = p.Name
			}
			return fmt.Errorf("procs: %s not ready at %s after %v (last: %s)", name, baseURL, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("procs: %s never became ready (last: %s)", baseURL, last)
}
