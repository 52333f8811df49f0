package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/internal/loadclient"
)

// benchTable returns the table rows of bench's report by operation name:
// REQUESTS, OK and ERRORS of each.
func benchTable(t *testing.T, out string) map[string][3]int64 {
	t.Helper()
	rows := map[string][3]int64{}
	inTable := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "OP":
			inTable = true
		case inTable && len(f) == 11:
			var v [3]int64
			for i := range v {
				n, err := strconv.ParseInt(f[1+i], 10, 64)
				if err != nil {
					t.Fatalf("table row %q: %v", l, err)
				}
				v[i] = n
			}
			rows[f[0]] = v
		default:
			inTable = false
		}
	}
	return rows
}

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return recs
}

// TestBench runs exactly 200 requests and checks the table, the per-second
// CSV and the summary row add up to them.
func TestBench(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	dir := t.TempDir()
	perSecond, summary := filepath.Join(dir, "run.csv"), filepath.Join(dir, "summary.csv")
	args := a("--endpoints", srv.clientURL, "bench", "--requests", "200", "--clients", "4", "--quiet",
		"--csv", perSecond, "--summary-csv", summary, "--label", "strata/memory")
	r := runCtl(t, ctl, args, nil, "")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("bench: exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
	}
	table := benchTable(t, r.stdout)
	if got, want := table["total"], [3]int64{200, 200, 0}; got != want {
		t.Errorf("total row: requests, ok, errors = %v, want %v\n%s", got, want, r.stdout)
	}
	put, get := table["put"], table["get"]
	if put[0]+get[0] != 200 || put[2]+get[2] != 0 {
		t.Errorf("put %v + get %v do not add up to 200 requests, 0 errors", put, get)
	}
	for _, want := range []string{"workload   50% put / 50% get, 4 clients, 0 watchers, 64-byte values, 1000 keys under /bench\n",
		"latency of ok requests (put and get), ms:\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}

	recs := readCSV(t, perSecond)
	if !slices.Equal(recs[0], benchCSVHeader) {
		t.Fatalf("csv header %q, want %q", recs[0], benchCSVHeader)
	}
	sums := map[string][3]int64{}
	for _, rec := range recs[1:] {
		if len(rec) != len(benchCSVHeader) {
			t.Fatalf("csv row %q: %d fields", rec, len(rec))
		}
		v := sums[rec[2]]
		for i := range v {
			n, err := strconv.ParseInt(rec[3+i], 10, 64)
			if err != nil {
				t.Fatalf("csv row %q: %v", rec, err)
			}
			v[i] += n
		}
		sums[rec[2]] = v
	}
	if len(sums) != 2 || sums["put"] != put || sums["get"] != get {
		t.Errorf("csv sums %v, want put %v get %v", sums, put, get)
	}
	// Every interval has a row per operation.
	if (len(recs)-1)%2 != 0 {
		t.Errorf("csv has %d rows, not a put and a get row per interval", len(recs)-1)
	}

	recs = readCSV(t, summary)
	if len(recs) != 2 || !slices.Equal(recs[0], loadclient.CSVHeader) {
		t.Fatalf("summary csv %q, want a header and one row", recs)
	}
	row := map[string]string{}
	for i, h := range recs[0] {
		row[h] = recs[1][i]
	}
	for k, want := range map[string]string{"label": "strata/memory", "target": srv.clientURL, "clients": "4",
		"put_percent": "50", "value_size": "64", "keys": "1000", "requests": "200", "ok": "200", "non2xx": "0", "errors": "0"} {
		if row[k] != want {
			t.Errorf("summary %s = %q, want %q", k, row[k], want)
		}
	}
	// A second run appends a row, no second header.
	args = a("--endpoints", srv.clientURL, "bench", "--mix", "get=1", "--keys", "10", "--requests", "50", "--clients", "2",
		"--quiet", "--summary-csv", summary)
	r = runCtl(t, ctl, args, nil, "")
	if got, want := benchTable(t, r.stdout)["get"], [3]int64{50, 50, 0}; r.code != 0 || got != want {
		t.Errorf("get-only bench: exit %d, get row %v, want %v\n%s%s", r.code, got, want, r.stdout, r.stderr)
	}
	if recs = readCSV(t, summary); len(recs) != 3 || recs[2][3] != "0" || recs[2][6] != "50" {
		t.Errorf("summary after the second run: %q", recs)
	}
}

// TestBenchWatch: every watcher receives every write.
func TestBenchWatch(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	args := a("--endpoints", srv.clientURL, "bench", "--mix", "put=100", "--watchers", "3", "--requests", "100",
		"--clients", "2", "--quiet")
	r := runCtl(t, ctl, args, nil, "")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("bench: exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
	}
	if got := benchTable(t, r.stdout)["put"]; got != [3]int64{100, 100, 0} {
		t.Errorf("put row %v", got)
	}
	want := "watch      300 events received by 3 watchers (300 expected: watchers × ok puts), 0 broken streams\n"
	if !strings.Contains(r.stdout, want) {
		t.Errorf("report lacks %q:\n%s", want, r.stdout)
	}
}

// TestBenchFailures: failed requests are counted and make exit 4; bad flags
// and unreachable endpoints exit as etcdctl's commands do.
func TestBenchFailures(t *testing.T) {
	ctl, _ := binaries(t)
	srv := startServer(t, "strata")
	if r := runCtl(t, ctl, a("--endpoints", srv.clientURL, "set", "/file", "x"), nil, ""); r.code != 0 {
		t.Fatalf("set: %+v", r)
	}
	// PUT /file/k<N>: 104 Not a directory, every time.
	r := runCtl(t, ctl, a("--endpoints", srv.clientURL, "bench", "--prefix", "/file", "--mix", "put=1",
		"--requests", "10", "--clients", "2", "--quiet"), nil, "")
	if got := benchTable(t, r.stdout)["put"]; r.code != 4 || got != [3]int64{10, 0, 10} {
		t.Errorf("bench on a file: exit %d, put row %v, want exit 4 and [10 0 10]\n%s", r.code, got, r.stdout)
	}
	if !strings.Contains(r.stdout, "\nfirst error: PUT /v2/keys/file/k") {
		t.Errorf("no first error in\n%s", r.stdout)
	}

	ep := a("--endpoints", srv.clientURL)
	for _, tc := range []struct {
		args   []string
		stderr string
		code   int
	}{
		{append(ep, "bench", "--mix", "put=1,del=1"), "Error:  --mix \"put=1,del=1\": unknown operation \"del\" (put, get; watchers: --watchers)\n", 1},
		{append(ep, "bench", "--mix", "put"), "Error:  --mix \"put\": want op=weight[,op=weight], e.g. put=20,get=80\n", 1},
		{append(ep, "bench", "--mix", "put=1,get=2"), "Error:  --mix \"put=1,get=2\": the weights must make whole percentages\n", 1},
		{append(ep, "bench", "--mix", "get=1", "--watchers", "1"), "Error:  --watchers needs puts in --mix\n", 1},
		{append(ep, "bench", "--clients", "0"), "Error:  --clients must be at least 1\n", 1},
		{append(ep, "bench", "--requests", "-1"), "Error:  --duration, --requests and --rate must not be negative\n", 1},
		{append(ep, "bench", "/foo"), "Error:  bench takes no arguments\n", 1},
		{append(ep, "bench", "--clients", "x"), "invalid value \"x\" for flag -clients: parse error\n", 1},
		{append(ep, "bench", "--bogus"), "flag provided but not defined: -bogus\n", 1},
		{a("--endpoints", "http://127.0.0.1:1", "bench", "--requests", "1"),
			"Error:  http://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n", 2},
	} {
		r := runCtl(t, ctl, tc.args, nil, "")
		if r.code != tc.code || r.stderr != tc.stderr {
			t.Errorf("stratactl %q: exit %d, stderr %q; want exit %d, stderr %q", tc.args, r.code, r.stderr, tc.code, tc.stderr)
		}
	}
}

func TestHistogramBars(t *testing.T) {
	var h loadclient.Histogram
	for _, us := range []int{15, 15, 150, 150, 150, 150, 3000} {
		h.Record(time.Duration(us) * time.Microsecond)
	}
	var b strings.Builder
	writeHistogram(&b, &h)
	want := "" +
		"  <=    0.020 |####################                    |        2  28.6%\n" +
		"  <=    0.050 |                                        |        0   0.0%\n" +
		"  <=    0.100 |                                        |        0   0.0%\n" +
		"  <=    0.200 |########################################|        4  57.1%\n" +
		"  <=    0.500 |                                        |        0   0.0%\n" +
		"  <=    1.000 |                                        |        0   0.0%\n" +
		"  <=    2.000 |                                        |        0   0.0%\n" +
		"  <=    5.000 |##########                              |        1  14.3%\n"
	if b.String() != want {
		t.Errorf("histogram:\n%s\nwant:\n%s", b.String(), want)
	}
}
