package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is one reading of the server process. -1 means unknown.
type sample struct {
	At         time.Duration
	RssAnonKiB int64
	VmRSSKiB   int64
	FDs        int64
	Threads    int64
	Goroutines int64
}

// parseProcStatus reads RssAnon, VmRSS and Threads (kB) from
// /proc/PID/status text.
func parseProcStatus(b []byte, s *sample) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "RssAnon":
			s.RssAnonKiB = n
		case "VmRSS":
			s.VmRSSKiB = n
		case "Threads":
			s.Threads = n
		}
	}
}

// parseGoroutines reads the count from /debug/pprof/goroutine?debug=1
// ("goroutine profile: total N") or from Prometheus text ("go_goroutines N").
func parseGoroutines(b []byte) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "goroutine profile: total "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			return n, err == nil
		}
		if rest, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(n), err == nil
		}
	}
	return 0, false
}

// sampler reads /proc/PID (if pid > 0) and the server's goroutine count
// (pprof if enabled, else /metrics).
type sampler struct {
	pid    int
	target string
	cl     *http.Client
	source string // where the goroutine count came from
}

func newSampler(pid int, target string) *sampler {
	return &sampler{pid: pid, target: target, cl: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}}
}

func (sp *sampler) take(ctx context.Context, at time.Duration) sample {
	s := sample{At: at, RssAnonKiB: -1, VmRSSKiB: -1, FDs: -1, Threads: -1, Goroutines: -1}
	if sp.pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sp.pid)); err == nil {
			parseProcStatus(b, &s)
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", sp.pid)); err == nil {
			s.FDs = int64(len(ents))
		}
	}
	for _, src := range []string{"/debug/pprof/goroutine?debug=1", "/metrics"} {
		if sp.source != "" && sp.source != src {
			continue
		}
		if n, ok := sp.get(ctx, src); ok {
			s.Goroutines, sp.source = n, src
			break
		}
	}
	return s
}

func (sp *sampler) get(ctx context.Context, path string) (int64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sp.target+path, nil)
	if err != nil {
		return 0, false
	}
	resp, err := sp.cl.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	return parseGoroutines(b)
}

// peak is the element-wise maximum of samples.
func peak(ss []sample) sample {
	p := sample{RssAnonKiB: -1, VmRSSKiB: -1, FDs: -1, Threads: -1, Goroutines: -1}
	for _, s := range ss {
		p.RssAnonKiB = max(p.RssAnonKiB, s.RssAnonKiB)
		p.VmRSSKiB = max(p.VmRSSKiB, s.VmRSSKiB)
		p.FDs = max(p.FDs, s.FDs)
		p.Threads = max(p.Threads, s.Threads)
		p.Goroutines = max(p.Goroutines, s.Goroutines)
	}
	return p
}

func kib(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/1024)
}

func num(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}
