package httpd

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
)

// snapshotPath serves a backup of the whole store (stratactl snapshot save).
const snapshotPath = "/v2/strata/snapshot"

// Backup trailers: a client must read the body to its end and then check
// both; a stream without them is incomplete.
const (
	SnapshotSHA256Trailer = "X-Strata-Snapshot-Sha256"
	SnapshotIndexTrailer  = "X-Strata-Snapshot-Index"
)

// SnapshotSource is implemented by a Cluster that can stream a backup.
type SnapshotSource interface {
	// WriteSnapshot writes the whole store in the backends' portable
	// snapshot format (backends.WriteSnapshot: header with the applied raft
	// index, records, CRC-32C trailer) from one consistent view, while
	// writes go on, and returns the raft index the image reflects.
	WriteSnapshot(w io.Writer) (uint64, error)
}

// handleSnapshot streams a backup: GET /v2/strata/snapshot answers 200
// with the snapshot stream as its body and, in HTTP trailers, its SHA-256
// (hex) and the raft index it reflects. Only root may read it when auth is
// enabled (it holds the auth data too). If the image fails half way, the
// connection is cut, so the client sees a truncated body and no trailers:
// it must never keep such a file.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	src, ok := s.cluster.(SnapshotSource)
	if !ok {
		writeHTTPError(w, http.StatusNotImplemented, "snapshots are not supported by this server")
		return
	}
	if !s.checkRoot(w, r, true) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Trailer", SnapshotSHA256Trailer+", "+SnapshotIndexTrailer)
	if s.clusterIDHeader != nil {
		h["X-Etcd-Cluster-Id"] = s.clusterIDHeader
	}
	w.WriteHeader(http.StatusOK)
	sum := sha256.New()
	index, err := src.WriteSnapshot(io.MultiWriter(w, sum))
	if err != nil {
		panic(http.ErrAbortHandler) // cut the stream: no trailers (the source logs why)
	}
	h.Set(SnapshotSHA256Trailer, hex.EncodeToString(sum.Sum(nil)))
	h.Set(SnapshotIndexTrailer, strconv.FormatUint(index, 10))
}
