package loadclient

import (
	"strconv"
	"time"
)

// Summary is what the measured phase of a load run did (warmup and preload
// excluded).
type Summary struct {
	Target     string `json:"target"`
	Clients    int    `json:"clients"`
	PutPercent int    `json:"put_percent"`
	ValueSize  int    `json:"value_size"`
	Keys       int    `json:"keys"`

	// Requests is the number of requests attempted in the measured phase:
	// OK + Non2xx + Errors.
	Requests int64 `json:"requests"`
	// OK counts 2xx responses; only these contribute to latency figures.
	OK int64 `json:"ok"`
	// Non2xx counts responses with a status outside 200..299.
	Non2xx int64 `json:"non2xx"`
	// Errors counts transport failures (connection errors, timeouts).
	Errors int64 `json:"errors"`
	// Status counts non-2xx responses by HTTP status code.
	Status map[int]int64 `json:"status,omitempty"`
	// FirstError is the text of the first transport error, if any.
	FirstError string `json:"first_error,omitempty"`

	Elapsed time.Duration `json:"elapsed_ns"`
	// Throughput is OK / Elapsed in requests per second.
	Throughput float64 `json:"req_per_sec"`

	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// Ms formats d as milliseconds with three decimals, e.g. "1.234".
func Ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// CSVHeader names the columns of CSVRow.
var CSVHeader = []string{"label", "target", "clients", "put_percent", "value_size", "keys",
	"requests", "ok", "non2xx", "errors", "elapsed_s", "req_per_sec",
	"mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}

// CSVRow returns s as a CSV record matching CSVHeader.
func (s *Summary) CSVRow(label string) []string {
	i := strconv.Itoa
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{label, s.Target, i(s.Clients), i(s.PutPercent), i(s.ValueSize), i(s.Keys),
		i64(s.Requests), i64(s.OK), i64(s.Non2xx), i64(s.Errors),
		strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 3, 64),
		strconv.FormatFloat(s.Throughput, 'f', 1, 64),
		Ms(s.Mean), Ms(s.P50), Ms(s.P90), Ms(s.P99), Ms(s.P999), Ms(s.Max)}
}
