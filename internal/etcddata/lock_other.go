//go:build !linux

package etcddata

import (
	"os"

	"golang.org/x/sys/unix"
)

// tryLock is etcd's fileutil.TryLockFile off Linux: flock.
func tryLock(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}
