package procs

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (every listener is held until all n are chosen).
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("procs: find free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Server is one single-member server (etcd or Strata) with a fixed command
// line, so that a restart reuses its ports and data dir.
type Server struct {
	Name     string   // in process errors
	Dir      string   // data dir: root/<name>-data
	Log      string   // stdout and stderr, appended across restarts: root/<name>.log
	URL      string   // client URL, http://127.0.0.1:<Port>
	Peer     string   // peer URL, http://127.0.0.1:<PeerPort>
	Port     int      // client port
	PeerPort int      // peer port
	Argv     []string // command line; append flags before Start
	Proc     *Process // running process; nil before Start and after Stop
}

// NewServer names a server's data dir and log under root and picks its two
// ports; Argv is left to the caller.
func NewServer(root, name string) (*Server, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	return &Server{
		Name: name, Dir: filepath.Join(root, name+"-data"), Log: filepath.Join(root, name+".log"),
		URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), Peer: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Port: ports[0], PeerPort: ports[1],
	}, nil
}

// NewEtcd prepares a single-member etcd (bin) with the v2 API enabled,
// listening only on loopback, logging warnings only.
func NewEtcd(bin, root, name string) (*Server, error) {
	s, err := NewServer(root, name)
	if err != nil {
		return nil, err
	}
	s.Argv = []string{bin,
		"--enable-v2=true",
		"--name", "default",
		"--data-dir", s.Dir,
		"--listen-client-urls", s.URL,
		"--advertise-client-urls", s.URL,
		"--listen-peer-urls", s.Peer,
		"--initial-advertise-peer-urls", s.Peer,
		"--initial-cluster", "default=" + s.Peer,
		"--log-level", "warn",
	}
	return s, nil
}

// NewStrata prepares a single-member Strata (bin) listening only on
// loopback; backend, log level and other flags are the caller's to append.
func NewStrata(bin, root, name string) (*Server, error) {
	s, err := NewServer(root, name)
	if err != nil {
		return nil, err
	}
	s.Argv = []string{bin, "--name", "strata", "--data-dir", s.Dir,
		"--listen-client-urls", s.URL, "--advertise-client-urls", s.URL,
		"--listen-peer-urls", s.Peer, "--initial-advertise-peer-urls", s.Peer}
	return s, nil
}

// Start runs Argv in its own process group (see Start).
func (s *Server) Start() error {
	p, err := Start(s.Name, s.Argv, s.Log)
	if err != nil {
		return err
	}
	s.Proc = p
	return nil
}

// Ready waits until the running server accepts writes (see WaitReady).
func (s *Server) Ready(ctx context.Context, timeout time.Duration) error {
	return WaitReady(ctx, s.Proc, s.URL, timeout)
}

// Stop stops the process (SIGTERM, SIGKILL after grace) and returns how
// long that took; 0 if it was not running.
func (s *Server) Stop(grace time.Duration) time.Duration {
	if s.Proc == nil {
		return 0
	}
	start := time.Now()
	s.Proc.Stop(grace)
	s.Proc = nil
	return time.Since(start)
}

// StartEtcd starts a single-member etcd (bin) under root, named "etcd", and
// waits until it accepts writes.
func StartEtcd(ctx context.Context, bin, root string) (*Server, error) {
	s, err := NewEtcd(bin, root, "etcd")
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	if err := s.Ready(ctx, 30*time.Second); err != nil {
		s.Stop(2 * time.Second)
		return nil, err
	}
	return s, nil
}
