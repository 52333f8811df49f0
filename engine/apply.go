package engine

import (
	"fmt"
	"path"
	"time"

	"github.com/strata-kv/strata/backends"
)

// minExpiry mirrors etcd: expirations before 2000-01-01 mean "permanent".
var minExpiry = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// txn applies commands inside one backend update.
type txn struct {
	reader
	w          backends.Writer
	index      uint64 // current store index
	now        time.Time
	ttlTouched bool
	expired    []*Event // events of an OpExpire, one per removed node
	// files and dirs are the net number of nodes created (nodeCount).
	files, dirs int64
}

func (t *txn) apply(c *Command) (*Event, error) {
	switch c.Op {
	case OpSet:
		return t.set(c)
	case OpCreate:
		return t.create(c.Path, c.Dir, c.Value, c.Unique, false, c.Expiration, ActionCreate)
	case OpUpdate:
		return t.update(c)
	case OpCAS:
		return t.compareAndSwap(c)
	case OpDelete:
		return t.delete(c)
	case OpCAD:
		return t.compareAndDelete(c)
	case OpExpire:
		return t.expire(c)
	}
	return nil, fmt.Errorf("engine: unknown op %d", c.Op)
}

func (t *txn) put(p string, rec *record) error { return t.w.Put(t.nodeKey(p), rec.marshal()) }

func (t *txn) setTTL(p string, rec *record, expiry int64) error {
	if expiry < minExpiry {
		expiry = 0
	}
	if rec.expiry == expiry {
		return nil
	}
	t.ttlTouched = true
	if rec.expiry != 0 {
		if err := t.w.Delete(ttlKey(rec.expiry, p)); err != nil {
			return err
		}
	}
	rec.expiry = expiry
	if expiry != 0 {
		return t.w.Put(ttlKey(expiry, p), nil)
	}
	return nil
}

func (t *txn) set(c *Command) (*Event, error) {
	rec, err := t.lookup(c.Path, t.index)
	exists := err == nil
	if err != nil && !IsCode(err, EcodeKeyNotFound) {
		return nil, err
	}
	value := c.Value
	if c.Refresh {
		if !exists {
			return nil, err
		}
		value = rec.value
	}
	ev, err := t.create(c.Path, c.Dir, value, false, true, c.Expiration, ActionSet)
	if ev != nil && c.Refresh {
		ev.Refresh = true
	}
	return ev, err
}

// create is etcd's internalCreate: make p (a file or directory) and any
// missing parent directories, at the next index. With replace an existing
// file is replaced; an existing directory never is.
func (t *txn) create(p string, dir bool, value string, unique, replace bool, expiry int64, action string) (*Event, error) {
	cur, next := t.index, t.index+1
	if unique {
		p = path.Join(p, fmt.Sprintf("%020d", next))
	}
	if p == "/" {
		return nil, NewError(EcodeRootROnly, "/", cur)
	}
	if expiry < minExpiry {
		expiry = 0
	}
	old, exists, err := t.get(p)
	if err != nil {
		return nil, err
	}
	ev := &Event{Action: action, EtcdIndex: next}
	if exists {
		if !replace {
			return nil, NewError(EcodeNodeExist, p, cur)
		}
		if old.dir {
			return nil, NewError(EcodeNotFile, p, cur)
		}
		ev.PrevNode = old.repr(p, t.now)
		if old.expiry != 0 {
			t.ttlTouched = true
			if err := t.w.Delete(ttlKey(old.expiry, p)); err != nil {
				return nil, err
			}
		}
	} else if err := t.ensureDir(path.Dir(p), next); err != nil {
		return nil, err
	}
	rec := record{dir: dir, created: next, modified: next}
	if !dir {
		rec.value = value
	}
	if err := t.setTTL(p, &rec, expiry); err != nil {
		return nil, err
	}
	if err := t.put(p, &rec); err != nil {
		return nil, err
	}
	if !exists {
		t.countNode(dir, 1)
	}
	t.index = next
	ev.Node = rec.repr(p, t.now)
	return ev, nil
}

