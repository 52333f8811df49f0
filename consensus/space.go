package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/consensus/wal"
	"github.com/strata-kv/strata/internal/fsutil"
)

// ErrNoSpace is etcd's NOSPACE alarm: the member's disk is (nearly) full,
// so it refuses writes until space returns. Reads and watches go on.
var ErrNoSpace = errors.New("etcdserver: no space")

// Why the alarm is raised. The hard sources mean this member cannot make
// progress at all (a Ready or an applied batch waits for space); the soft
// ones warn early, while the reserve still absorbs what is in flight.
const (
	spaceDisk     = iota // soft: free bytes under Config.SpaceReserve
	spacePrealloc        // soft: the next WAL segment cannot be preallocated
	spaceWALWrite        // hard: a Ready could not be made durable
	spaceApply           // hard: the state machine's storage refused a batch
	nSpaceSources
)

const (
	defaultSpaceReserve = 16 << 20
	defaultSpaceProbe   = 100 * time.Millisecond
)

// spaceAlarm is the member's NOSPACE alarm: raised while any source has a
// cause, logged once when raised and once when cleared.
type spaceAlarm struct {
	log *slog.Logger
	dir string

	mu     sync.Mutex
	causes [nSpaceSources]string
	since  time.Time

	err    atomic.Pointer[error] // nil: no alarm
	hardOn atomic.Bool
	raised atomic.Uint64
}

func (a *spaceAlarm) set(src int, cause string) { a.update(src, cause) }
func (a *spaceAlarm) clear(src int)             { a.update(src, "") }

func (a *spaceAlarm) update(src int, cause string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.causes[src] == cause {
		return
	}
	was := a.err.Load() != nil
	a.causes[src] = cause
	a.hardOn.Store(a.causes[spaceWALWrite] != "" || a.causes[spaceApply] != "")
	var parts []string
	for _, c := range a.causes {
		if c != "" {
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		a.err.Store(nil)
		if was {
			a.log.Warn("consensus: NOSPACE alarm cleared, writes resume", "dir", a.dir, "after", time.Since(a.since).Round(time.Millisecond))
		}
		return
	}
	err := fmt.Errorf("%w: data dir %s is out of disk space (%s)", ErrNoSpace, a.dir, strings.Join(parts, "; "))
	a.err.Store(&err)
	if !was {
		a.since = time.Now()
		a.raised.Add(1)
		a.log.Error("consensus: NOSPACE alarm raised, refusing writes until space returns", "err", err)
	}
}

// current returns the alarm's error, nil when it is not raised.
func (a *spaceAlarm) current() error {
	if p := a.err.Load(); p != nil {
		return *p
	}
	return nil
}

// errOr is current, or a bare ErrNoSpace while the alarm is being set.
func (a *spaceAlarm) errOr() error {
	if err := a.current(); err != nil {
		return err
	}
	return ErrNoSpace
}

// hard reports whether the member is stalled for want of space.
func (a *spaceAlarm) hard() bool { return a.hardOn.Load() }

// SpaceErr returns the NOSPACE alarm (wrapping ErrNoSpace) while it is
// raised, else nil. Writes should be refused meanwhile; deletes may pass
// while only the early warning is up (they need little space and free it).
func (n *Replica[R]) SpaceErr() error { return n.space.current() }

// SpaceStalled reports whether the member cannot write at all: a WAL
// write or a state machine batch waits for space (proposals fail).
func (n *Replica[R]) SpaceStalled() bool { return n.space.hard() }

// SpaceAlarms counts how many times the NOSPACE alarm was raised.
func (n *Replica[R]) SpaceAlarms() uint64 { return n.space.raised.Load() }

// probeSpace raises or clears the soft alarm from the free bytes on the
// data dir's file system; run every SpaceProbeInterval until the member stops.
func (n *Replica[R]) probeSpace() {
	if n.cfg.SpaceReserve < 0 {
		return
	}
	t := time.NewTicker(n.cfg.SpaceProbeInterval)
	defer t.Stop()
	for {
		n.checkFree()
		select {
		case <-n.done:
			return
		case <-t.C:
		}
	}
}

func (n *Replica[R]) checkFree() {
	free, err := fsutil.FreeBytes(n.cfg.DataDir)
	if err != nil {
		return // not a space problem; the writes will say what is wrong
	}
	// An in-memory state machine's snapshots are whole images: keep room
	// for the next one, so the member can always compact its own log.
	if reserve := uint64(n.cfg.SpaceReserve) + n.imageReserve(); free < reserve {
		n.space.set(spaceDisk, fmt.Sprintf("%d bytes free, under the %d byte reserve", free, reserve))
		return
	}
	n.space.clear(spaceDisk)
}

// imageReserve is the size of the largest snapshot file kept, for a state
// machine whose snapshots carry an image (0 for a durable one).
func (n *Replica[R]) imageReserve() uint64 {
	if n.durable {
		return 0
	}
	des, err := os.ReadDir(filepath.Join(n.cfg.DataDir, "snap"))
	if err != nil {
		return 0
	}
	var largest int64
	for _, de := range des {
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() > largest {
			largest = fi.Size()
		}
	}
	return uint64(largest)
}

// retryable reports whether a storage failure may succeed later, when
// space returns; anything else (EIO, a failed fsync) is fatal.
func retryable(err error) bool {
	return fsutil.IsNoSpace(err) && !errors.Is(err, wal.ErrFailed)
}

// stall keeps a Ready whose write failed for want of space, raising the
// alarm; any other failure is returned (fatal).
func (n *Replica[R]) stall(p *pendingReady, err error) error {
	if !retryable(err) {
		return err
	}
	n.space.set(spaceWALWrite, err.Error())
	// Proposals already in this Ready are not failed: their entries are
	// written once space returns and may then commit, so only their
	// deadline answers them (ErrTimeout says "unknown", NOSPACE would lie).
	// New ones are refused at once (propose).
	n.stuck = p
	return nil
}

// retryStuck retries the stuck Ready, then handles what raft has since.
func (n *Replica[R]) retryStuck() error {
	if err := n.persistReady(n.stuck); err != nil {
		return err
	}
	if n.stuck != nil {
		return nil
	}
	return n.processReady()
}

// prepareWAL preallocates the next WAL segment when it is due, and keeps
// the alarm's early warning in step with whether it could.
func (n *Replica[R]) prepareWAL() {
	err := n.wal.PrepareNext()
	switch {
	case err == nil:
		n.space.clear(spacePrealloc)
	case fsutil.IsNoSpace(err) && n.cfg.SpaceReserve < 0:
		// No early warning wanted: the cut will fail (and stall) if
		// space is still short then.
	case fsutil.IsNoSpace(err):
		free, _ := fsutil.FreeBytes(n.cfg.DataDir)
		n.space.set(spacePrealloc, fmt.Sprintf("%v (%d bytes free)", err, free))
	default:
		n.log.Warn("consensus: preallocate next wal segment", "err", err) // the cut will retry
	}
}

// dropWhileStalled drops messages a member stalled for want of space must
// not act on: all of them while a Ready waits (frozen), appends, snapshots
// and forwarded proposals while the applier waits. It falls behind
// instead, and never acknowledges what it could not store.
func (n *Replica[R]) dropWhileStalled(m raftpb.Message) bool {
	if n.stuck != nil {
		return true
	}
	if !n.space.hard() {
		return false
	}
	switch m.Type {
	case raftpb.MsgApp, raftpb.MsgSnap, raftpb.MsgProp:
		return true
	}
	return false
}
