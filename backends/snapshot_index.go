package backends

import (
	"encoding/binary"
	"fmt"
	"io"
)

// SnapshotIndexWriter passes a snapshot stream through to W and keeps its
// header, so whoever streams a Backend.Snapshot learns the applied index
// it was taken at without a second, racy read of AppliedIndex.
type SnapshotIndexWriter struct {
	W    io.Writer
	head []byte
}

func (s *SnapshotIndexWriter) Write(p []byte) (int, error) {
	if n := snapHeader - len(s.head); n > 0 {
		s.head = append(s.head, p[:min(n, len(p))]...)
	}
	return s.W.Write(p)
}

// AppliedIndex is the index recorded in the stream's header.
func (s *SnapshotIndexWriter) AppliedIndex() (uint64, error) {
	if len(s.head) < snapHeader || string(s.head[:len(snapMagic)]) != snapMagic {
		return 0, fmt.Errorf("snapshot header: %w", ErrCorruptSnapshot)
	}
	return binary.BigEndian.Uint64(s.head[len(snapMagic)+4:]), nil
}
