package main

// strata migrate: copy a stopped member's data dir to a new one on another
// backend, verified key by key. See docs/operations.md.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/server"
)

func init() { subcommands["migrate"] = migrate }

const migrateUsage = `usage: strata migrate --from-dir DIR --to-dir NEWDIR --backend NAME

Copies the data dir of a stopped member into NEWDIR (new or empty) on
backend NAME: the backend state with every committed raft entry applied,
plus the raft log and snapshots verbatim, so a member started with
--data-dir NEWDIR --backend NAME is the same member at the same indexes.
Every key and value is compared with the source before NEWDIR is marked
complete. The source keeps its data (a start or migrate replays its log).

`

// migrateProgressEvery is how often a long copy reports progress.
var migrateProgressEvery = time.Second

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subcommandFlags("strata migrate", migrateUsage, stderr)
	from := fs.String("from-dir", "", "data dir of the stopped member to copy")
	to := fs.String("to-dir", "", "new data dir to create (must not exist or be empty)")
	backend := fs.String("backend", "", "backend of the new data dir: "+fmt.Sprint(backends.Names()))
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))
	case *from == "" || *to == "" || *backend == "":
		return errors.New("migrate: --from-dir, --to-dir and --backend are all required")
	}
	if err := checkBackend("migrate", *backend); err != nil {
		return err
	}
	log, err := subcommandLogger("migrate", *logLevel, stderr)
	if err != nil {
		return err
	}
	if err := runMigrate(ctx, *from, *to, *backend, log, stdout); err != nil {
		return fmt.Errorf("migrate %s to %s: %w", *from, *to, err)
	}
	return nil
}

func runMigrate(ctx context.Context, from, to, backend string, log *slog.Logger, out io.Writer) (err error) {
	start := time.Now()
	// The target first: a non-empty one is refused before the source is
	// opened (and its log replayed). Abort removes what was created.
	dst, err := server.CreateTarget(to, backend, log)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			dst.Abort()
		}
	}()
	src, err := server.OpenOffline(from, log)
	if err != nil {
		return err
	}
	defer src.Close()
	applied := src.Backend().AppliedIndex()
	fmt.Fprintf(out, "strata migrate: source %s: %s backend, log replayed to index %d\n", from, src.BackendName(), applied)

	prog := startProgress(out)
	defer prog.stop()
	prog.phase("copied")
	copied, err := copyStore(ctx, src.Backend(), dst.Backend(), prog)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	prog.phase("")
	reopened, files, size, err := dst.Seal(src)
	if err != nil {
		return err
	}
	prog.phase("verified")
	verified, err := verifyStores(ctx, src.Backend(), reopened, prog)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if verified.keys != copied.keys || !bytes.Equal(verified.sum, copied.sum) {
		return fmt.Errorf("verify: the copy wrote %d keys (sha256 %x) but %d keys (sha256 %x) were read back",
			copied.keys, copied.sum, verified.keys, verified.sum)
	}
	prog.stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := dst.Commit(); err != nil {
		return err
	}
	committed = true
	secs := time.Since(start).Seconds()
	fmt.Fprintf(out, "strata migrate: done: %d keys (%s) copied from %s (%s) to %s (%s) and verified; sha256 %s; applied index %d; raft log and snapshots: %d files, %s; %.2fs, %.0f keys/s\n",
		verified.keys, mib(verified.bytes), from, src.BackendName(), to, backend, hex.EncodeToString(verified.sum[:8]),
		applied, files, mib(size), secs, float64(verified.keys)/secs)
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// progress prints the keys done so far once a second while a phase runs.
type progress struct {
	out   io.Writer
	keys  atomic.Int64
	bytes atomic.Int64
	mu    sync.Mutex
	name  string
	since time.Time
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func startProgress(out io.Writer) *progress {
	p := &progress{out: out, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(migrateProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.mu.Lock()
				name, since := p.name, p.since
				p.mu.Unlock()
				if name == "" {
					continue // between phases
				}
				k := p.keys.Load()
				fmt.Fprintf(p.out, "strata migrate: %s %d keys (%s), %.0f keys/s\n",
					name, k, mib(p.bytes.Load()), float64(k)/time.Since(since).Seconds())
			}
		}
	}()
	return p
}

