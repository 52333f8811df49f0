package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/strata-kv/strata/internal/fsutil"
)

const (
	currentFile = "CURRENT" // in Options.Dir: name of the live generation
	syncedFile  = "SYNCED"  // in a generation: last version made durable
	genPrefix   = "data-"
	tmpSuffix   = ".tmp"
)

func genName(n uint64) string { return genPrefix + strconv.FormatUint(n, 10) }

// genNumber parses a generation directory name; ok is false for others.
func genNumber(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, genPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && genName(n) == name
}

// readCurrent returns the live generation's name, or "" for a new store.
func readCurrent(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", currentFile, err)
	}
	name := strings.TrimSuffix(string(data), "\n")
	if _, ok := genNumber(name); !ok {
		return "", fmt.Errorf("read %s: bad content %q", currentFile, data)
	}
	return name, nil
}

// writeCurrent durably points CURRENT at generation name: the rename is the
// atomic switch of Restore.
func writeCurrent(dir, name string) error {
	return writeAtomic(dir, currentFile, []byte(name+"\n"))
}

// removeStale deletes generation directories other than keep, and
// temporary files. If fresh (no CURRENT yet), keep is removed too: it can
// only be a store whose creation was cut short, before any Update.
func removeStale(dir, keep string, fresh bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		_, isGen := genNumber(name)
		if (isGen && (name != keep || fresh)) || strings.HasSuffix(name, tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove stale %s: %w", name, err)
			}
		}
	}
	return nil
}

// readSynced returns the version recorded by writeSynced, or 0 if none.
func readSynced(dir string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, syncedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", syncedFile, err)
	}
	if len(data) != 12 || crc32.ChecksumIEEE(data[:8]) != binary.BigEndian.Uint32(data[8:]) {
		// Never half-written (writeAtomic renames), so this is damage.
		return 0, fmt.Errorf("read %s: corrupt content %x", filepath.Join(dir, syncedFile), data)
	}
	return binary.BigEndian.Uint64(data), nil
}

// writeSynced durably records ts as the last version made durable.
func writeSynced(dir string, ts uint64) error {
	data := binary.BigEndian.AppendUint64(nil, ts)
	data = binary.BigEndian.AppendUint32(data, crc32.ChecksumIEEE(data))
	return writeAtomic(dir, syncedFile, data)
}

// writeAtomic replaces dir/name with data: write a temporary file, fsync
// it, rename it over name, fsync dir. A crash leaves the old or the new
// content, never a mix.
func writeAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	err := fsutil.WriteFileSync(tmp, data)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncFiles makes everything committed to db durable. Badger's DB.Sync
// fsyncs only the active memtable's WAL and value-log file; memtables
// waiting to be flushed and older value-log files are mmapped too and, with
// SyncWrites=false, never fsynced (their data reaches a synced table only
// when flushed, or the garbage collector rewrites it). So every .mem and
// .vlog file is fsynced here; fsync writes back pages dirtied through a
// shared mapping. A file removed meanwhile was flushed to a synced table.
func syncFiles(db *badger.DB, dir string) error {
	if err := db.Sync(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("fsync %s: %w", name, err)
		}
	}
	return fsutil.SyncDir(dir) // new .mem files and tables must stay reachable
}
