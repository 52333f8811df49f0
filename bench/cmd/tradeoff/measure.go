package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

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
