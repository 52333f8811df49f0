package main

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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memStatus is the memory of a process from /proc/PID/status, in bytes.
type memStatus struct {
	VmRSS   int64 // resident set: anonymous + file-backed (mmapped files) + shmem
	RssAnon int64 // anonymous resident memory: the heap, what a store really costs in RAM
	VmHWM   int64 // peak VmRSS so far
}

// readMem reads VmRSS, RssAnon and VmHWM of pid.
func readMem(pid int) (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	return parseStatus(f)
}

func parseStatus(r io.Reader) (memStatus, error) {
	var m memStatus
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

// diskUsage is the space a data directory takes, split by role. Bytes are
// allocated blocks (what du reports), so preallocated WAL segments count in
// full, as they do on a real disk.
type diskUsage struct {
	WAL, Snap, Store int64 // allocated bytes
	Apparent         int64 // sum of file sizes, all roles
}

func (d diskUsage) Total() int64 { return d.WAL + d.Snap + d.Store }

// measureDisk walks dir. Files under a directory named "wal" are the raft
// log, under "snap" the snapshots (etcd keeps its bbolt db there too); all
// else is the backend's store. Both Strata and etcd lay out member/wal and
// member/snap this way.
func measureDisk(dir string) (diskUsage, error) {
	var d diskUsage
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

// newestSnapSize returns the size of the newest file under dir/member/snap
// whose name ends in .snap (Strata's and etcd's snapshot files).
func newestSnapSize(dir string) int64 {
	var size int64
	var newest time.Time
	_ = filepath.WalkDir(filepath.Join(dir, "member", "snap"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() || !strings.HasSuffix(p, ".snap") {
			return nil
		}
		if info, err := e.Info(); err == nil && !info.ModTime().Before(newest) {
			newest, size = info.ModTime(), info.Size()
		}
		return nil
	})
	return size
}

// waitGet polls GET url until it answers 200 and returns how long that
// took from start. The poll interval (5 ms) bounds the resolution.
func waitGet(ctx context.Context, url string, start time.Time, timeout time.Duration, exited func() bool) (time.Duration, error) {
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

// etcdIndex returns the X-Etcd-Index of a GET of key (any status), used
// to show load progress: every write moves the index by one.
func etcdIndex(ctx context.Context, base string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
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

// snapLine matches the consensus layer's line for a finished snapshot
// ("consensus: snapshot taken" at info; "consensus: snapshot" at debug in
// older builds).
var snapLine = regexp.MustCompile(`msg="consensus: snapshot(?: taken)?" .*\bindex=([0-9]+) .*\bduration=([0-9.]+[a-zµ]+)`)

// lastSnapshot returns the index and duration of the last snapshot logged
// in the log at path, or ok=false if none is there.
func lastSnapshot(path string) (index uint64, dur time.Duration, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := snapLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		i, err1 := strconv.ParseUint(m[1], 10, 64)
		d, err2 := time.ParseDuration(m[2])
		if err1 == nil && err2 == nil {
			index, dur, ok = i, d, true
		}
	}
	return index, dur, ok, sc.Err()
}

// liveHeap asks the server's pprof endpoint (--enable-pprof, on Strata and
// etcd alike) to run a GC and returns the HeapAlloc it then reports: the
// live heap. Unlike RSS it does not count garbage left by the load nor
// memory the Go runtime has not yet returned to the OS.
func liveHeap(ctx context.Context, base string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
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
	return parseHeapAlloc(resp.Body)
}

// parseHeapAlloc finds "# HeapAlloc = N" in a debug=1 heap profile.
func parseHeapAlloc(r io.Reader) (int64, error) {
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
