package etcddata

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"go.etcd.io/raft/v3/raftpb"
)

// walpb.Record types.
const (
	recMetadata = 1
	recEntry    = 2
	recState    = 3
	recCRC      = 4
	recSnapshot = 5
)

// walLog is what the WAL holds: the entries in log order (a later entry
// at an index replaces the earlier ones from there, as raft overwrote
// them) and the last HardState.
type walLog struct {
	entries []raftpb.Entry
	state   raftpb.HardState
	files   []string
}

// readWAL reads every member/wal/*.wal in name order, checking the
// CRC-32C chain across files. Preallocated zero space ends a file.
func readWAL(dir string) (*walLog, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	l := &walLog{files: names}
	var crc uint32
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read wal: %w", err)
		}
		if crc, err = l.readFile(name, b, crc); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *walLog) readFile(name string, b []byte, crc uint32) (uint32, error) {
	off := 0
	for off+8 <= len(b) {
		lenField := int64(binary.LittleEndian.Uint64(b[off:]))
		if lenField == 0 {
			// Preallocated space; anything but zeros after it is a torn write.
			for i := off; i < len(b); i++ {
				if b[i] != 0 {
					return 0, fmt.Errorf("wal %s: %w: torn write: non-zero bytes at offset %d after the end of the records at offset %d", name, ErrCorrupt, i, off)
				}
			}
			return crc, nil
		}
		recBytes := int(uint64(lenField) & ^(uint64(0xff) << 56))
		pad := 0
		if lenField < 0 {
			pad = int((uint64(lenField) >> 56) & 0x7)
		}
		if recBytes < 0 || off+8+recBytes+pad > len(b) {
			return 0, fmt.Errorf("wal %s: %w: torn record at offset %d: frame of %d bytes runs past the end of the file (%d bytes)", name, ErrCorrupt, off, recBytes+pad, len(b))
		}
		data := b[off+8 : off+8+recBytes]
		fs, err := fields(data)
		if err != nil {
			return 0, fmt.Errorf("wal %s: %w: record at offset %d: %v", name, ErrCorrupt, off, err)
		}
		var typ, rcrc uint64
		var body []byte
		for _, f := range fs {
			switch f.num {
			case 1:
				typ = f.v
			case 2:
				rcrc = f.v
			case 3:
				body = f.bytes
			}
		}
		if typ == recCRC {
			if crc != 0 && uint32(rcrc) != crc {
				return 0, fmt.Errorf("wal %s: %w: crc chain broken at offset %d (file starts from %08x, previous file ended at %08x)", name, ErrCorrupt, off, rcrc, crc)
			}
			crc = uint32(rcrc)
		} else {
			crc = crc32.Update(crc, crcTable, body)
			if uint32(rcrc) != crc {
				return 0, fmt.Errorf("wal %s: %w: crc mismatch in record at offset %d (stored %08x, computed %08x)", name, ErrCorrupt, off, rcrc, crc)
			}
		}
		switch typ {
		case recEntry:
			var e raftpb.Entry
			if err := e.Unmarshal(body); err != nil {
				return 0, fmt.Errorf("wal %s: %w: entry at offset %d: %v", name, ErrCorrupt, off, err)
			}
			l.add(e)
		case recState:
			var s raftpb.HardState
			if err := s.Unmarshal(body); err != nil {
				return 0, fmt.Errorf("wal %s: %w: hard state at offset %d: %v", name, ErrCorrupt, off, err)
			}
			if s.Term != 0 || s.Vote != 0 || s.Commit != 0 {
				l.state = s
			}
		case recMetadata, recCRC, recSnapshot:
		default:
			return 0, fmt.Errorf("wal %s: %w: unknown record type %d at offset %d", name, ErrCorrupt, typ, off)
		}
		off += 8 + recBytes + pad
	}
	if off != len(b) {
		return 0, fmt.Errorf("wal %s: %w: torn record at offset %d: %d bytes left, a frame header needs 8", name, ErrCorrupt, off, len(b)-off)
	}
	return crc, nil
}

func (l *walLog) add(e raftpb.Entry) {
	if n := len(l.entries); n > 0 && e.Index <= l.entries[n-1].Index {
		first := l.entries[0].Index
		if e.Index < first {
			l.entries = l.entries[:0]
		} else {
			l.entries = l.entries[:e.Index-first]
		}
	}
	l.entries = append(l.entries, e)
}
