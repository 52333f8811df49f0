package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-kv/strata/bench/internal/procs"
)

// member is one process of a benchmark cluster.
type member struct {
	Name   string
	Client string // client URL
	Peer   string // peer URL
	Dir    string // data dir
	proc   *procs.Process
}

// cluster is a running 3- (or n-) member Strata or etcd cluster.
type cluster struct {
	System  string // "strata" or "etcd"
	Members []*member
	dead    string // why it stopped being measured, if it did
}

func (c *cluster) stop() {
	for _, m := range c.Members {
		if m.proc != nil {
			m.proc.Stop(5 * time.Second)
		}
	}
}

// alive reports whether every member is still running.
func (c *cluster) alive() bool {
	if c.dead != "" {
		return false
	}
	for _, m := range c.Members {
		if m.proc != nil && m.proc.Exited() {
			c.dead = fmt.Sprintf("member %s exited; log tail:\n%s", m.Name, m.proc.LogTail(1500))
			return false
		}
	}
	return true
}

// layout names the members of a cluster (prefix1..prefixN) and gives each a
// client port, a peer port and a data dir under root.
func layout(prefix, root string, n int, ports []int) []*member {
	ms := make([]*member, n)
	for i := range ms {
		name := fmt.Sprintf("%s%d", prefix, i+1)
		ms[i] = &member{
			Name:   name,
			Client: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			Peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Dir:    filepath.Join(root, name),
		}
	}
	return ms
}

func initialCluster(ms []*member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Name + "=" + m.Peer
	}
	return strings.Join(parts, ",")
}

// memberArgs is the etcd-style bootstrap command line shared by both
// systems (Strata takes etcd's flags).
func memberArgs(m *member, ms []*member, token string) []string {
	return []string{
		"--name", m.Name, "--data-dir", m.Dir,
		"--listen-client-urls", m.Client, "--advertise-client-urls", m.Client,
		"--listen-peer-urls", m.Peer, "--initial-advertise-peer-urls", m.Peer,
		"--initial-cluster", initialCluster(ms),
		"--initial-cluster-state", "new", "--initial-cluster-token", token,
	}
}

// etcdArgv is the command line of one etcd member.
func etcdArgv(bin string, m *member, ms []*member, token string, extra []string) []string {
	argv := append([]string{bin, "--enable-v2=true"}, memberArgs(m, ms, token)...)
	argv = append(argv, "--log-level", "warn")
	return append(argv, extra...)
}

// strataArgv is the command line of one Strata member (memory backend
// unless extra says otherwise).
func strataArgv(bin string, m *member, ms []*member, token string, pprof bool, extra []string) []string {
	argv := append([]string{bin}, memberArgs(m, ms, token)...)
	argv = append(argv, "--log-level", "warn")
	if pprof {
		argv = append(argv, "--enable-pprof")
	}
	return append(argv, extra...)
}

// startCluster launches every member of a cluster built by argv and waits
// until all agree on a leader and a write through each member succeeds.
func startCluster(ctx context.Context, system string, ms []*member, argv func(*member) []string, logDir string, timeout time.Duration) (*cluster, error) {
	c := &cluster{System: system, Members: ms}
	for _, m := range ms {
		p, err := procs.Start(system+" "+m.Name, argv(m), filepath.Join(logDir, m.Name+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		m.proc = p
	}
	if _, err := waitLeader(ctx, c, timeout); err != nil {
		c.stop()
		return nil, err
	}
	for _, m := range ms {
		if err := procs.WaitReady(ctx, m.proc, m.Client, timeout); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// selfStats is the part of /v2/stats/self (same shape in etcd and Strata)
// used to find the leader.
type selfStats struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	State      string `json:"state"`
	LeaderInfo struct {
		Leader string `json:"leader"`
	} `json:"leaderInfo"`
}

func getSelf(ctx context.Context, hc *http.Client, base string) (selfStats, error) {
	var st selfStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/stats/self", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s/v2/stats/self: HTTP %d", base, resp.StatusCode)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET %s/v2/stats/self: %w", base, err)
	}
	return st, nil
}

// agreedLeader returns the member every stats answer names as leader, or
// nil if they disagree, name none, or name one that is not among ms.
func agreedLeader(ms []*member, stats []selfStats) *member {
	if len(stats) != len(ms) || len(ms) == 0 {
		return nil
	}
	lead := stats[0].LeaderInfo.Leader
	if lead == "" || lead == "0" {
		return nil
	}
	for _, st := range stats {
		if st.LeaderInfo.Leader != lead {
			return nil
		}
	}
	for i, st := range stats {
		if st.ID == lead {
			return ms[i]
		}
	}
	return nil
}

// waitLeader polls every member's /v2/stats/self until they agree on a
// leader.
func waitLeader(ctx context.Context, c *cluster, timeout time.Duration) (*member, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	last := "no answer yet"
	for {
		if !c.alive() {
			return nil, fmt.Errorf("%s: %s", c.System, c.dead)
		}
		var stats []selfStats
		for _, m := range c.Members {
			st, err := getSelf(ctx, hc, m.Client)
			if err != nil {
				last = err.Error()
				break
			}
			stats = append(stats, st)
		}
		if l := agreedLeader(c.Members, stats); l != nil {
			return l, nil
		} else if len(stats) == len(c.Members) {
			last = fmt.Sprintf("members disagree or know no leader: %+v", stats)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no agreed leader after %v (last: %s)", c.System, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}
