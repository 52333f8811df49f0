//go:build !failpoints

package server

import (
	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
)

// peerFaults is a no-op without -tags failpoints: peer traffic is never
// dropped on purpose in a production binary.
func (s *Server) peerFaults() (consensus.Transport, func(*replica) transport.Raft) {
	return s.tr, func(n *replica) transport.Raft { return n }
}
