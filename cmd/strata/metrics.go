package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strata-kv/strata/server"
)

// newMetricsRegistry gathers what GET /metrics serves: the member's
// collector (raft, log, snapshots, store, backend), the Go runtime's and
// the process's metrics; httpd adds its request metrics to it.
func newMetricsRegistry(srv *server.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		srv.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
