package backends

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The portable snapshot stream, version 1. It is the same whichever backend
// wrote it, so any backend can Restore it and `migrate` can pipe one backend
// into another. Layout (fixed-width integers are big-endian):
//
//	magic    8 bytes   "STRATASN"
//	version  uint32    1
//	applied  uint64    applied raft index
//	records  repeated, keys strictly ascending:
//	           uvarint(len(key)+1) key uvarint(len(value)) value
//	end      1 byte    0x00
//	crc      uint32    CRC-32C (Castagnoli) of every byte before it
//
// Key lengths are stored plus one so that the end marker can never be read
// as a record with an empty key. Varints must be minimally encoded, so every
// store has exactly one encoding.
const (
	snapMagic   = "STRATASN"
	snapVersion = 1
	snapHeader  = len(snapMagic) + 4 + 8
	snapBufSize = 64 << 10
)

// Limits on a single record. Both WriteSnapshot and ReadSnapshot enforce
// them, so anything written can be read back, and a corrupt length can
// never make the reader allocate more than the stream actually carries.
const (
	MaxSnapshotKeySize   = 1 << 20
	MaxSnapshotValueSize = 1 << 30
)

// ErrCorruptSnapshot is wrapped by every ReadSnapshot error caused by the
// content of the stream (bad magic, unknown version, truncation, bad
// lengths, unordered keys, checksum mismatch), as opposed to an I/O error
// of the underlying reader, which is wrapped as is.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes a snapshot stream carrying appliedIndex and every
// record that each produces. each must call fn once per key, in strictly
// ascending byte order, and return the first error fn returns; it normally
// iterates one consistent view of a store. WriteSnapshot fails, without a
// valid trailer, if the order is violated, a record exceeds
// MaxSnapshotKeySize/MaxSnapshotValueSize, each fails, or w fails; the
// caller must then discard what was written. Output is buffered; w receives
// the trailer last, so a stream cut short never passes ReadSnapshot.
func WriteSnapshot(w io.Writer, appliedIndex uint64, each func(fn func(k, v []byte) error) error) error {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, snapBufSize)

	var hdr [snapHeader]byte
	copy(hdr[:], snapMagic)
	binary.BigEndian.PutUint32(hdr[8:], snapVersion)
	binary.BigEndian.PutUint64(hdr[12:], appliedIndex)
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}

	var (
		prev    []byte
		started bool
		werr    error // first failure of fn, in case each swallows it
		tmp     [binary.MaxVarintLen64]byte
	)
	record := func(k, v []byte) error {
		if werr != nil {
			return werr
		}
		switch {
		case len(k) > MaxSnapshotKeySize:
			werr = fmt.Errorf("write snapshot: key of %d bytes exceeds %d", len(k), MaxSnapshotKeySize)
		case len(v) > MaxSnapshotValueSize:
			werr = fmt.Errorf("write snapshot: value of %d bytes at key %q exceeds %d", len(v), k, MaxSnapshotValueSize)
		case started && bytes.Compare(prev, k) >= 0:
			werr = fmt.Errorf("write snapshot: key %q after %q: keys must be strictly ascending", k, prev)
		}
		if werr != nil {
			return werr
		}
		prev, started = append(prev[:0], k...), true
		n := binary.PutUvarint(tmp[:], uint64(len(k))+1)
		bw.Write(tmp[:n])
		bw.Write(k)
		n = binary.PutUvarint(tmp[:], uint64(len(v)))
		bw.Write(tmp[:n])
		if _, err := bw.Write(v); err != nil { // bufio errors are sticky: one check per record suffices
			werr = fmt.Errorf("write snapshot: %w", err)
		}
		return werr
	}
	err := each(record)
	if werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("write snapshot: iterate: %w", err)
	}
	bw.WriteByte(0)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	binary.BigEndian.PutUint32(tmp[:4], cw.sum)
	if _, err := w.Write(tmp[:4]); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	return nil
}

// crcWriter checksums everything passed through it, so the CRC is computed
// over the large chunks bufio flushes rather than per record.
type crcWriter struct {
	w   io.Writer
	sum uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.sum = crc32.Update(c.sum, castagnoli, p[:n])
	return n, err
}