func (p *progress) phase(name string) {
	p.mu.Lock()
	p.name, p.since = name, time.Now()
	p.keys.Store(0)
	p.bytes.Store(0)
	p.mu.Unlock()
}

func (p *progress) add(k, v []byte) {
	p.keys.Add(1)
	p.bytes.Add(int64(len(k) + len(v)))
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.quit); <-p.done })
}

// storeSum counts and hashes the records of a store: sha256 over
// uvarint(len(key)) key uvarint(len(value)) value, in key order.
type storeSum struct {
	keys, bytes int64
	h           hash.Hash
	sum         []byte
	tmp         [binary.MaxVarintLen64]byte
}

func newStoreSum() *storeSum { return &storeSum{h: sha256.New()} }

func (s *storeSum) add(k, v []byte) {
	s.keys++
	s.bytes += int64(len(k) + len(v))
	s.h.Write(binary.AppendUvarint(s.tmp[:0], uint64(len(k))))
	s.h.Write(k)
	s.h.Write(binary.AppendUvarint(s.tmp[:0], uint64(len(v))))
	s.h.Write(v)
}

func (s *storeSum) finish() *storeSum { s.sum = s.h.Sum(nil); return s }

// errStopped closes the pipes of a pipeline that ended early elsewhere;
// errors carrying it are consequences, not causes.
var errStopped = errors.New("pipeline stopped")

// firstCause returns the first error that is not merely errStopped.
func firstCause(errs ...error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, errStopped) {
			return err
		}
	}
	return errors.Join(errs...)
}

func closeWith(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// copyStore streams src's portable snapshot into dst.Restore, counting and
// hashing every record on the way (the source stream's checksum is
// verified as it passes; a bad one leaves the stream to dst without its
// trailer, so Restore fails).
func copyStore(ctx context.Context, src, dst backends.Backend, prog *progress) (*storeSum, error) {
	applied := src.AppliedIndex()
	pr1, pw1 := io.Pipe()
	pr2, pw2 := io.Pipe()
	stopCtx := context.AfterFunc(ctx, func() {
		pr1.CloseWithError(ctx.Err())
		pr2.CloseWithError(ctx.Err())
	})
	defer stopCtx()

	var srcErr, midErr error
	sum := newStoreSum()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if srcErr = src.Snapshot(pw1); srcErr != nil {
			srcErr = fmt.Errorf("snapshot source: %w", srcErr)
		}
		pw1.CloseWithError(closeWith(srcErr))
	}()
	go func() {
		defer wg.Done()
		midErr = backends.WriteSnapshot(pw2, applied, func(emit func(k, v []byte) error) error {
			got, err := backends.ReadSnapshot(pr1, func(k, v []byte) error {
				sum.add(k, v)
				prog.add(k, v)
				return emit(k, v)
			})
			if err == nil && got != applied {
				err = fmt.Errorf("source snapshot is at applied index %d, its backend at %d", got, applied)
			}
			return err
		})
		pr1.CloseWithError(errStopped)
		pw2.CloseWithError(closeWith(midErr))
	}()
	rstErr := dst.Restore(pr2)
	if rstErr != nil {
		rstErr = fmt.Errorf("restore into destination: %w", rstErr)
	}
	pr2.CloseWithError(errStopped)
	wg.Wait()
	if err := firstCause(ctx.Err(), srcErr, midErr, rstErr); err != nil {
		return nil, err
	}
	if got := dst.AppliedIndex(); got != applied {
		return nil, fmt.Errorf("destination is at applied index %d after restore, want %d", got, applied)
	}
	return sum.finish(), nil
}

// records streams a backend's snapshot in chunks, for a lockstep compare.
type records struct {
	ch      chan *recordChunk
	cur     *recordChunk
	i       int
	applied uint64
	err     error // valid once ch is closed
	wg      sync.WaitGroup
}

