package load

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/strata-kv/strata/internal/loadclient"
)

// WriteTable writes a human-readable summary of r.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s\n", r.Target)
	fmt.Fprintf(&b, "workload    %d%% put / %d%% get, %d clients, %d B values, %d keys\n",
		r.PutPercent, 100-r.PutPercent, r.Clients, r.ValueSize, r.Keys)
	fmt.Fprintf(&b, "elapsed     %.3fs\n", r.Elapsed.Seconds())
	fmt.Fprintf(&b, "requests    %d (ok %d, non-2xx %d, errors %d)\n", r.Requests, r.OK, r.Non2xx, r.Errors)
	if len(r.Status) > 0 {
		codes := make([]int, 0, len(r.Status))
		for c := range r.Status {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%d×%d", c, r.Status[c])
		}
		fmt.Fprintf(&b, "non-2xx     %s\n", strings.Join(parts, ", "))
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error %s\n", r.FirstError)
	}
	fmt.Fprintf(&b, "throughput  %.1f req/s\n", r.Throughput)
	fmt.Fprintf(&b, "latency ms  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		loadclient.Ms(r.Mean), loadclient.Ms(r.P50), loadclient.Ms(r.P90), loadclient.Ms(r.P99), loadclient.Ms(r.P999), loadclient.Ms(r.Max))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCSV writes loadclient.CSVHeader and one row per result; labels[i] names results[i]
// (missing labels are empty).
func WriteCSV(w io.Writer, labels []string, results ...*Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(loadclient.CSVHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for i, r := range results {
		label := ""
		if i < len(labels) {
			label = labels[i]
		}
		if err := cw.Write(r.CSVRow(label)); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// WriteJSON writes r as indented JSON (durations in nanoseconds).
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// PrefixLines returns a writer for Config.Progress that writes each line
// (Run writes one per call) to w after prefix.
func PrefixLines(w io.Writer, prefix string) io.Writer { return prefixWriter{w, prefix} }

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
