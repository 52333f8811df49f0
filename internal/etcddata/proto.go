// Package etcddata reads a stopped etcd 3.3-3.5 member's data dir: the v2
// store in its newest snapshot and the v2 requests in its WAL after it.
// The formats (snappb, walpb, etcdserverpb) are a handful of protobuf
// fields, decoded here by hand rather than importing etcd's server module
// (see docs/migrating-from-etcd.md for the measured trade-off).
package etcddata

import (
	"encoding/binary"
	"errors"
)

var errProto = errors.New("malformed protobuf")

// field is one protobuf field: a varint value or a length-delimited body.
type field struct {
	num   uint64
	wire  uint64
	v     uint64
	bytes []byte
}

// fields splits a protobuf message into its fields, failing on any wire
// type other than varint, fixed64, fixed32 and length-delimited.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag>>3 == 0 {
			return nil, errProto
		}
		b = b[n:]
		f := field{num: tag >> 3, wire: tag & 7}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, errProto
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, errProto
			}
			f.v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			if len(b) < 4 {
				return nil, errProto
			}
			f.v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil, errProto
			}
			f.bytes, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, errProto
		}
		out = append(out, f)
	}
	return out, nil
}
