// Package probe measures a running server from outside, for the benchmark
// tools: its memory from /proc, its data directory's disk use by role, its
// live heap and CPU profile from pprof, its store index, and how long until
// it answers.
package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MemStatus is the memory of a process from /proc/PID/status, in bytes.
type MemStatus struct {
	VmRSS   int64 // resident set: anonymous + file-backed (mmapped files) + shmem
	RssAnon int64 // anonymous resident memory: the heap, what a store really costs in RAM
	VmHWM   int64 // peak VmRSS so far
}

// ReadMem reads VmRSS, RssAnon and VmHWM of pid.
func ReadMem(pid int) (MemStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return MemStatus{}, err
	}
	defer f.Close()
	return ParseStatus(f)
}

func ParseStatus(r io.Reader) (MemStatus, error) {
	var m MemStatus
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.VmRSS
		case "RssAnon":
			dst = &m.RssAnon
		case "VmHWM":
			dst = &m.VmHWM
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("status: unexpected %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status: %s: %w", name, err)
		}
		*dst = kb << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found != 3 {
		return m, errors.New("status: VmRSS, RssAnon or VmHWM missing")
	}
	return m, nil
}

// DiskUsage is the space a data directory takes, split by role. Bytes are
// allocated blocks (what du reports), so preallocated WAL segments count in
// full, as they do on a real disk.
type DiskUsage struct {
	WAL, Snap, Store int64 // allocated bytes
	Apparent         int64 // sum of file sizes, all roles
}

func (d DiskUsage) Total() int64 { return d.WAL + d.Snap + d.Store }

// MeasureDisk walks dir. Files under a directory named "wal" are the raft
// log, under "snap" the snapshots (etcd keeps its bbolt db there too); all
// else is the backend's store. Both Strata and etcd lay out member/wal and
// member/snap this way.
func MeasureDisk(dir string) (DiskUsage, error) {
	var d DiskUsage
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat_t", p)
		}
		alloc := st.Blocks * 512
		d.Apparent += info.Size()
		rel, _ := filepath.Rel(dir, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		switch {
		case containsDir(parts, "wal"):
			d.WAL += alloc
		case containsDir(parts, "snap"):
			d.Snap += alloc
		default:
			d.Store += alloc
		}
		return nil
	})
	return d, err
}

func containsDir(parts []string, name string) bool {
	for _, p := range parts[:len(parts)-1] {
		if p == name {
			return true
		}
	}
	return false
}

// WaitGet polls GET url until it answers 200 and returns how long that
// took from start. The poll interval (5 ms) bounds the resolution.
func WaitGet(ctx context.Context, url string, start time.Time, timeout time.Duration, exited func() bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if exited != nil && exited() {
			return 0, fmt.Errorf("process exited before GET %s succeeded (last: %s)", url, last)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("GET %s not 200 after %v (last: %s)", url, timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// EtcdIndex returns the X-Etcd-Index of a GET of key (any status), used
// to show load progress: every write moves the index by one.
func EtcdIndex(ctx context.Context, base string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/keys/_bench_ready", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
}

// LiveHeap asks the server's pprof endpoint (--enable-pprof, on Strata and
// etcd alike) to run a GC and returns the HeapAlloc it then reports: the
// live heap. Unlike RSS it does not count garbage left by the load nor
// memory the Go runtime has not yet returned to the OS.
func LiveHeap(ctx context.Context, base string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/heap?debug=1&gc=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("pprof heap: %s", resp.Status)
	}
	return ParseHeapAlloc(resp.Body)
}

// ParseHeapAlloc finds "# HeapAlloc = N" in a debug=1 heap profile.
func ParseHeapAlloc(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("pprof heap: no HeapAlloc line")
}

// CPUProfile fetches a CPU profile of the server at base covering d (at
// least a second) from now, and writes it to path, creating its directory.
// The server must run with --enable-pprof.
func CPUProfile(ctx context.Context, base string, d time.Duration, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	secs := max(1, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: HTTP %d (is --enable-pprof on?)", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return f.Close()
}
