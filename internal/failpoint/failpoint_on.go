//go:build failpoints

// Package failpoint injects storage faults for tests built with
// -tags failpoints; in every other build Inject is a no-op the compiler
// removes.
//
// Points are armed by the environment variable STRATA_FAILPOINTS (re-read
// when it changes, which resets the counts): a comma-separated list of name=errno@n, e.g.
// "wal-fsync=EIO@40" makes the 40th and every later pass through the
// point "wal-fsync" fail with EIO; errno is EIO, ENOSPC or EDQUOT.
// Points: wal-write, wal-fsync (consensus/wal), backend-commit (server).
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Enabled reports whether this binary was built with -tags failpoints.
const Enabled = true

// EnvVar arms the points (see the package doc).
const EnvVar = "STRATA_FAILPOINTS"

type point struct {
	err   error
	after int64
	hits  atomic.Int64
}

var (
	mu     sync.Mutex
	loaded string
	points = map[string]*point{}
)

func load(env string) {
	loaded = env
	points = map[string]*point{}
	for _, spec := range strings.Split(env, ",") {
		name, rest, ok := strings.Cut(strings.TrimSpace(spec), "=")
		if !ok {
			continue
		}
		errno, at, _ := strings.Cut(rest, "@")
		n, err := strconv.ParseInt(at, 10, 64)
		if err != nil || n < 1 {
			n = 1
		}
		var e error
		switch strings.ToUpper(errno) {
		case "EIO":
			e = unix.EIO
		case "ENOSPC":
			e = unix.ENOSPC
		case "EDQUOT":
			e = unix.EDQUOT
		default:
			fmt.Fprintf(os.Stderr, "failpoint: %s: unknown errno %q\n", name, errno)
			continue
		}
		points[name] = &point{err: e, after: n}
	}
}

// Inject returns the error armed for the named point from its n-th pass
// on, else nil.
func Inject(name string) error {
	mu.Lock()
	if env := os.Getenv(EnvVar); env != loaded {
		load(env)
	}
	p := points[name]
	mu.Unlock()
	if p == nil {
		return nil
	}
	if p.hits.Add(1) >= p.after {
		return p.err
	}
	return nil
}
