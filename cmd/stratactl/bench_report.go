package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-kv/strata/internal/loadclient"
)

// benchCSVHeader is the header of bench --csv: one row per second (the
// last interval may be shorter) and operation.
var benchCSVHeader = []string{"elapsed_s", "interval_s", "op", "requests", "ok", "errors",
	"req_per_sec", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}

func ms(d time.Duration) string { return loadclient.Ms(d) }

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (r *benchResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(benchCSVHeader)
	for _, row := range r.rows {
		h := &row.w.hist
		_ = cw.Write([]string{
			strconv.FormatFloat(row.elapsed.Seconds(), 'f', 3, 64),
			strconv.FormatFloat(row.interval.Seconds(), 'f', 3, 64),
			opNames[row.op],
			strconv.FormatInt(row.w.requests, 10), strconv.FormatInt(row.w.ok, 10), strconv.FormatInt(row.w.errors, 10),
			strconv.FormatFloat(perSec(row.w.ok, row.interval), 'f', 1, 64),
			ms(h.Mean()), ms(h.Percentile(50)), ms(h.Percentile(90)), ms(h.Percentile(99)), ms(h.Percentile(99.9)), ms(h.Max()),
		})
	}
	cw.Flush()
	return cw.Error()
}

// requestTotal is puts and gets together.
func (r *benchResult) requestTotal() *opWindow {
	t := new(opWindow)
	t.merge(&r.total[opPut])
	t.merge(&r.total[opGet])
	return t
}

// appendSummary appends the whole run as one row of loadclient.CSVHeader (the
// columns bench/cmd/plot reads), with a header if the file is empty.
func (r *benchResult) appendSummary(f *os.File, label string) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	t := r.requestTotal()
	sum := &loadclient.Summary{
		Target: strings.Join(r.cfg.endpoints, ","), Clients: r.cfg.clients, PutPercent: r.cfg.putPercent,
		ValueSize: r.cfg.valueSize, Keys: r.cfg.keys,
		Requests: t.requests, OK: t.ok, Errors: t.errors, Elapsed: r.elapsed,
		Throughput: perSec(t.ok, r.elapsed),
		Mean:       t.hist.Mean(), P50: t.hist.Percentile(50), P90: t.hist.Percentile(90),
		P99: t.hist.Percentile(99), P999: t.hist.Percentile(99.9), Max: t.hist.Max(),
	}
	cw := csv.NewWriter(f)
	if st.Size() == 0 {
		_ = cw.Write(loadclient.CSVHeader)
	}
	_ = cw.Write(sum.CSVRow(label))
	cw.Flush()
	return cw.Error()
}

// writeReport prints the table and the latency histogram.
func (r *benchResult) writeReport(w io.Writer) {
	cfg := r.cfg
	fmt.Fprintf(w, "endpoints  %s\n", strings.Join(cfg.endpoints, ","))
	fmt.Fprintf(w, "workload   %d%% put / %d%% get, %d clients, %d watchers, %d-byte values, %d keys under %s\n",
		cfg.putPercent, 100-cfg.putPercent, cfg.clients, cfg.watchers, cfg.valueSize, cfg.keys, cfg.prefix)
	fmt.Fprintf(w, "elapsed    %.3fs\n\n", r.elapsed.Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OP\tREQUESTS\tOK\tERRORS\tREQ/S\tMEAN ms\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\t")
	line := func(name string, o *opWindow) {
		h := &o.hist
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, o.requests, o.ok, o.errors,
			perSec(o.ok, r.elapsed), ms(h.Mean()), ms(h.Percentile(50)), ms(h.Percentile(90)),
			ms(h.Percentile(99)), ms(h.Percentile(99.9)), ms(h.Max()))
	}
	ops := r.ops()
	for _, op := range ops {
		if op != opWatch {
			line(opNames[op], &r.total[op])
		}
	}
	total := r.requestTotal()
	line("total", total)
	tw.Flush()
	if cfg.watchers > 0 {
		wt := &r.total[opWatch]
		fmt.Fprintf(w, "\nwatch      %d events received by %d watchers (%d expected: watchers × ok puts), %d broken streams\n",
			wt.ok, cfg.watchers, int64(cfg.watchers)*r.total[opPut].ok, wt.errors)
		h := &wt.hist
		fmt.Fprintf(w, "notify ms  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (PUT response to event received)\n",
			ms(h.Mean()), ms(h.Percentile(50)), ms(h.Percentile(90)), ms(h.Percentile(99)), ms(h.Percentile(99.9)), ms(h.Max()))
	}
	if r.firstErr != "" {
		fmt.Fprintf(w, "\nfirst error: %s\n", r.firstErr)
	}
	fmt.Fprintf(w, "\nlatency of ok requests (put and get), ms:\n")
	writeHistogram(w, &total.hist)
}

