package server

import (
	"io/fs"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/wal"
)

// Collector returns a Prometheus collector of this member's raft, log,
// snapshot, store and backend metrics (docs/metrics.md lists them). It
// reads counters the member keeps anyway at scrape time, so it adds
// nothing to the request path; a scrape costs a few atomic loads, one
// backend seek (the earliest TTL deadline) and a walk of the data dir's
// file sizes. The key count comes from one background scan started by the
// first scrape, and is kept up to date by every applied batch afterwards;
// until that scan has finished the key gauges are absent.
func (s *Server) Collector() prometheus.Collector { return &collector{s: s} }

type collector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("strata_"+name, help, labels, nil)
}

var (
	descProposalsCommitted = desc("raft_proposals_committed_total", "Command entries committed (proposed by any member).")
	descProposalsApplied   = desc("raft_proposals_applied_total", "Command entries applied to the store.")
	descProposalsFailed    = desc("raft_proposals_failed_total", "Proposals of this member that failed (timeout, no leader, stopped).")
	descProposalsPending   = desc("raft_proposals_pending", "Proposals of this member waiting for their entry to be applied.")
	descLeaderChanges      = desc("raft_leader_changes_seen_total", "Times this member saw a new leader elected.")
	descHasLeader          = desc("raft_has_leader", "1 if this member knows a leader, else 0.")
	descIsLeader           = desc("raft_is_leader", "1 if this member is the leader, else 0.")
	descTerm               = desc("raft_term", "Current raft term.")
	descCommitIndex        = desc("raft_commit_index", "Highest raft index known committed.")
	descAppliedIndex       = desc("raft_applied_index", "Highest raft index applied to the store.")
	descFsync              = desc("wal_fsync_duration_seconds", "Duration of the raft log's fdatasyncs (one per group of writes).")
	descWALBytes           = desc("wal_written_bytes_total", "Bytes written to the raft log since start.")
	descWALSegments        = desc("wal_segments", "Live raft log segment files (64 MiB preallocated each).")
	descSnapshot           = desc("snapshot_duration_seconds", "Duration of the raft snapshots taken (image written, or backend synced).")
	descSnapshotFailures   = desc("snapshot_failures_total", "Raft snapshots that failed.")
	descSnapshotIndex      = desc("snapshot_index", "Raft index of the newest snapshot.")
	descKeys               = desc("store_keys", "Keys (nodes with a value) in the store, hidden ones (auth data) included.")
	descDirs               = desc("store_directories", "Directories in the store, the root excluded.")
	descStoreIndex         = desc("store_index", "The v2 store index (X-Etcd-Index).")
	descWatchers           = desc("store_watchers", "Watches open on this member.")
	descEvents             = desc("store_events_total", "Events applied (every change and expiration), whether watched or not.")
	descExpired            = desc("store_expired_keys_total", "Nodes removed because their TTL expired.")
	descLateness           = desc("store_expiry_lateness_seconds", "How late after its deadline each expired node was removed on this member.")
	descOverdue            = desc("store_expiry_overdue_seconds", "How far past its deadline the earliest TTL in the store is (0 if none is due): the expiry backlog.")
	descStoreOps           = desc("store_operations_total", "Store operations by kind and outcome, as /v2/stats/store counts them.", "op", "result")
	descBackendSize        = desc("backend_size_bytes", "Size on disk of the backend's files (the data dir's db/; 0 for memory).")
	descRaftSize           = desc("raft_files_size_bytes", "Size on disk of the raft log and snapshots (the data dir's member/).")
	descBackendInfo        = desc("backend_info", "The storage backend this member runs (always 1).", "backend")
	descNoSpace            = desc("server_nospace_alarm", "1 while the NOSPACE alarm is raised (the data dir's disk is full: writes are refused), else 0.")
	descNoSpaceTotal       = desc("server_nospace_alarms_total", "Times the NOSPACE alarm was raised.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descProposalsCommitted, descProposalsApplied, descProposalsFailed, descProposalsPending,
		descLeaderChanges, descHasLeader, descIsLeader, descTerm, descCommitIndex, descAppliedIndex,
		descFsync, descWALBytes, descWALSegments, descSnapshot, descSnapshotFailures, descSnapshotIndex,
		descKeys, descDirs, descStoreIndex, descWatchers, descEvents, descExpired, descLateness, descOverdue,
		descStoreOps, descBackendSize, descRaftSize, descBackendInfo, descNoSpace, descNoSpaceTotal,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.replica.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	counter(descProposalsCommitted, st.ProposalsCommitted)
	counter(descProposalsApplied, st.ProposalsApplied)
	counter(descProposalsFailed, st.ProposalsFailed)
	gauge(descProposalsPending, float64(st.ProposalsPending))
	counter(descLeaderChanges, st.LeaderChanges)
	gauge(descHasLeader, bool01(st.Lead != 0))
	gauge(descIsLeader, bool01(st.Lead == s.id))
	gauge(descTerm, float64(st.Term))
	gauge(descCommitIndex, float64(st.Commit))
	gauge(descAppliedIndex, float64(st.Applied))
	gauge(descNoSpace, bool01(s.replica.SpaceErr() != nil))
	counter(descNoSpaceTotal, s.replica.SpaceAlarms())

	n, b := cumulative(wal.FsyncBucketBounds[:], st.FsyncBuckets[:])
	ch <- prometheus.MustNewConstHistogram(descFsync, n, st.FsyncTotal.Seconds(), b)
	counter(descWALBytes, st.WALBytes)
	gauge(descWALSegments, float64(st.WALSegments))
	n, b = cumulative(consensus.SnapshotBucketBounds[:], st.SnapshotBuckets[:])
	ch <- prometheus.MustNewConstHistogram(descSnapshot, n, st.SnapshotTotal.Seconds(), b)
	counter(descSnapshotFailures, st.SnapshotFailures)
	gauge(descSnapshotIndex, float64(st.SnapshotIndex))

	if files, dirs, ok, err := s.eng.NodeCount(); ok {
		gauge(descKeys, float64(files))
		gauge(descDirs, float64(dirs))
	} else if err != nil {
		s.log.Warn("metrics: count keys", "err", err)
	}
	gauge(descStoreIndex, float64(s.eng.Index()))
	ss := s.eng.Stats()
	gauge(descWatchers, float64(ss.Watchers))
	counter(descEvents, s.eng.Events())
	counter(descExpired, ss.ExpireCount)
	lh := s.eng.ExpiryLatenessHistogram()
	buckets := make(map[float64]uint64, len(lh.Bounds))
	for i, b := range lh.Bounds {
		buckets[b.Seconds()] = lh.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(descLateness, max(lh.Count, lh.Cumulative[len(lh.Cumulative)-1]), lh.Sum.Seconds(), buckets)
	overdue := 0.0
	if at, ok, err := s.eng.NextExpiry(); err == nil && ok {
		if d := time.Since(time.Unix(0, at)); d > 0 {
			overdue = d.Seconds()
		}
	}
	gauge(descOverdue, overdue)
	for _, op := range []struct {
		name    string
		ok, bad uint64
	}{
		{"get", ss.GetSuccess, ss.GetFail}, {"set", ss.SetSuccess, ss.SetFail},
		{"create", ss.CreateSuccess, ss.CreateFail}, {"update", ss.UpdateSuccess, ss.UpdateFail},
		{"delete", ss.DeleteSuccess, ss.DeleteFail},
		{"compareAndSwap", ss.CompareAndSwapSuccess, ss.CompareAndSwapFail},
		{"compareAndDelete", ss.CompareAndDeleteSuccess, ss.CompareAndDeleteFail},
	} {
		counter(descStoreOps, op.ok, op.name, "success")
		counter(descStoreOps, op.bad, op.name, "fail")
	}
	gauge(descBackendSize, float64(dirSize(s.dir.sub("db"))))
	gauge(descRaftSize, float64(dirSize(s.dir.sub("member"))))
	gauge(descBackendInfo, 1, s.cfg.Backend)
}

// cumulative turns per-bucket counts (the last one above every bound)
// into Prometheus' cumulative buckets by upper bound in seconds, and
// their total (the histogram's count, consistent with its buckets).
func cumulative(bounds []time.Duration, counts []uint64) (uint64, map[float64]uint64) {
	out := make(map[float64]uint64, len(bounds))
	var sum uint64
	for i, b := range bounds {
		sum += counts[i]
		out[b.Seconds()] = sum
	}
	return sum + counts[len(bounds)], out
}

// dirSize is the apparent size of the regular files under dir; files that
// vanish while it walks (released WAL segments) are skipped.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return nil
		}
		if fi, err := de.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}
