// Package bbolt implements the "bbolt" backend: Strata's key space in a
// single go.etcd.io/bbolt file, <Options.Dir>/strata.db.
//
// # Layout
//
// The file holds two buckets. "data" maps each Strata key to its value,
// byte for byte, except the empty key, which bbolt cannot store: its value
// lives in "meta" under emptyKeyName. "meta" also holds the applied raft
// index (8 bytes, big-endian) and a format version. An Update runs fn and
// writes the applied index in one bbolt read-write transaction, so the
// index is always consistent with the data, on disk as in memory.
//
// # Concurrency
//
// View and Snapshot run in bbolt read-only transactions: any number of them
// run alongside the single writer and see one committed state. Update,
// Restore, Sync and Close are serialized by a mutex. Two bbolt rules carry
// over: do not call Update, Restore or Close from inside a View (the write
// may need to remap the file, or Close/Restore to close it, and both wait
// for every open read transaction, including the caller's own), and a
// Reader must not be shared between goroutines.
//
// # Durability
//
// By default every commit is durable: bbolt writes the transaction's pages,
// fdatasyncs, writes the meta page and fdatasyncs again before Update
// returns. The file is then the durable copy of the store
// (backends.Durable): Strata's raft snapshots record only where the log may
// restart, with no image of the data, and a restart opens the file and
// replays the log after its applied index. Strata applies each batch of
// committed raft entries (merged while the previous commit ran) as one
// Update, off the raft loop, so these fdatasyncs overlap the raft log's.
// What a failure loses: nothing that was committed, after a process crash
// or a power loss alike; a commit cut short never wrote its meta page, and
// bbolt falls back to the previous one (meta pages carry a checksum).
//
// With Options.UnsafeNoFsync (--unsafe-no-fsync) commits skip fsync
// (NoSync): an Update costs page-cache writes only. Then:
//
//   - Process crash (SIGKILL, panic, OOM kill): nothing that was
//     committed. Every Update that returned nil has been written (pwrite)
//     into the kernel page cache, which outlives the process and is written
//     back by the kernel. An Update cut short never wrote its meta page:
//     its pages went to free pages that no committed tree references, so
//     the previous meta page and tree are intact. On reopen the file is
//     consistent at the last successful Update.
//
//   - Power loss, kernel crash, VM reset (the page cache is lost): the
//     file may be CORRUPT, not merely behind. Since the last fdatasync the
//     kernel has written back an arbitrary subset of the pages committed
//     since, in any order, possibly torn at sector size. The newest meta
//     page on disk may reference pages that never reached the disk; worse,
//     even the tree of the last synced meta page is not safe, because pages
//     it references were freed by the next commits and reused by later
//     ones, whose writes may have reached the disk while their meta pages
//     did not. bbolt checksums only meta pages, so such damage is not
//     reliably detectable: it can surface as a panic while bbolt rebuilds
//     its freelist at open, or as silently wrong values.
//
// The package therefore refuses to open a file that may have lost its page
// cache. In UnsafeNoFsync mode, before the first commit after a sync it
// durably writes a marker file, strata.db.unsynced, holding the kernel's
// boot ID (/proc/sys/kernel/random/boot_id); a successful Sync, Restore or
// Close removes it. Open (in either mode) finds one of three cases:
//
//   - no marker: the file was fully synced; open it.
//   - a marker from this boot: the previous process died but the page
//     cache survived (the crash case above); open, fdatasync, remove it.
//   - a marker from another boot (or an unknown boot ID, e.g. off Linux):
//     the machine went down with unsynced commits; Open fails with
//     ErrUnsafeShutdown and leaves the file alone.
//
// Recovering from ErrUnsafeShutdown means discarding the backend directory
// and rebuilding the store from something else: a raft snapshot that
// carries an image (data dirs written by earlier Strata versions, which
// took image snapshots of every backend, or migrated from memory), the
// whole raft log if it still starts at index 1, or a leader's snapshot.
// Since snapshots of a durable backend carry no image, a member run with
// --unsafe-no-fsync usually has none of these after a power loss and
// cannot start until the operator deletes the marker (accepting whatever
// the file holds) or restores a backup: that is the risk the flag takes.
// A clean OS reboot after a process crash (marker left, page cache written
// back on shutdown) is reported the same way.
//
// # bbolt options
//
// Each is chosen in openDB; see the comments there. In short: NoSync only
// with UnsafeNoFsync, NoFreelistSync and the map freelist (no
// freelist write per commit, fast allocation in a large fragmented file; the
// cost is a scan of every page at open), a large InitialMmapSize (remaps
// wait for every reader, so a long Snapshot would stall the writer), and a
// flock Timeout (a second process fails instead of hanging).
//
// # Size limits
//
// bbolt limits keys to 32 KiB (bbolt.MaxKeySize); Put of a longer key and
// Restore of a stream holding one fail. Values may be up to
// backends.MaxSnapshotValueSize.
//
// # Memory
//
// Data is read through bbolt's read-only mmap, which is page cache, not Go
// heap. The heap holds no per-key structure: only the nodes an open write
// transaction dirties, bbolt's freelist (proportional to free pages), and,
// at open, a map of reachable pages built once to rebuild the freelist.
// Restore commits every restoreChunkKeys keys or restoreChunkBytes bytes so
// its dirty set stays bounded however large the snapshot.
package bbolt