// ensureDir makes sure dir exists as a directory, creating it and its
// missing ancestors at index next (etcd's checkDir walk).
func (t *txn) ensureDir(dir string, next uint64) error {
	rec, ok, err := t.get(dir)
	if err != nil {
		return err
	}
	if ok {
		if !rec.dir {
			return NewError(EcodeNotDir, dir, t.index)
		}
		return nil
	}
	if err := t.ensureDir(path.Dir(dir), next); err != nil {
		return err
	}
	if err := t.put(dir, &record{dir: true, created: next, modified: next}); err != nil {
		return err
	}
	t.countNode(true, 1)
	return nil
}

func (t *txn) countNode(dir bool, n int64) {
	if dir {
		t.dirs += n
	} else {
		t.files += n
	}
}

// existing is the node an update, swap or delete acts on: the root is
// read-only (error 107), a missing key is error 100.
func (t *txn) existing(p string) (record, error) {
	if p == "/" {
		return record{}, NewError(EcodeRootROnly, "/", t.index)
	}
	return t.lookup(p, t.index)
}

func (t *txn) update(c *Command) (*Event, error) {
	p, cur := c.Path, t.index
	rec, err := t.existing(p)
	if err != nil {
		return nil, err
	}
	value := c.Value
	if rec.dir && value != "" {
		return nil, NewError(EcodeNotFile, p, cur)
	}
	if c.Refresh {
		value = rec.value
	}
	ev := &Event{Action: ActionUpdate, EtcdIndex: cur + 1, PrevNode: rec.repr(p, t.now), Refresh: c.Refresh}
	if !rec.dir {
		rec.value = value
	}
	if ev.Node, err = t.rewrite(p, &rec, c.Expiration); err != nil {
		return nil, err
	}
	return ev, nil
}

// rewrite stores rec back at p, modified at the next index with the given
// TTL, and returns the node as the event reports it.
func (t *txn) rewrite(p string, rec *record, expiry int64) (*Node, error) {
	next := t.index + 1
	rec.modified = next
	if err := t.setTTL(p, rec, expiry); err != nil {
		return nil, err
	}
	if err := t.put(p, rec); err != nil {
		return nil, err
	}
	t.index = next
	return rec.repr(p, t.now), nil
}

// compare checks prevValue/prevIndex against rec; on a mismatch cause is
// error 101's cause, formatted exactly as etcd does.
func compare(rec *record, prevValue string, prevIndex uint64) (ok bool, cause string) {
	indexOK := prevIndex == 0 || rec.modified == prevIndex
	valueOK := prevValue == "" || rec.value == prevValue
	switch {
	case indexOK && valueOK:
		return true, ""
	case indexOK:
		return false, fmt.Sprintf("[%v != %v]", prevValue, rec.value)
	case valueOK:
		return false, fmt.Sprintf("[%v != %v]", prevIndex, rec.modified)
	default:
		return false, fmt.Sprintf("[%v != %v] [%v != %v]", prevValue, rec.value, prevIndex, rec.modified)
	}
}

func (t *txn) compareAndSwap(c *Command) (*Event, error) {
	p, cur := c.Path, t.index
	rec, err := t.existing(p)
	if err != nil {
		return nil, err
	}
	if rec.dir {
		return nil, NewError(EcodeNotFile, p, cur)
	}
	if ok, cause := compare(&rec, c.PrevValue, c.PrevIndex); !ok {
		return nil, NewError(EcodeTestFailed, cause, cur)
	}
	value := c.Value
	if c.Refresh {
		value = rec.value
	}
	ev := &Event{Action: ActionCompareAndSwap, EtcdIndex: cur + 1, PrevNode: rec.repr(p, t.now), Refresh: c.Refresh}
	rec.value = value
	if ev.Node, err = t.rewrite(p, &rec, c.Expiration); err != nil {
		return nil, err
	}
	return ev, nil
}

func (t *txn) delete(c *Command) (*Event, error) {
	p, cur := c.Path, t.index
	dir := c.Dir || c.Recursive
	rec, err := t.existing(p)
	if err != nil {
		return nil, err
	}
	if rec.dir {
		if !dir {
			return nil, NewError(EcodeNotFile, p, cur)
		}
		if !c.Recursive {
			has, err := t.hasChildren(p)
			if err != nil {
				return nil, err
			}
			if has {
				return nil, NewError(EcodeDirNotEmpty, p, cur)
			}
		}
	}
	return t.remove(p, &rec, ActionDelete)
}