// histBounds are the upper bounds of the histogram's bars: 1-2-5 steps.
func histBounds(maxv time.Duration) []time.Duration {
	var b []time.Duration
	for d := 10 * time.Microsecond; ; d *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			b = append(b, d*m)
			if d*m >= maxv {
				return b
			}
		}
	}
}

// writeHistogram draws one bar per 1-2-5 latency bucket, from the first
// non-empty one to the one holding the maximum.
func writeHistogram(w io.Writer, h *loadclient.Histogram) {
	if h.Count() == 0 {
		fmt.Fprintln(w, "  (no samples)")
		return
	}
	bounds := histBounds(h.Max())
	counts := make([]int64, len(bounds))
	var prev int64
	first := -1
	var most int64
	for i, b := range bounds {
		c := h.CountAtMost(b)
		if i == len(bounds)-1 {
			c = h.Count()
		}
		counts[i] = c - prev
		prev = c
		if counts[i] > 0 && first < 0 {
			first = i
		}
		most = max(most, counts[i])
	}
	const width = 40
	for i := first; i < len(bounds); i++ {
		bar := int(counts[i] * width / most)
		if bar == 0 && counts[i] > 0 {
			bar = 1
		}
		fmt.Fprintf(w, "  <= %8s |%-*s| %8d %5.1f%%\n", ms(bounds[i]), width, strings.Repeat("#", bar),
			counts[i], 100*float64(counts[i])/float64(h.Count()))
	}
}

// newProgress is a bar redrawn in place when stderr is a terminal, else a
// line per second.
func newProgress(cfg *benchConfig) progressPrinter {
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return &barProgress{lineProgress{cfg: cfg}}
		}
	}
	return &lineProgress{cfg: cfg}
}

type lineProgress struct {
	cfg      *benchConfig
	requests int64
	errors   int64
}

func (p *lineProgress) preload(keys int) {
	fmt.Fprintf(stderr, "bench: writing %d keys first\n", keys)
}

func (p *lineProgress) tick(elapsed time.Duration, rows []secondRow) {
	var ok, n, errs, events int64
	var iv time.Duration
	for _, r := range rows {
		iv = r.interval
		if r.op == opWatch {
			events += r.w.ok
			continue
		}
		ok += r.w.ok
		n += r.w.requests
		errs += r.w.errors
	}
	p.requests += n
	p.errors += errs
	fmt.Fprintf(stderr, "bench %5.1fs %9d requests %8.0f req/s %d errors", elapsed.Seconds(), p.requests, perSec(ok, iv), p.errors)
	if p.cfg.watchers > 0 {
		fmt.Fprintf(stderr, " %8.0f events/s", perSec(events, iv))
	}
	fmt.Fprintln(stderr)
}

func (p *lineProgress) done() {}

type barProgress struct{ lineProgress }

func (p *barProgress) preload(keys int) {
	fmt.Fprintf(stderr, "writing %d keys first...", keys)
}

func (p *barProgress) tick(elapsed time.Duration, rows []secondRow) {
	var ok, n, errs int64
	var iv time.Duration
	for _, r := range rows {
		if r.op == opWatch {
			continue
		}
		iv = r.interval
		ok += r.w.ok
		n += r.w.requests
		errs += r.w.errors
	}
	p.requests += n
	p.errors += errs
	frac := 0.0
	if p.cfg.requests > 0 {
		frac = float64(p.requests) / float64(p.cfg.requests)
	}
	if p.cfg.duration > 0 {
		frac = max(frac, elapsed.Seconds()/p.cfg.duration.Seconds())
	}
	frac = min(frac, 1)
	const width = 30
	filled := int(frac * width)
	fmt.Fprintf(stderr, "\r\x1b[K[%s%s] %3.0f%% %5.1fs %d req %.0f req/s %d errors",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*frac, elapsed.Seconds(), p.requests, perSec(ok, iv), p.errors)
}

func (p *barProgress) done() { fmt.Fprintln(stderr) }
