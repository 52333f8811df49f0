package wal

import (
	"os"

	"github.com/strata-kv/strata/internal/failpoint"
)

// writeAt is f.WriteAt with the test-only "wal-write" fault point.
func writeAt(f *os.File, b []byte, off int64) (int, error) {
	if err := failpoint.Inject("wal-write"); err != nil {
		return 0, err
	}
	return f.WriteAt(b, off)
}

// fsyncFault returns err, or the test-only "wal-fsync" fault if armed.
func fsyncFault(path string, err error) error {
	if err != nil {
		return err
	}
	return failpoint.Inject("wal-fsync")
}
