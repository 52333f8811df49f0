//go:build !linux

package wal

import "os"

// fdatasync is a full fsync where there is no fdatasync; on darwin Go's
// File.Sync issues F_FULLFSYNC, which also flushes the drive's cache.
func fdatasync(f *os.File) error { return f.Sync() }

// fallocate is not available: preallocate falls back to a sparse file.
func fallocate(*os.File, int64) error { return errNoFallocate }
