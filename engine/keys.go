package engine

import (
	"encoding/binary"
	"strings"
)

// Backend key layout. Nodes are keyed by depth first so that the direct
// children of a directory are one contiguous range that never walks the
// grandchildren:
//
//	'n' depth(uint16 BE) path   -> node record     (e.g. n\x00\x02/a/b)
//	't' expiry(uint64 BE) path  -> empty           (TTL index, due order)
//	'm' name                    -> metadata        (current v2 index)
const (
	prefixNode = 'n'
	prefixTTL  = 't'
	prefixMeta = 'm'
)

var metaIndexKey = []byte("mindex")

// MaxDepth bounds the number of path segments a key may have.
const MaxDepth = 1000

// depth counts the segments of a clean absolute path ("/" has depth 0).
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

func appendNodeKey(b []byte, d int, p string) []byte {
	b = append(b, prefixNode, byte(d>>8), byte(d))
	return append(b, p...)
}

// childRange is the key range holding the direct children of directory dir.
func childRange(dir string) (start, end []byte) {
	d := depth(dir) + 1
	prefix := dir
	if dir != "/" {
		prefix += "/"
	}
	start = appendNodeKey(make([]byte, 0, 3+len(prefix)), d, prefix)
	return start, prefixEnd(start)
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// pathOfNodeKey extracts the path from a node key.
func pathOfNodeKey(k []byte) string { return string(k[3:]) }

// ttlKey orders TTL entries by expiry time, then path. Times before the
// epoch cannot occur: expirations are validated to be in [2000, 9999].
func ttlKey(expiry int64, p string) []byte {
	b := make([]byte, 0, 9+len(p))
	b = append(b, prefixTTL)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	return append(b, p...)
}

func parseTTLKey(k []byte) (expiry int64, p string) {
	return int64(binary.BigEndian.Uint64(k[1:9])), string(k[9:])
}

var (
	ttlStart = []byte{prefixTTL}
	ttlEnd   = []byte{prefixTTL + 1}
)
