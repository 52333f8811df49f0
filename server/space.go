package server

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/strata-kv/strata/engine"
)

// ErrQuota is etcd's answer past --quota-backend-bytes (its v3 NOSPACE
// alarm); a v2 client gets it as error 300's cause.
var ErrQuota = errors.New("etcdserver: mvcc: database space exceeded")

// watchQuota measures the backend's files every quotaProbe while a quota
// is set, and raises or clears overQuota (logged once each way).
func (s *Server) watchQuota() {
	quota := s.cfg.QuotaBackendBytes
	if quota <= 0 {
		return
	}
	t := time.NewTicker(quotaProbe)
	defer t.Stop()
	for {
		size := diskUsage(s.dir.sub("db"))
		over := size > quota
		if over != s.overQuota.Load() {
			s.overQuota.Store(over)
			if over {
				s.log.Error("backend quota exceeded: refusing writes other than deletes", "size", size, "quota", quota)
			} else {
				s.log.Warn("backend back under its quota: writes resume", "size", size, "quota", quota)
			}
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

const quotaProbe = 100 * time.Millisecond

// diskUsage is the space allocated to the regular files under dir (st_blocks,
// as du counts): badger's and bbolt's files are sparse, their apparent size
// far above what they hold.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return nil
		}
		if fi, err := de.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

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
	err := s.replica.SpaceErr()
	if err == nil && s.overQuota.Load() {
		err = ErrQuota
	}
	if err == nil {
		return nil
	}
	switch c.Op {
	case engine.OpDelete, engine.OpCAD, engine.OpExpire:
		if !s.replica.SpaceStalled() { // past the quota too, as in etcd
			return nil
		}
	}
	return err
}
