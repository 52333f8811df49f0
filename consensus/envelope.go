package consensus

import "encoding/binary"

// A proposed command travels in the log wrapped in an envelope that names
// the proposing member and a per-member request id, so the member that
// proposed it can route the state machine's result back to the caller.
// The state machine sees only the original command.
//
//	version u8 (1) | member id u64 | request id u64 | command
const (
	envelopeVersion = 1
	envelopeSize    = 17
)

func encodeEnvelope(member, id uint64, cmd []byte) []byte {
	b := make([]byte, envelopeSize+len(cmd))
	b[0] = envelopeVersion
	binary.LittleEndian.PutUint64(b[1:], member)
	binary.LittleEndian.PutUint64(b[9:], id)
	copy(b[envelopeSize:], cmd)
	return b
}

// decodeEnvelope splits an entry's data; ok is false for data that is not
// an envelope (handed to the state machine unchanged).
func decodeEnvelope(b []byte) (member, id uint64, cmd []byte, ok bool) {
	if len(b) < envelopeSize || b[0] != envelopeVersion {
		return 0, 0, b, false
	}
	return binary.LittleEndian.Uint64(b[1:]), binary.LittleEndian.Uint64(b[9:]), b[envelopeSize:], true
}
