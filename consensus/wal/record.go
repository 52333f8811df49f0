package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Record types. Zero is never written so that a zeroed header means "no
// record here" (the preallocated tail).
const (
	recEntry     uint8 = 1 // payload: raftpb.Entry, marshaled
	recHardState uint8 = 2 // payload: raftpb.HardState, marshaled
	recSnapshot  uint8 = 3 // payload: index u64 | term u64 | flags u64
	recMax             = recSnapshot
)

const (
	headerSize = 24
	align      = 8
	// flagBatchEnd marks the last record of a Save; replay applies a batch
	// only when it has seen this flag.
	flagBatchEnd uint8 = 1 << 0
	// maxRecordSize bounds the length field so that garbage cannot make
	// replay allocate or skip gigabytes.
	maxRecordSize = 1 << 30
)

// Snapshot marker flags.
const (
	// markerReset means the log was replaced by a snapshot received from
	// the leader: entries written before the marker are obsolete.
	markerReset uint64 = 1 << 0
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is returned by decodeRecord for data that is not a complete,
// valid record; replay decides whether that is a torn tail or corruption.
var errBadRecord = errors.New("invalid record")

// padded returns n rounded up to the record alignment.
func padded(n int) int { return (n + align - 1) &^ (align - 1) }

// appendRecord appends one encoded record to buf. payload is produced by
// fill, which receives a slice of exactly n bytes, so entries are marshaled
// in place without an intermediate copy.
func appendRecord(buf []byte, typ, flags uint8, batch uint64, n int, fill func([]byte)) []byte {
	start := len(buf)
	total := headerSize + padded(n)
	buf = grow(buf, total)
	rec := buf[start : start+total]
	clear(rec)
	binary.LittleEndian.PutUint32(rec[4:], uint32(n))
	rec[8] = typ
	rec[9] = flags
	binary.LittleEndian.PutUint64(rec[16:], batch)
	if fill != nil {
		fill(rec[headerSize : headerSize+n])
	}
	binary.LittleEndian.PutUint32(rec[0:], crc32.Checksum(rec[4:headerSize+n], crcTable))
	return buf
}

func grow(buf []byte, n int) []byte {
	if cap(buf)-len(buf) < n {
		nb := make([]byte, len(buf), 2*cap(buf)+n)
		copy(nb, buf)
		buf = nb
	}
	return buf[:len(buf)+n]
}

// record is a decoded record; payload aliases the segment buffer.
type record struct {
	typ     uint8
	flags   uint8
	batch   uint64
	payload []byte
	size    int // bytes occupied on disk, header and padding included
}

// isZeroHeader reports whether b (at least headerSize bytes) is all zeros,
// i.e. the never-written preallocated area.
func isZeroHeader(b []byte) bool {
	for _, c := range b[:headerSize] {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeRecord decodes the record at the start of b. It returns
// errBadRecord if b holds a short, unknown or checksum-failing record.
func decodeRecord(b []byte) (record, error) {
	if len(b) < headerSize {
		return record{}, errBadRecord
	}
	n := int(binary.LittleEndian.Uint32(b[4:]))
	typ := b[8]
	if typ == 0 || typ > recMax || n > maxRecordSize || headerSize+padded(n) > len(b) {
		return record{}, errBadRecord
	}
	if binary.LittleEndian.Uint32(b[0:]) != crc32.Checksum(b[4:headerSize+n], crcTable) {
		return record{}, errBadRecord
	}
	return record{
		typ:     typ,
		flags:   b[9],
		batch:   binary.LittleEndian.Uint64(b[16:]),
		payload: b[headerSize : headerSize+n],
		size:    headerSize + padded(n),
	}, nil
}

func encodeMarker(b []byte, s Snapshot) {
	binary.LittleEndian.PutUint64(b[0:], s.Index)
	binary.LittleEndian.PutUint64(b[8:], s.Term)
	var f uint64
	if s.Reset {
		f |= markerReset
	}
	binary.LittleEndian.PutUint64(b[16:], f)
}

const markerSize = 24

func decodeMarker(b []byte) (Snapshot, error) {
	if len(b) != markerSize {
		return Snapshot{}, errors.New("snapshot marker: bad length")
	}
	return Snapshot{
		Index: binary.LittleEndian.Uint64(b[0:]),
		Term:  binary.LittleEndian.Uint64(b[8:]),
		Reset: binary.LittleEndian.Uint64(b[16:])&markerReset != 0,
	}, nil
}
