package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// dataDir is a member's data directory, locked for its lifetime:
//
//	LOCK        flock'd while a member runs
//	backend     the backend chosen when the directory was created
//	member/     raft log and snapshots (consensus)
//	db/         the backend's own files
//	MIGRATING   present while `strata migrate` is still writing the directory
type dataDir struct {
	path string
	lock *os.File
}

func openDataDir(dir string) (*dataDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	d := &dataDir{path: dir, lock: f}
	if _, err := os.Stat(d.sub(migratingName)); err == nil {
		d.close()
		return nil, fmt.Errorf("data dir %s holds an unfinished `strata migrate` (%s exists): delete the directory and run the migration again", dir, migratingName)
	}
	return d, nil
}

// migratingName marks a data dir that `strata migrate` has not finished
// writing; no member opens it.
const migratingName = "MIGRATING"

// checkBackend records the backend of a new data dir, and refuses to open
// an existing one with a different backend (its data would seem lost).
func (d *dataDir) checkBackend(name string) error {
	p := filepath.Join(d.path, "backend")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(p, []byte(name+"\n"), 0o600); err != nil {
			return fmt.Errorf("record backend in %s: %w", d.path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read backend of %s: %w", d.path, err)
	}
	if have := strings.TrimSpace(string(b)); have != name {
		return fmt.Errorf("data dir %s holds a %q backend, not %q: start with --backend=%s, or copy it to a new data dir with `strata migrate --from-dir %s --to-dir NEWDIR --backend %s` (stop the member first)",
			d.path, have, name, have, d.path, name)
	}
	return nil
}

func (d *dataDir) sub(name string) string { return filepath.Join(d.path, name) }

func (d *dataDir) close() {
	if d.lock != nil {
		syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
		d.lock.Close()
		d.lock = nil
	}
}