// ReadSnapshot reads a stream made by WriteSnapshot, calling fn for each
// record in ascending key order, and returns the applied index it carries.
//
// The stream is verified only as it is consumed: fn sees records before the
// trailer is checked, so a non-nil error (truncation, corruption, a failing
// fn or reader) means the caller must discard everything fn received.
// k and v are only valid during the call to fn. r is read in buffered
// chunks and may be consumed past the trailer.
func ReadSnapshot(r io.Reader, fn func(k, v []byte) error) (appliedIndex uint64, err error) {
	sr := &snapReader{r: r, buf: make([]byte, snapBufSize)}

	var hdr [snapHeader]byte
	if err := sr.readFull(hdr[:]); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(hdr[:8]) != snapMagic {
		return 0, fmt.Errorf("read snapshot: %w: bad magic %q", ErrCorruptSnapshot, hdr[:8])
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != snapVersion {
		return 0, fmt.Errorf("read snapshot: %w: unsupported version %d", ErrCorruptSnapshot, v)
	}
	appliedIndex = binary.BigEndian.Uint64(hdr[12:])

	var key, prev, val []byte
	for n := 0; ; n++ {
		klen, err := sr.readUvarint()
		if err != nil {
			return 0, fmt.Errorf("read snapshot record %d: %w", n, err)
		}
		if klen == 0 {
			break // end marker
		}
		klen--
		if klen > MaxSnapshotKeySize {
			return 0, fmt.Errorf("read snapshot record %d: %w: key length %d", n, ErrCorruptSnapshot, klen)
		}
		if key, err = sr.readBytes(key, int(klen)); err != nil {
			return 0, fmt.Errorf("read snapshot record %d key: %w", n, err)
		}
		if n > 0 && bytes.Compare(prev, key) >= 0 {
			return 0, fmt.Errorf("read snapshot record %d: %w: key %q not after %q", n, ErrCorruptSnapshot, key, prev)
		}
		vlen, err := sr.readUvarint()
		if err != nil {
			return 0, fmt.Errorf("read snapshot record %d: %w", n, err)
		}
		if vlen > MaxSnapshotValueSize {
			return 0, fmt.Errorf("read snapshot record %d: %w: value length %d", n, ErrCorruptSnapshot, vlen)
		}
		if val, err = sr.readBytes(val, int(vlen)); err != nil {
			return 0, fmt.Errorf("read snapshot record %d value: %w", n, err)
		}
		if err := fn(key, val); err != nil {
			return 0, fmt.Errorf("read snapshot record %d: %w", n, err)
		}
		key, prev = prev, key // keep this key for the order check; reuse the older buffer
	}

	want := sr.checksum()
	var trailer [4]byte
	if err := sr.readFull(trailer[:]); err != nil {
		return 0, fmt.Errorf("read snapshot trailer: %w", err)
	}
	if got := binary.BigEndian.Uint32(trailer[:]); got != want {
		return 0, fmt.Errorf("read snapshot: %w: checksum %08x, computed %08x", ErrCorruptSnapshot, got, want)
	}
	return appliedIndex, nil
}

// snapReader is a minimal buffered reader that checksums exactly the bytes
// consumed, which bufio.Reader cannot do because it reads ahead.
type snapReader struct {
	r        io.Reader
	buf      []byte
	pos, end int    // unread bytes are buf[pos:end]
	hashed   int    // buf[:hashed] is already in sum
	sum      uint32 // CRC of every consumed byte before buf[hashed]
}

// checksum returns the CRC of every byte consumed so far.
func (s *snapReader) checksum() uint32 {
	s.sum = crc32.Update(s.sum, castagnoli, s.buf[s.hashed:s.pos])
	s.hashed = s.pos
	return s.sum
}

// fill reads more input after sliding unread bytes to the front. It turns
// end of input into a truncation error.
func (s *snapReader) fill() error {
	s.checksum()
	s.end = copy(s.buf, s.buf[s.pos:s.end])
	s.pos, s.hashed = 0, 0
	n, err := io.ReadAtLeast(s.r, s.buf[s.end:], 1)
	s.end += n
	return readErr(err)
}

func readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated: %w", ErrCorruptSnapshot, io.ErrUnexpectedEOF)
	}
	return err
}

func (s *snapReader) readByte() (byte, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	c := s.buf[s.pos]
	s.pos++
	return c, nil
}

// readUvarint reads a minimally encoded uvarint.
func (s *snapReader) readUvarint() (uint64, error) {
	var x uint64
	for i, shift := 0, uint(0); i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		c, err := s.readByte()
		if err != nil {
			return 0, err
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break // overflows 64 bits
			}
			if c == 0 && i > 0 {
				return 0, fmt.Errorf("%w: non-minimal varint", ErrCorruptSnapshot)
			}
			return x | uint64(c)<<shift, nil
		}
		x |= uint64(c&0x7f) << shift
	}
	return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrCorruptSnapshot)
}

// readFull fills p from the stream.
func (s *snapReader) readFull(p []byte) error {
	for len(p) > 0 {
		if s.pos == s.end {
			if err := s.fill(); err != nil {
				return err
			}
		}
		n := copy(p, s.buf[s.pos:s.end])
		s.pos += n
		p = p[n:]
	}
	return nil
}

// readBytes reads n bytes into dst's storage. It grows dst at most
// geometrically ahead of the data actually read, so a corrupt huge length
// fails on truncation instead of allocating it up front.
func (s *snapReader) readBytes(dst []byte, n int) ([]byte, error) {
	dst = dst[:0]
	for len(dst) < n {
		want := min(n, max(2*cap(dst), 4096))
		if cap(dst) < want {
			grown := make([]byte, len(dst), want)
			copy(grown, dst)
			dst = grown
		}
		chunk := min(n, cap(dst))
		if err := s.readFull(dst[len(dst):chunk]); err != nil {
			return dst, err
		}
		dst = dst[:chunk]
	}
	return dst, nil
}
