package engine

import (
	"errors"
	"time"

	"github.com/strata-kv/strata/backends"
)

// rootRecord stands for "/", which is never stored: always a directory,
// with no indexes of its own.
var rootRecord = record{dir: true}

type reader struct {
	r backends.Reader
	// key is scratch space for building backend keys: backends copy keys
	// they keep, so one buffer serves every lookup of a transaction.
	key *scratch
}

// scratch holds a key buffer with room for typical keys inline, so a
// reader costs one allocation however many keys it builds.
type scratch struct {
	buf []byte
	arr [128]byte
}

func newReader(r backends.Reader) reader {
	s := new(scratch)
	s.buf = s.arr[:0]
	return reader{r: r, key: s}
}

// nodeKey builds p's backend key in the scratch buffer; valid until the
// next call.
func (rd reader) nodeKey(p string) []byte {
	rd.key.buf = appendNodeKey(rd.key.buf[:0], depth(p), p)
	return rd.key.buf
}

// get reads one node; ok is false if it does not exist.
func (rd reader) get(p string) (rec record, ok bool, err error) {
	if p == "/" {
		return rootRecord, true, nil
	}
	v, err := rd.r.Get(rd.nodeKey(p))
	if errors.Is(err, backends.ErrNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	rec, err = unmarshalRecord(v)
	return rec, err == nil, err
}

// lookup reads the node at p. Like etcd, a missing node is reported by the
// first path element that does not exist, and a file used as a directory
// by its own path (error 104). The error is an *Error for API errors.
func (rd reader) lookup(p string, cur uint64) (record, error) {
	rec, ok, err := rd.get(p)
	if err != nil || ok {
		return rec, err
	}
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		sub := p[:i]
		rec, ok, err := rd.get(sub)
		if err != nil {
			return rec, err
		}
		if !ok {
			return rec, NewError(EcodeKeyNotFound, sub, cur)
		}
		if !rec.dir && i < len(p) {
			return rec, NewError(EcodeNotDir, sub, cur)
		}
	}
	return rec, NewError(EcodeKeyNotFound, p, cur)
}

// children lists the non-hidden children of dir, in key order, with their
// own children too if recursive.
func (rd reader) children(dir string, recursive bool, now time.Time) ([]*Node, error) {
	start, end := childRange(dir)
	var out []*Node
	var dirs []int
	var ierr error
	err := rd.r.Ascend(start, end, func(k, v []byte) bool {
		p := pathOfNodeKey(k)
		if isHidden(p) {
			return true
		}
		rec, err := unmarshalRecord(v)
		if err != nil {
			ierr = err
			return false
		}
		if rec.dir && recursive {
			dirs = append(dirs, len(out))
		}
		out = append(out, rec.repr(p, now))
		return true
	})
	if err == nil {
		err = ierr
	}
	if err != nil {
		return nil, err
	}
	// Descend after the scan: some backends do not allow nested iteration.
	for _, i := range dirs {
		if out[i].Nodes, err = rd.children(out[i].Key, true, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hasChildren reports whether dir has any child, hidden ones included.
func (rd reader) hasChildren(dir string) (bool, error) {
	start, end := childRange(dir)
	found := false
	err := rd.r.Ascend(start, end, func(_, _ []byte) bool {
		found = true
		return false
	})
	return found, err
}
