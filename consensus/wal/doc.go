// Package wal is Strata's write-ahead log for raft: entries, HardState and
// snapshot markers, appended in group-committed batches to preallocated
// segment files and made durable with fdatasync.
//
// It is purpose-built rather than borrowed: etcd's wal package drags in zap
// and prometheus, and tidwall/wal neither preallocates segments nor lets the
// caller decide when to fdatasync. Here a segment is fallocate'd up front so
// that an append followed by fdatasync never changes file-size metadata, and
// one raft Ready (entries + HardState) is one write(2) and at most one
// fdatasync(2).
//
// # On-disk format
//
// A segment is named "<seq>-<firstIndex>.wal" (both 16 hex digits): seq
// orders the segments, firstIndex is the index the next appended entry had
// when the segment was cut. A segment is a sequence of 8-byte aligned
// records followed by zeros (the preallocated, never-written area). Each
// record is
//
//	crc32c u32 | length u32 | type u8 | flags u8 | 6 zero bytes | batch u64 | payload | zero pad to 8
//
// where crc32c (Castagnoli) covers everything after itself up to the end of
// the payload, batch is the segment offset of the first record of the write
// batch the record belongs to, and flags marks the last record of a batch.
// A batch is applied on replay only once its last record has been read, so
// one Save is atomic.
//
// # Failure modes
//
// A crash can tear only the batch being written (it was never fdatasync'd,
// so it was never acknowledged): on Open the torn batch at the tail of the
// last segment is logged, zeroed and cut, whether it shows as a short
// record, a bad CRC or zeros. Any invalid data that is followed by a valid
// record of a *later* batch, or any invalid data in a segment that is not
// the last one, is mid-log corruption: Open refuses with ErrCorrupt rather
// than silently dropping acknowledged data.
//
// A later batch that re-appends an index at a new term (a leader change)
// replaces the old suffix from that index on replay, as in etcd's wal.
package wal