type recordChunk struct {
	buf  []byte
	ends []int // record i is buf[ends[2i-1]:ends[2i]] (key) and buf[ends[2i]:ends[2i+1]] (value), with ends[-1] = 0
}

const (
	chunkRecords = 1024
	chunkBytes   = 1 << 20
)

func (c *recordChunk) n() int { return len(c.ends) / 2 }

func (c *recordChunk) record(i int) (k, v []byte) {
	start := 0
	if i > 0 {
		start = c.ends[2*i-1]
	}
	return c.buf[start:c.ends[2*i]], c.buf[c.ends[2*i]:c.ends[2*i+1]]
}

func streamRecords(be backends.Backend, stop <-chan struct{}) *records {
	r := &records{ch: make(chan *recordChunk, 2)}
	pr, pw := io.Pipe()
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		err := be.Snapshot(pw)
		pw.CloseWithError(closeWith(err))
	}()
	go func() {
		defer r.wg.Done()
		defer close(r.ch)
		c := &recordChunk{}
		send := func() error {
			select {
			case r.ch <- c:
				c = &recordChunk{}
				return nil
			case <-stop:
				return errStopped
			}
		}
		r.applied, r.err = backends.ReadSnapshot(pr, func(k, v []byte) error {
			c.buf = append(c.buf, k...)
			c.ends = append(c.ends, len(c.buf))
			c.buf = append(c.buf, v...)
			c.ends = append(c.ends, len(c.buf))
			if c.n() >= chunkRecords || len(c.buf) >= chunkBytes {
				return send()
			}
			return nil
		})
		if r.err == nil && c.n() > 0 {
			r.err = send()
		}
		pr.CloseWithError(errStopped) // ends a Snapshot still writing
	}()
	return r
}

// next returns the next record, or ok == false at the end of the stream
// (r.err then tells whether it ended well).
func (r *records) next() (k, v []byte, ok bool) {
	for r.cur == nil || r.i >= r.cur.n() {
		c, ok := <-r.ch
		if !ok {
			return nil, nil, false
		}
		r.cur, r.i = c, 0
	}
	k, v = r.cur.record(r.i)
	r.i++
	return k, v, true
}

// verifyStores reads both stores' snapshots in lockstep and compares every
// key and value byte for byte, and the applied indexes.
func verifyStores(ctx context.Context, src, dst backends.Backend, prog *progress) (*storeSum, error) {
	stop := make(chan struct{})
	a, b := streamRecords(src, stop), streamRecords(dst, stop)
	defer func() {
		close(stop)
		for range a.ch {
		}
		for range b.ch {
		}
		a.wg.Wait()
		b.wg.Wait()
	}()
	sum := newStoreSum()
	for {
		if sum.keys%chunkRecords == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		k1, v1, ok1 := a.next()
		k2, v2, ok2 := b.next()
		switch {
		case !ok1 && !ok2:
			if err := firstCause(a.err, b.err); err != nil {
				return nil, fmt.Errorf("after %d keys: %w", sum.keys, err)
			}
			if a.applied != b.applied {
				return nil, fmt.Errorf("source is at applied index %d, destination at %d", a.applied, b.applied)
			}
			return sum.finish(), nil
		case !ok1:
			if a.err != nil {
				return nil, fmt.Errorf("read source after %d keys: %w", sum.keys, a.err)
			}
			return nil, fmt.Errorf("destination has key %q after the source's last key (key %d)", k2, sum.keys)
		case !ok2:
			if b.err != nil {
				return nil, fmt.Errorf("read destination after %d keys: %w", sum.keys, b.err)
			}
			return nil, fmt.Errorf("destination lacks key %q (key %d) and every key after it", k1, sum.keys)
		case !bytes.Equal(k1, k2):
			return nil, fmt.Errorf("key %d differs: source %q, destination %q", sum.keys, k1, k2)
		case !bytes.Equal(v1, v2):
			return nil, fmt.Errorf("value of key %q differs: source %d bytes, destination %d bytes", k1, len(v1), len(v2))
		}
		sum.add(k1, v1)
		prog.add(k1, v1)
	}
}
