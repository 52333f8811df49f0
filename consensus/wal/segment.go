package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-kv/strata/internal/fsutil"
)

const segmentExt = ".wal"

// nextTmp is the next segment, preallocated ahead of the cut; like every
// *.tmp it is removed at Open.
const nextTmp = "next.wal.tmp"

// segment describes one segment file of the log.
type segment struct {
	seq   uint64 // position in the log; consecutive from the oldest kept
	first uint64 // index of the next entry when the segment was cut
	path  string
}

func segmentName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, first, segmentExt)
}

func parseSegmentName(name string) (seq, first uint64, ok bool) {
	if !strings.HasSuffix(name, segmentExt) {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(strings.TrimSuffix(name, segmentExt), "%016x-%016x", &seq, &first); err != nil {
		return 0, 0, false
	}
	return seq, first, segmentName(seq, first) == name
}

// listSegments returns the segments in dir ordered by seq, after removing
// leftover temporary files of an interrupted segment creation. It fails if
// the sequence has a hole: a missing middle segment is lost data.
func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			// Never renamed into place, so it holds nothing acknowledged.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		if seq, first, ok := parseSegmentName(name); ok {
			segs = append(segs, segment{seq: seq, first: first, path: filepath.Join(dir, name)})
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("%w: segment %d missing between %s and %s", ErrCorrupt,
				segs[i-1].seq+1, filepath.Base(segs[i-1].path), filepath.Base(segs[i].path))
		}
	}
	return segs, nil
}

// createSegment atomically creates a preallocated segment whose first
// bytes are head: it is written under a temporary name, synced, renamed
// and the directory synced, so a crash leaves either no segment or a
// complete one.
func createSegment(dir string, seq, first uint64, size int64, head []byte) (*os.File, string, error) {
	path := filepath.Join(dir, segmentName(seq, first))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("create segment %s: %w", path, err)
	}
	if err := preallocate(f, size); err != nil {
		return fail(err)
	}
	if len(head) > 0 {
		if _, err := f.WriteAt(head, 0); err != nil {
			return fail(err)
		}
	}
	// Full fsync, not fdatasync: the size set by fallocate must be durable.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return placeSegment(f, tmp, path, dir, fail)
}

// installSegment turns f, a preallocated file named nextTmp in dir, into
// segment seq beginning with head: head written and synced, renamed into
// place, the directory synced.
func installSegment(f *os.File, dir string, seq, first uint64, head []byte, noSync bool) (*os.File, string, error) {
	path := filepath.Join(dir, segmentName(seq, first))
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		return nil, "", fmt.Errorf("create segment %s: %w", path, err)
	}
	if len(head) > 0 {
		if _, err := f.WriteAt(head, 0); err != nil {
			return fail(err)
		}
	}
	if !noSync {
		// Full fsync, not fdatasync: the size set by fallocate must be durable.
		if err := fsyncFault(path, f.Sync()); err != nil {
			return fail(err)
		}
	}
	return placeSegment(f, f.Name(), path, dir, fail)
}

// placeSegment renames f (a synced file named tmp) to path, syncs dir and
// reopens the segment under its name, so errors name the segment, not the
// temporary file; fail cleans up after an error before the rename holds.
func placeSegment(f *os.File, tmp, path, dir string, fail func(error) (*os.File, string, error)) (*os.File, string, error) {
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fail(err)
	}
	nf, err := os.OpenFile(path, os.O_RDWR, 0)
	f.Close()
	if err != nil {
		return nil, "", fmt.Errorf("reopen segment %s: %w", path, err)
	}
	return nf, path, nil
}

// preallocate reserves size bytes for f so later appends within that range
// do not change the file size. It falls back to Truncate (a sparse file)
// where the filesystem has no fallocate.
func preallocate(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	err = fallocate(f, size)
	if err == nil {
		return nil
	}
	if errors.Is(err, errNoFallocate) {
		return f.Truncate(size)
	}
	return fmt.Errorf("fallocate: %w", err)
}

// errNoFallocate: the platform or filesystem cannot reserve space.
var errNoFallocate = errors.New("fallocate not supported")

// scanResult is what a segment holds.
type scanResult struct {
	recs []record // records of complete batches, in order
	end  int      // offset just past the last complete batch: the append point
	// dirty is the offset just past the last non-zero byte when that lies
	// beyond end: [end, dirty) is a torn batch that must be zeroed.
	dirty int
	// stop is where decoding stopped (first invalid or zero header).
	stop int
}

// scanSegment decodes the batches in data. last says whether this is the
// newest segment, the only one allowed to end in a torn batch.
func scanSegment(data []byte, last bool) (scanResult, error) {
	var (
		res     scanResult
		pending []record
		open    = -1 // offset of the open batch's first record
		off     int
	)
	for off+headerSize <= len(data) && !isZeroHeader(data[off:]) {
		rec, err := decodeRecord(data[off:])
		if err != nil {
			break
		}
		want := uint64(off)
		if open >= 0 {
			want = uint64(open)
		}
		if rec.batch != want {
			break // a record of another batch: the previous one was torn
		}
		if open < 0 {
			open = off
		}
		pending = append(pending, rec)
		off += rec.size
		if rec.flags&flagBatchEnd != 0 {
			res.recs = append(res.recs, pending...)
			pending, open = pending[:0], -1
			res.end = off
		}
	}
	res.stop = off
	nz := lastNonZero(data)
	if nz <= res.end {
		return res, nil // clean: only zeros after the last batch
	}
	res.dirty = nz
	if !last {
		return res, fmt.Errorf("%w: invalid data at offset %d of a sealed segment", ErrCorrupt, res.stop)
	}
	// Torn unless a later batch is intact beyond the bad spot: records of
	// the torn batch itself (batch == end) may survive around a hole.
	for y := padded(res.stop + 1); y+headerSize <= nz; y += align {
		if isZeroHeader(data[y:]) {
			continue
		}
		rec, err := decodeRecord(data[y:])
		if err == nil && rec.batch != uint64(res.end) {
			return res, fmt.Errorf("%w: invalid data at offset %d is followed by a valid record at offset %d",
				ErrCorrupt, res.stop, y)
		}
	}
	return res, nil
}

// lastNonZero returns the offset just past the last non-zero byte of b.
func lastNonZero(b []byte) int {
	i := len(b)
	// Whole zero pages first: bytes.Equal is vectorized.
	for i >= len(zeroPage) && bytes.Equal(b[i-len(zeroPage):i], zeroPage[:]) {
		i -= len(zeroPage)
	}
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:]) == 0 {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return i
}

var zeroPage [4096]byte
