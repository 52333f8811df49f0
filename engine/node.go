package engine

import (
	"encoding/binary"
	"errors"
	"time"
)

// record is a node as stored in the backend.
type record struct {
	dir      bool
	created  uint64
	modified uint64
	expiry   int64 // unix nanoseconds; 0 means permanent
	value    string
}

const (
	flagDir = 1 << iota
	flagTTL
)

var errBadRecord = errors.New("engine: corrupt node record")

func (r *record) marshal() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+8+len(r.value))
	var f byte
	if r.dir {
		f |= flagDir
	}
	if r.expiry != 0 {
		f |= flagTTL
	}
	b = append(b, f)
	b = binary.AppendUvarint(b, r.created)
	b = binary.AppendUvarint(b, r.modified)
	if r.expiry != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(r.expiry))
	}
	return append(b, r.value...)
}

func unmarshalRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, errBadRecord
	}
	f := b[0]
	b = b[1:]
	r.dir = f&flagDir != 0
	var n int
	if r.created, n = binary.Uvarint(b); n <= 0 {
		return r, errBadRecord
	}
	b = b[n:]
	if r.modified, n = binary.Uvarint(b); n <= 0 {
		return r, errBadRecord
	}
	b = b[n:]
	if f&flagTTL != 0 {
		if len(b) < 8 {
			return r, errBadRecord
		}
		r.expiry = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
	}
	r.value = string(b)
	return r, nil
}

// Node is the JSON form of a node in an event, field for field etcd's
// NodeExtern so the encoding is byte-compatible.
type Node struct {
	Key           string     `json:"key,omitempty"`
	Value         *string    `json:"value,omitempty"`
	Dir           bool       `json:"dir,omitempty"`
	Expiration    *time.Time `json:"expiration,omitempty"`
	TTL           int64      `json:"ttl,omitempty"`
	Nodes         []*Node    `json:"nodes,omitempty"`
	ModifiedIndex uint64     `json:"modifiedIndex,omitempty"`
	CreatedIndex  uint64     `json:"createdIndex,omitempty"`
}

// setExpiry fills Expiration and TTL as etcd does: TTL is the remaining
// time rounded up to whole seconds.
func (n *Node) setExpiry(expiry int64, now time.Time) {
	if expiry == 0 {
		return
	}
	t := time.Unix(0, expiry).UTC()
	n.Expiration = &t
	left := t.Sub(now)
	ttl := left / time.Second
	if left%time.Second > 0 {
		ttl++
	}
	n.TTL = int64(ttl)
}

// repr is etcd's Repr: a node without its children (values included).
func (r *record) repr(p string, now time.Time) *Node {
	n := &Node{Key: p, Dir: r.dir, ModifiedIndex: r.modified, CreatedIndex: r.created}
	if !r.dir {
		v := r.value
		n.Value = &v
	}
	n.setExpiry(r.expiry, now)
	return n
}

// isHidden reports whether the last segment of p starts with '_'.
func isHidden(p string) bool {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i+1 < len(p) && p[i+1] == '_'
		}
	}
	return false
}
