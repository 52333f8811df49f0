package etcddata

import (
	"os"

	"golang.org/x/sys/unix"
)

// tryLock is etcd's fileutil.TryLockFile on Linux: an open-file-description
// write lock, or flock where the kernel has none.
func tryLock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if err == unix.EINVAL {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	return err
}
