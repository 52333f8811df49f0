package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

func init() { subcommands["cluster"] = runCluster }

// clusterMember is one child process of `strata cluster`.
type clusterMember struct {
	name, client, peer, dir string
	cmd                     *exec.Cmd
	ready                   chan string   // the member's ready line
	done                    chan struct{} // closed when the process has exited
	err                     error         // its exit status, once done
}

// runCluster runs `strata cluster`: a local cluster of --size members on
// loopback, each a child strata process, until SIGINT/SIGTERM, which it
// passes on. Member i (from 1) is named infra<i>, serves clients on
// base-port+2(i-1) and peers on base-port+2(i-1)+1, and keeps its data in
// <dir>/infra<i>.strata, so running the command again restarts the same
// cluster. Arguments after "--" go to every member. Children's output is
// prefixed with their name.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int("size", 3, "number of members")
	basePort := fs.Int("base-port", 2379, "first client port: member i serves clients on base-port+2(i-1) and peers on the next port")
	dir := fs.String("dir", "strata-cluster", "directory holding the members' data dirs")
	token := fs.String("initial-cluster-token", "strata-local-cluster", "initial cluster token of the members")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: strata cluster [--size N] [--base-port P] [--dir DIR] [-- member flags...]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	extra := fs.Args()
	if *size < 1 || *size > 99 {
		return fmt.Errorf("cluster: --size must be between 1 and 99, not %d", *size)
	}
	if *basePort < 1 || *basePort+2**size > 65536 {
		return fmt.Errorf("cluster: --base-port %d leaves no room for %d members", *basePort, *size)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cluster: find the strata binary: %w", err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ms, ic := planMembers(*size, *basePort, *dir)
	var outMu sync.Mutex // one child's line at a time
	for _, m := range ms {
		m.cmd = exec.Command(exe, memberArgs(m, ic, *token, extra)...)
		m.cmd.Stdin = nil
		out, errOut, err := outputPipes(m.cmd)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if err := m.cmd.Start(); err != nil {
			stopMembers(ms)
			return fmt.Errorf("cluster: start %s: %w", m.name, err)
		}
		m.follow(out, errOut, stdout, stderr, &outMu)
	}
	clients, ready, err := awaitReady(ctx, ms)
	if !ready {
		return err // nil when ctx ended first
	}
	outMu.Lock()
	fmt.Fprintf(stdout, "strata cluster: %d members ready; client URLs %s; data in %s\n", len(ms), strings.Join(clients, ","), *dir)
	for _, m := range ms {
		fmt.Fprintf(stdout, "strata cluster: %s pid %d client %s peer %s\n", m.name, m.cmd.Process.Pid, m.client, m.peer)
	}
	outMu.Unlock()
	return superviseMembers(ctx, ms, stderr, &outMu)
}

// planMembers names the members and places their ports and data dirs; it
// also returns their --initial-cluster entries.
func planMembers(size, basePort int, dir string) (ms []*clusterMember, ic []string) {
	for i := 0; i < size; i++ {
		m := &clusterMember{
			name:   fmt.Sprintf("infra%d", i+1),
			client: fmt.Sprintf("http://127.0.0.1:%d", basePort+2*i),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", basePort+2*i+1),
			ready:  make(chan string, 1),
			done:   make(chan struct{}),
		}
		m.dir = filepath.Join(dir, m.name+".strata")
		ms = append(ms, m)
		ic = append(ic, m.name+"="+m.peer)
	}
	return ms, ic
}

// memberArgs returns the flags member m is started with, then extra.
func memberArgs(m *clusterMember, ic []string, token string, extra []string) []string {
	return append([]string{
		"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", strings.Join(ic, ","), "--initial-cluster-token", token,
	}, extra...)
}

// outputPipes connects cmd's stdout and stderr, before it starts.
func outputPipes(cmd *exec.Cmd) (stdout, stderr io.ReadCloser, err error) {
	if stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, nil, err
	}
	if stderr, err = cmd.StderrPipe(); err != nil {
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// follow copies the started member's output, prefixed by its name, and
// closes m.done once the process has exited.
func (m *clusterMember) follow(out, errOut io.Reader, stdout, stderr io.Writer, outMu *sync.Mutex) {
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); prefixLines(out, stdout, outMu, m.name, m.ready) }()
	go func() { defer pipes.Done(); prefixLines(errOut, stderr, outMu, m.name, nil) }()
	go func() {
		pipes.Wait() // Wait closes the pipes: read them out first
		m.err = m.cmd.Wait()
		close(m.done)
	}()
}

// awaitReady waits for every member's ready line, which each prints once
// the cluster has a leader, and returns their client URLs. If a member
// exits first or ctx ends, it stops the members and reports not ready.
func awaitReady(ctx context.Context, ms []*clusterMember) (clients []string, ready bool, err error) {
	for _, m := range ms {
		select {
		case <-m.ready:
			clients = append(clients, m.client)
		case <-m.done:
			stopMembers(ms)
			return nil, false, fmt.Errorf("cluster: %s exited before it was ready: %v", m.name, m.err)
		case <-ctx.Done():
			stopMembers(ms)
			return nil, false, nil
		}
	}
	return clients, true, nil
}

// superviseMembers reports each member's exit until ctx ends, when it
// stops them, or until none is left.
func superviseMembers(ctx context.Context, ms []*clusterMember, stderr io.Writer, outMu *sync.Mutex) error {
	running := len(ms)
	exits := make(chan string, len(ms))
	for _, m := range ms {
		go func(m *clusterMember) {
			<-m.done
			exits <- fmt.Sprintf("%s exited: %v", m.name, m.err)
		}(m)
	}
	for running > 0 {
		select {
		case <-ctx.Done():
			stopMembers(ms)
			return nil
		case msg := <-exits:
			running--
			outMu.Lock()
			fmt.Fprintf(stderr, "strata cluster: %s (%d still running)\n", msg, running)
			outMu.Unlock()
		}
	}
	return errors.New("cluster: every member exited")
}

// stopMembers sends SIGTERM to every started member and waits up to 10s
// for each before killing it.
func stopMembers(ms []*clusterMember) {
	for _, m := range ms {
		if m.cmd != nil && m.cmd.Process != nil {
			m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(10 * time.Second)
	for _, m := range ms {
		if m.cmd == nil || m.cmd.Process == nil {
			continue
		}
		select {
		case <-m.done:
		case <-deadline:
			m.cmd.Process.Kill()
			<-m.done
		}
	}
}

var readyLine = regexp.MustCompile(`^strata: ready to serve client requests`)

// prefixLines copies r to w line by line as "name | line"; the first ready
// line is also sent on ready.
func prefixLines(r io.Reader, w io.Writer, mu *sync.Mutex, name string, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		mu.Lock()
		fmt.Fprintf(w, "%-7s| %s\n", name, line)
		mu.Unlock()
		if ready != nil && readyLine.MatchString(line) {
			select {
			case ready <- line:
			default:
			}
		}
	}
	io.Copy(io.Discard, r)
}
