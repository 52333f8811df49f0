package server

import (
	"github.com/strata-kv/strata/engine"
)

// spaceReserve is the free space under which a member refuses writes. It
// must cover what is in flight when the alarm goes up plus what the
// backend writes on its own: badger flushes a 32 MiB memtable to a new
// table and compacts by writing before deleting, into files it maps
// rather than writes, so running out there is a SIGBUS, not an error.
func spaceReserve(backend string, configured int64) int64 {
	if configured != 0 {
		return configured
	}
	if backend == "badger" {
		return 112 << 20
	}
	return 16 << 20
}

// admit refuses a write while the NOSPACE alarm is raised. Deletions pass
// while the member can still write (the early warning): they need little
// space and are how an operator makes room, as etcd lets deletes through
// its space quota.
func (s *Server) admit(c engine.Command) error {
	err := s.node.SpaceErr()
	if err == nil {
		return nil
	}
	switch c.Op {
	case engine.OpDelete, engine.OpCAD, engine.OpExpire:
		if !s.node.SpaceStalled() {
			return nil
		}
	}
	return err
}
