package engine

import (
	"encoding/binary"
	"errors"
)

// Op is a mutation of the key space, one per etcd v2 store method.
type Op uint8

// The operations a Command can carry.
const (
	OpSet    Op = iota + 1 // PUT without conditions: create or replace
	OpCreate               // PUT prevExist=false, or POST (Unique)
	OpUpdate               // PUT prevExist=true
	OpCAS                  // PUT with prevValue and/or prevIndex
	OpDelete               // DELETE without conditions
	OpCAD                  // DELETE with prevValue and/or prevIndex
	OpExpire               // remove nodes due at or before Time (leader-proposed); a Path other than "/" names the one node
	opMax
)

// PutOp is the operation of a v2 PUT, in etcd's order: prevExist=true
// updates (a compare-and-swap with a prevValue or prevIndex condition),
// prevExist=false creates, and otherwise a condition makes it a
// compare-and-swap and no condition a set.
func PutOp(prevExist *bool, conditional bool) Op {
	switch {
	case prevExist != nil && *prevExist && !conditional:
		return OpUpdate
	case prevExist != nil && *prevExist:
		return OpCAS
	case prevExist != nil:
		return OpCreate
	case conditional:
		return OpCAS
	}
	return OpSet
}

// DeleteOp is the operation of a v2 DELETE: compare-and-delete with a
// prevValue or prevIndex condition.
func DeleteOp(conditional bool) Op {
	if conditional {
		return OpCAD
	}
	return OpDelete
}

var opNames = [...]string{"", "set", "create", "update", "compareAndSwap", "delete", "compareAndDelete", "expire"}

func (o Op) String() string {
	if o > 0 && o < opMax {
		return opNames[o]
	}
	return "unknown"
}

// Command is one replicated mutation. It holds everything apply needs, so
// applying the same log gives the same state on every member: the
// expiration is an absolute time fixed by the proposer, never "now".
type Command struct {
	Op         Op
	Path       string // clean absolute path
	Value      string
	PrevValue  string
	PrevIndex  uint64
	Expiration int64 // unix nanoseconds; 0 = permanent
	Time       int64 // OpExpire: remove what is due at or before this (unix ns)
	Limit      uint32
	Dir        bool
	Unique     bool // OpCreate: name the node by the new index (POST)
	Recursive  bool
	Refresh    bool
}

// CommandVersion is the first byte of every marshalled Command; a
// replicated log that carries other entries must not start them with it.
const CommandVersion = 1

const (
	cfDir = 1 << (iota + 1)
	cfUnique
	cfRecursive
	cfRefresh
)

var errBadCommand = errors.New("engine: malformed command")

// Marshal encodes the command for the raft log.
func (c *Command) Marshal() []byte {
	b := make([]byte, 0, 16+len(c.Path)+len(c.Value)+len(c.PrevValue))
	var f byte
	if c.Dir {
		f |= cfDir
	}
	if c.Unique {
		f |= cfUnique
	}
	if c.Recursive {
		f |= cfRecursive
	}
	if c.Refresh {
		f |= cfRefresh
	}
	b = append(b, CommandVersion, byte(c.Op), f)
	b = appendString(b, c.Path)
	b = appendString(b, c.Value)
	b = appendString(b, c.PrevValue)
	b = binary.AppendUvarint(b, c.PrevIndex)
	b = binary.AppendVarint(b, c.Expiration)
	b = binary.AppendVarint(b, c.Time)
	b = binary.AppendUvarint(b, uint64(c.Limit))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalCommand decodes a command made by Marshal.
func UnmarshalCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 3 || b[0] != CommandVersion {
		return c, errBadCommand
	}
	c.Op = Op(b[1])
	f := b[2]
	c.Dir, c.Unique, c.Recursive, c.Refresh = f&cfDir != 0, f&cfUnique != 0, f&cfRecursive != 0, f&cfRefresh != 0
	d := decoder{b: b[3:]}
	c.Path = d.string()
	c.Value = d.string()
	c.PrevValue = d.string()
	c.PrevIndex = d.uvarint()
	c.Expiration = d.varint()
	c.Time = d.varint()
	c.Limit = uint32(d.uvarint())
	if d.err || c.Op == 0 || c.Op >= opMax {
		return Command{}, errBadCommand
	}
	return c, nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
