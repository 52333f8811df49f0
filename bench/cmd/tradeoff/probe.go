package main

import "github.com/strata-kv/strata/bench/internal/probe"

// The measurements this tool shares with bench/cmd/bigload.
type (
	memStatus = probe.MemStatus
	diskUsage = probe.DiskUsage
)

var (
	readMem        = probe.ReadMem
	parseStatus    = probe.ParseStatus
	measureDisk    = probe.MeasureDisk
	waitGet        = probe.WaitGet
	etcdIndex      = probe.EtcdIndex
	liveHeap       = probe.LiveHeap
	parseHeapAlloc = probe.ParseHeapAlloc
)
