// Package httpd serves the etcd v2 HTTP API: /v2/keys, /v2/members,
// /v2/machines, /v2/stats/*, /version and /health. It turns requests into
// engine commands and reads, and answers with etcd's JSON, headers and
// status codes; it knows nothing of raft or storage.
package httpd

import (
	"context"

	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// Store is what the keys API needs from a member.
type Store interface {
	// Propose replicates a mutation and returns its event once applied; it
	// fails rather than wait beyond the store's request timeout.
	// API failures are *engine.Error; anything else is an internal error.
	Propose(ctx context.Context, c engine.Command) (*engine.Event, error)
	// Get reads a node; quorum reads are linearizable.
	Get(ctx context.Context, p string, recursive, sorted, quorum bool) (*engine.Event, error)
	// Watch starts a watch (see engine.Engine.Watch).
	Watch(p string, recursive, stream bool, waitIndex uint64) (*engine.Watcher, error)
	// RaftStatus is the applied raft index and current term (X-Raft-*).
	RaftStatus() (index, term uint64)
}

// Cluster is what the cluster and stats endpoints need from a member.
type Cluster interface {
	ClusterID() uint64
	Members() []membership.Member
	// SelfStats and LeaderStats are JSON-encodable; LeaderStats reports
	// false when this member is not the leader.
	SelfStats() any
	LeaderStats() (any, bool)
	StoreStats() engine.StoreStats
	// Healthy returns nil when the member can serve writes.
	Healthy(ctx context.Context) error
}
