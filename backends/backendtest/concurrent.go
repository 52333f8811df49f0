package backendtest

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strata-kv/strata/backends"
)

// testConcurrentReaders runs readers (View, Get, Ascend, Snapshot) against
// a writer doing many Updates. Each Update i sets "a" and "b" to i at
// applied index i and churns other keys, so every consistent state has
// a == b, and a snapshot's applied index equals its "a". Readers assert
// that, and that what they see never goes back in time. Run it with -race.
func (s *suite) testConcurrentReaders(t *testing.T) {
	const (
		updates = 1000
		readers = 4
		churn   = 50
	)
	b := s.fresh(t)
	put(t, b, 0, kv{"a", "0"}, kv{"b", "0"})

	var done atomic.Bool
	errs := make(chan error, readers+1)
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			var last uint64
			for n := 0; !done.Load() || n < 20; n++ {
				var seen uint64
				var err error
				if r == 0 && n%10 == 0 {
					seen, err = checkSnapshot(b)
				} else {
					seen, err = checkView(b)
				}
				if err == nil && seen < last {
					err = fmt.Errorf("went back in time: saw %d after %d", seen, last)
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d, read %d: %w", r, n, err)
					return
				}
				last = seen
			}
		}(r)
	}

	werr := func() error {
		defer done.Store(true)
		for i := uint64(1); i <= updates; i++ {
			v := strconv.AppendUint(nil, i, 10)
			err := b.Update(i, func(w backends.Writer) error {
				if err := w.Put([]byte("a"), v); err != nil {
					return err
				}
				if err := w.Put(fmt.Appendf(nil, "n/%02d", i%churn), v); err != nil {
					return err
				}
				if err := w.Delete(fmt.Appendf(nil, "n/%02d", (i+churn/2)%churn)); err != nil {
					return err
				}
				return w.Put([]byte("b"), v)
			})
			if err != nil {
				return fmt.Errorf("writer: Update(%d): %w", i, err)
			}
		}
		return nil
	}()
	if werr != nil {
		errs <- werr
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantIndex(t, b, updates)
}

// checkView verifies one View and returns the version it saw.
func checkView(b backends.Backend) (uint64, error) {
	floor := b.AppliedIndex() // the View starts later, so it sees at least this
	var seen uint64
	err := b.View(func(r backends.Reader) error {
		a, err := r.Get([]byte("a"))
		if err != nil {
			return fmt.Errorf("get a: %w", err)
		}
		bv, err := r.Get([]byte("b"))
		if err != nil {
			return fmt.Errorf("get b: %w", err)
		}
		if !bytes.Equal(a, bv) {
			return fmt.Errorf("torn batch: a=%s b=%s", a, bv)
		}
		if seen, err = strconv.ParseUint(string(a), 10, 64); err != nil {
			return err
		}
		if seen < floor {
			return fmt.Errorf("View saw version %d, older than AppliedIndex %d read before it", seen, floor)
		}
		// The same view, through Ascend, shows the same version.
		var sa, sb []byte
		var prev []byte
		var ordErr error
		err = r.Ascend(nil, nil, func(k, v []byte) bool {
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				ordErr = fmt.Errorf("Ascend out of order: %q after %q", k, prev)
				return false
			}
			prev = append(prev[:0], k...)
			switch string(k) {
			case "a":
				sa = bytes.Clone(v)
			case "b":
				sb = bytes.Clone(v)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("ascend: %w", err)
		}
		if ordErr != nil {
			return ordErr
		}
		if !bytes.Equal(sa, a) || !bytes.Equal(sb, a) {
			return fmt.Errorf("Ascend saw a=%s b=%s, Get saw %s in the same View", sa, sb, a)
		}
		return nil
	})
	return seen, err
}

// checkSnapshot verifies that a snapshot is one consistent version whose
// applied index matches its content.
func checkSnapshot(b backends.Backend) (uint64, error) {
	var buf bytes.Buffer
	if err := b.Snapshot(&buf); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	var a, bv []byte
	idx, err := backends.ReadSnapshot(&buf, func(k, v []byte) error {
		switch string(k) {
		case "a":
			a = bytes.Clone(v)
		case "b":
			bv = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	if want := strconv.AppendUint(nil, idx, 10); !bytes.Equal(a, want) || !bytes.Equal(bv, want) {
		return 0, fmt.Errorf("snapshot at index %d holds a=%s b=%s", idx, a, bv)
	}
	return idx, nil
}
