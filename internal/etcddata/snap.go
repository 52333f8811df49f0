package etcddata

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"go.etcd.io/raft/v3/raftpb"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a snapshot or WAL that fails its checksums or framing.
var ErrCorrupt = errors.New("corrupt")

// newestSnapshot reads the newest member/snap/*.snap, or returns nil when
// there is none (a member that has not yet taken one).
func newestSnapshot(dir string) (*raftpb.Snapshot, string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.snap"))
	if err != nil {
		return nil, "", err
	}
	if len(names) == 0 {
		return nil, "", nil
	}
	sort.Strings(names) // %016x-%016x.snap: name order is (term, index) order
	name := names[len(names)-1]
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, name, fmt.Errorf("read snapshot: %w", err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return nil, name, fmt.Errorf("snapshot %s: %w", name, err)
	}
	return s, name, nil
}

// decodeSnapshot is snappb.Snapshot{crc = 1, data = 2} around a
// raftpb.Snapshot, the crc being CRC-32C of data.
func decodeSnapshot(b []byte) (*raftpb.Snapshot, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty file at offset 0", ErrCorrupt)
	}
	fs, err := fields(b)
	if err != nil {
		return nil, fmt.Errorf("%w: bad framing (offset 0, %d bytes): %v", ErrCorrupt, len(b), err)
	}
	var crc uint64
	var data []byte
	var haveCRC bool
	for _, f := range fs {
		switch f.num {
		case 1:
			crc, haveCRC = f.v, true
		case 2:
			data = f.bytes
		}
	}
	off := len(b) - len(data)
	if !haveCRC || data == nil {
		return nil, fmt.Errorf("%w: no crc or data field", ErrCorrupt)
	}
	if got := crc32.Checksum(data, crcTable); uint64(got) != crc {
		return nil, fmt.Errorf("%w: crc mismatch over data at offset %d..%d (stored %08x, computed %08x)", ErrCorrupt, off, len(b), crc, got)
	}
	var s raftpb.Snapshot
	if err := s.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%w: raft snapshot at offset %d: %v", ErrCorrupt, off, err)
	}
	return &s, nil
}
