package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/strata-kv/strata/bench/load"
)

// aggregate fills r.Throughput with the medians of r.Samples, in server
// order, then workload and client order as given.
func (r *Results) aggregate(o *Options) {
	r.Throughput = r.Throughput[:0]
	for _, srv := range r.order {
		for _, w := range o.Workloads {
			for _, c := range o.Clients {
				var rounds load.Rounds
				for _, s := range r.Samples {
					if s.server == srv && s.workload == w && s.clients == c {
						rounds.Add(s.res.Throughput, s.res.P50, s.res.P99, s.res.Errors+s.res.Non2xx)
					}
				}
				m, ok := rounds.Medians()
				if !ok {
					continue
				}
				t := Throughput{Server: srv, Workload: w, Clients: c, RPS: m.RPS, RPSMin: m.RPSMin, RPSMax: m.RPSMax,
					P50ms: m.P50ms, P99ms: m.P99ms, Failed: m.Failed}
				r.Throughput = append(r.Throughput, t)
			}
		}
	}
}

// writeCSV writes every run in load's CSV format, labelled
// <server>/<workload><clients>/r<round> as compare does, for bench/cmd/plot.
func writeCSV(path string, samples []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	labels := make([]string, len(samples))
	results := make([]*load.Result, len(samples))
	for i, s := range samples {
		labels[i] = fmt.Sprintf("%s/%s%d/r%d", s.server, s.workload, s.clients, s.round)
		results[i] = s.res
	}
	if err := load.WriteCSV(f, labels, results...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mib(b int64) string {
	m := float64(b) / (1 << 20)
	if m < 10 {
		return fmt.Sprintf("%.1f MiB", m)
	}
	return fmt.Sprintf("%.0f MiB", m)
}

func perKey(b int64, keys int) string {
	if keys == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f B", float64(b)/float64(keys))
}

func secs(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.2f", s)
	}
	return fmt.Sprintf("%.1f", s)
}

func writeMarkdown(w io.Writer, o *Options, r *Results) {
	fmt.Fprintf(w, "\n## Backend trade-offs, %s\n\n", r.Date)
	fmt.Fprintf(w, "%d CPUs, %s, etcd %s; data root %s. %d keys of %d B; throughput runs %s, %d rounds, server order rotated each round, medians.\n\n",
		r.CPUs, r.GoVersion, orDash(r.EtcdVersion), r.DataRoot, r.Keys, r.ValueSize, r.Duration, r.Rounds)

	writeThroughput(w, o, r)
	writeFootprint(w, r)
	if len(r.Large) > 0 {
		writeLarge(w, r)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func table(w io.Writer, head []string) {
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// writeThroughput writes one row per server, one column per workload ×
// clients, and the spread over the rounds.
func writeThroughput(w io.Writer, o *Options, r *Results) {
	fmt.Fprintln(w, "### Requests/s (median) and p99 latency")
	fmt.Fprintln(w)
	head := []string{"server"}
	for _, wl := range o.Workloads {
		for _, c := range o.Clients {
			head = append(head, fmt.Sprintf("%s ×%d", strings.ToUpper(wl), c))
		}
	}
	table(w, head)
	for _, srv := range r.order {
		row := []string{srv}
		for _, wl := range o.Workloads {
			for _, c := range o.Clients {
				cell := "–"
				for _, t := range r.Throughput {
					if t.Server == srv && t.Workload == wl && t.Clients == c {
						cell = fmt.Sprintf("%.0f (p99 %.2f ms)", t.RPS, t.P99ms)
						if t.Failed > 0 {
							cell += fmt.Sprintf(" %d failed", t.Failed)
						}
					}
				}
				row = append(row, cell)
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Spread (min–max req/s over the rounds):")
	fmt.Fprintln(w)
	for _, t := range r.Throughput {
		fmt.Fprintf(w, "%s %s×%d %.0f–%.0f; ", t.Server, t.Workload, t.Clients, t.RPSMin, t.RPSMax)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}

// writeFootprint writes the resting state and restart of each server.
func writeFootprint(w io.Writer, r *Results) {
	fmt.Fprintf(w, "### Footprint with %d keys, restart\n\n", r.Keys)
	table(w, []string{"server", "load s", "VmRSS", "RssAnon", "VmHWM", "live heap", "disk/key all", "WAL/key", "snap/key", "store/key", "stop s", "restart s", "VmRSS after restart", "live heap after restart"})
	for _, srv := range r.order {
		f := r.byName[srv]
		stop := secs(f.StopSeconds)
		if f.StopKilled {
			stop += " (killed)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", srv, secs(f.LoadSeconds),
			mib(f.Mem.VmRSS), mib(f.Mem.RssAnon), mib(f.Mem.VmHWM), mib(f.Heap),
			perKey(f.Disk.Total(), r.Keys), perKey(f.Disk.WAL, r.Keys), perKey(f.Disk.Snap, r.Keys), perKey(f.Disk.Store, r.Keys),
			stop, secs(f.RestartSeconds), mib(f.MemAfter.VmRSS), mib(f.HeapAfter))
	}
	fmt.Fprintln(w)
}

// writeLarge writes the large phase of each backend.
func writeLarge(w io.Writer, r *Results) {
	fmt.Fprintf(w, "### %d keys: snapshot and restart\n\n", r.Large[0].Keys)
	fmt.Fprintln(w, "Loaded through HTTP (bench/load, raw client) into a server started with --unsafe-no-fsync and --snapshot-count equal to the key count, so its one snapshot is taken at the end of the load (duration from the server's debug log); restarted with default flags.")
	fmt.Fprintln(w)
	table(w, []string{"server", "load s", "snapshot s", "snapshot size", "VmRSS loaded", "RssAnon loaded", "live heap loaded", "disk/key excl. WAL", "stop s", "restart s (to first GET)", "VmRSS after restart", "RssAnon after restart", "live heap after restart"})
	for _, l := range r.Large {
		if l.Error != "" {
			fmt.Fprintf(w, "| %s | failed: %s |\n", l.Server, strings.ReplaceAll(l.Error, "\n", " "))
			continue
		}
		snap, size := "–", "–"
		if l.SnapshotIndex > 0 {
			snap, size = secs(l.SnapshotSeconds), mib(l.SnapshotBytes)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.Server, secs(l.LoadSeconds), snap, size,
			mib(l.Mem.VmRSS), mib(l.Mem.RssAnon), mib(l.Heap), perKey(l.Disk.Snap+l.Disk.Store, l.Keys),
			secs(l.StopSeconds), secs(l.RestartSeconds), mib(l.MemAfter.VmRSS), mib(l.MemAfter.RssAnon), mib(l.HeapAfter))
	}
	fmt.Fprintln(w)
}