func (t *txn) compareAndDelete(c *Command) (*Event, error) {
	p, cur := c.Path, t.index
	rec, err := t.lookup(p, cur)
	if err != nil {
		return nil, err
	}
	if rec.dir {
		cause := p
		if p == "/" {
			cause = "" // etcd trims its internal prefix to nothing here
		}
		return nil, NewError(EcodeNotFile, cause, cur)
	}
	if ok, cause := compare(&rec, c.PrevValue, c.PrevIndex); !ok {
		return nil, NewError(EcodeTestFailed, cause, cur)
	}
	return t.remove(p, &rec, ActionCompareAndDelete)
}

// remove deletes p and everything below it at the next index.
func (t *txn) remove(p string, rec *record, action string) (*Event, error) {
	next := t.index + 1
	ev := &Event{
		Action:    action,
		EtcdIndex: next,
		Node:      &Node{Key: p, Dir: rec.dir, CreatedIndex: rec.created, ModifiedIndex: next},
		PrevNode:  rec.repr(p, t.now),
	}
	var removed *[]string
	if rec.dir {
		removed = &ev.removed
	}
	if err := t.removeTree(p, rec, removed); err != nil {
		return nil, err
	}
	t.index = next
	return ev, nil
}

func (t *txn) removeTree(p string, rec *record, removed *[]string) error {
	if rec.dir {
		type child struct {
			p   string
			rec record
		}
		var kids []child
		start, end := childRange(p)
		var ierr error
		err := t.r.Ascend(start, end, func(k, v []byte) bool {
			r, err := unmarshalRecord(v)
			if err != nil {
				ierr = err
				return false
			}
			kids = append(kids, child{pathOfNodeKey(k), r})
			return true
		})
		if err == nil {
			err = ierr
		}
		if err != nil {
			return err
		}
		for i := range kids {
			if err := t.removeTree(kids[i].p, &kids[i].rec, removed); err != nil {
				return err
			}
		}
	}
	if rec.expiry != 0 {
		t.ttlTouched = true
		if err := t.w.Delete(ttlKey(rec.expiry, p)); err != nil {
			return err
		}
	}
	if removed != nil {
		*removed = append(*removed, p)
	}
	t.countNode(rec.dir, -1)
	return t.w.Delete(t.nodeKey(p))
}

// expire removes the nodes whose deadline is at or before c.Time, earliest
// first, at most c.Limit of them (0: all), each at its own index. A path
// other than the root names the one node to consider: a mirror of another
// store replays that store's expiry of one node exactly.
func (t *txn) expire(c *Command) (*Event, error) {
	if c.Path != "" && c.Path != "/" {
		rec, ok, err := t.get(c.Path)
		if err != nil || !ok || rec.expiry == 0 || rec.expiry > c.Time {
			return nil, err
		}
		ev, err := t.remove(c.Path, &rec, ActionExpire)
		if err != nil {
			return nil, err
		}
		t.expired = append(t.expired, ev)
		return nil, nil
	}
	type due struct {
		at int64
		p  string
	}
	var list []due
	err := t.r.Ascend(ttlStart, ttlEnd, func(k, _ []byte) bool {
		at, p := parseTTLKey(k)
		if at > c.Time {
			return false
		}
		list = append(list, due{at, p})
		return c.Limit == 0 || uint32(len(list)) < c.Limit
	})
	if err != nil {
		return nil, err
	}
	for _, d := range list {
		rec, ok, err := t.get(d.p)
		if err != nil {
			return nil, err
		}
		if !ok || rec.expiry != d.at {
			// Removed with an ancestor earlier in this pass, or a stale
			// index entry: drop it so the scheduler always makes progress.
			if err := t.w.Delete(ttlKey(d.at, d.p)); err != nil {
				return nil, err
			}
			continue
		}
		ev, err := t.remove(d.p, &rec, ActionExpire)
		if err != nil {
			return nil, err
		}
		t.expired = append(t.expired, ev)
	}
	return nil, nil
}
