package bbolt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/internal/fsutil"
)

// ErrUnsafeShutdown is returned by Open when the file was committed to
// without fdatasync and the machine has restarted since (power loss, kernel
// crash, VM reset, or a reboot after the process died): bbolt's pages may
// have reached the disk out of order, so the file may be corrupt in ways
// bbolt cannot detect. Recover by discarding the directory and rebuilding
// from a raft snapshot and the log; see the package documentation.
var ErrUnsafeShutdown = fmt.Errorf("bbolt file may be corrupt: %w", backends.ErrUnsafeShutdown)

// bootIDPath identifies the running kernel instance; it changes on every
// boot, which is exactly the event that loses the page cache.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// bootID returns the current boot ID, or "" where it is unknown, which
// makes any marker count as from another boot: unsafe, but never wrong.
func bootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// markerContent is what the unsynced marker holds: the boot ID on the
// first line, then a note for whoever finds it.
func markerContent(boot string) []byte {
	return fmt.Appendf(nil, "%s\nstrata.db has commits that were not fdatasync'd during boot %s (pid %d).\n",
		boot, boot, os.Getpid())
}

// checkMarker inspects the unsynced marker before the file is opened. It
// reports whether a marker from this boot exists (the page cache holds the
// unsynced commits: safe to open, then sync). A marker from another or an
// unknown boot returns ErrUnsafeShutdown.
func checkMarker(marker string) (present bool, err error) {
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", marker, err)
	}
	written, _, _ := strings.Cut(string(b), "\n")
	now := bootID()
	if written == "" || now == "" || written != now {
		return true, fmt.Errorf("%w: %s was written during boot %q, this is boot %q; "+
			"discard %s and rebuild from a raft snapshot and log (or delete the marker if the file is known to be intact)",
			ErrUnsafeShutdown, marker, written, now, filepath.Dir(marker))
	}
	return true, nil
}

// writeMarker durably creates the marker: it must be on disk before any
// unsynced page of the data file can be.
func writeMarker(marker string) error {
	tmp := marker + ".tmp"
	if err := fsutil.WriteFileSync(tmp, markerContent(bootID())); err != nil {
		return err
	}
	// Rename so the marker is never seen half-written (an empty boot ID
	// would still be safe, but misleading).
	if err := os.Rename(tmp, marker); err != nil {
		return fmt.Errorf("create unsynced marker: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(marker))
}

// removeMarker removes the marker once everything it covered is durable.
// The directory is synced so that a power loss right after a clean Close
// does not resurrect the marker and force a needless rebuild.
func removeMarker(marker string) error {
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove unsynced marker: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(marker))
}
