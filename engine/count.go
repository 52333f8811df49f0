package engine

import (
	"fmt"
	"sync"

	"github.com/strata-kv/strata/backends"
)

// nodeCount keeps the number of files and directories in the store
// without scanning it at every read: ApplyBatch adds each batch's net
// change (cum), and one scan, run off the apply path, fixes the base the
// changes are counted from. The scan reads a consistent backend view at
// store index X while batches go on being applied; batches applied while
// it runs are logged with the store index they end at, so the change
// already in the view is known exactly: base = scanned - cum at X. (Every
// batch that creates or removes a node moves the store index, and a view
// holds either all of a batch or none of it.)
type nodeCount struct {
	mu          sync.Mutex
	files, dirs int64 // net change applied since Open or the last Restore
	known       bool
	baseFiles   int64
	baseDirs    int64
	counting    bool
	gen         uint64 // bumped by Restore: a scan of an older generation is void
	startFiles  int64  // files, dirs when the scan began
	startDirs   int64
	log         []countStep
	err         error // the last scan's failure, if any
}

type countStep struct {
	index       uint64 // store index after the batch
	files, dirs int64  // cum after the batch
}

// add records a batch's net change, ending at store index index.
func (c *nodeCount) add(index uint64, files, dirs int64) {
	if files == 0 && dirs == 0 {
		return
	}
	c.mu.Lock()
	c.files += files
	c.dirs += dirs
	if c.counting {
		c.log = append(c.log, countStep{index, c.files, c.dirs})
	}
	c.mu.Unlock()
}

// NodeCount returns the number of files (keys with a value) and of
// directories in the store, root excluded, hidden nodes (such as the auth
// data) included. ok is false until the count is known: the first call
// (or the first after a Restore) starts a scan of the node records in the
// background and returns at once; later calls return the count kept up
// to date by every applied batch. A failed scan is reported as err and
// retried by the next call.
func (e *Engine) NodeCount() (files, dirs uint64, ok bool, err error) {
	c := &e.count
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known {
		return uint64(c.baseFiles + c.files), uint64(c.baseDirs + c.dirs), true, nil
	}
	err, c.err = c.err, nil
	if !c.counting {
		c.counting = true
		c.startFiles, c.startDirs = c.files, c.dirs
		c.log = c.log[:0]
		go e.countNodes(c.gen)
	}
	return 0, 0, false, err
}

// countNodes scans the node records and fixes the count's base.
func (e *Engine) countNodes(gen uint64) {
	var files, dirs int64
	var at uint64
	err := e.be.View(func(r backends.Reader) error {
		var err error
		if at, err = metaIndex(r); err != nil {
			return err
		}
		var ierr error
		err = r.Ascend([]byte{prefixNode}, []byte{prefixNode + 1}, func(k, v []byte) bool {
			if len(k) <= 3 || string(k[3:]) == "/" {
				return true // the root
			}
			rec, err := unmarshalRecord(v)
			if err != nil {
				ierr = fmt.Errorf("node %q: %w", k[3:], err)
				return false
			}
			if rec.dir {
				dirs++
			} else {
				files++
			}
			return true
		})
		if err == nil {
			err = ierr
		}
		return err
	})
	c := &e.count
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // a Restore replaced the store meanwhile; it started over
	}
	c.counting = false
	if err != nil {
		c.err = fmt.Errorf("count nodes: %w", err)
		c.log = c.log[:0]
		return
	}
	cf, cd := c.startFiles, c.startDirs
	for _, s := range c.log {
		if s.index > at {
			break
		}
		cf, cd = s.files, s.dirs
	}
	c.baseFiles, c.baseDirs = files-cf, dirs-cd
	c.known = true
	c.log = nil
}

// resetCount forgets the count after Restore replaced the store.
func (c *nodeCount) reset() {
	c.mu.Lock()
	c.gen++
	c.files, c.dirs, c.known, c.counting, c.err = 0, 0, false, false, nil
	c.log = c.log[:0]
	c.mu.Unlock()
}
