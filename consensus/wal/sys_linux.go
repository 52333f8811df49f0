package wal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data and the metadata needed to read it back
// (not mtime): the WAL's durability point.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// fallocate reserves [0, size) for f; errNoFallocate where the
// filesystem cannot.
func fallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		return errNoFallocate
	}
	return err
}
