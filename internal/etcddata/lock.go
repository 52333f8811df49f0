package etcddata

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked means a running etcd holds the data dir.
var ErrLocked = errors.New("locked by a running etcd")

// lockFiles takes the locks etcd takes on its WAL files (open-file-
// description write locks, falling back to flock as etcd's fileutil
// does), so the import both detects a running member and keeps one from
// starting on the dir meanwhile. Closing the files releases them.
func lockFiles(names []string) ([]*os.File, error) {
	var held []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range held {
			f.Close()
		}
		return nil, err
	}
	for _, name := range names {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return fail(fmt.Errorf("open %s: %w", name, err))
		}
		held = append(held, f)
		err = tryLock(f)
		if err == unix.EAGAIN || err == unix.EACCES || err == unix.EWOULDBLOCK {
			return fail(fmt.Errorf("%s: %w", name, ErrLocked))
		}
		if err != nil {
			return fail(fmt.Errorf("lock %s: %w", name, err))
		}
	}
	return held, nil
}
