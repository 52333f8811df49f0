package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-kv/strata/bench/load"
)

// row is one measured run from a load CSV (loadclient.CSVHeader columns).
type row struct {
	Series  string // server/backend the run measured
	Kind    string // "PUT", "GET" or "20% PUT"
	Clients int
	Values  map[string]float64 // numeric columns by header name
}

// roundSuffix matches the "/r<N>" round number compare and tradeoff put at
// the end of a label.
var roundSuffix = regexp.MustCompile(`/r[0-9]+$`)

// seriesOf names the line a run belongs to. compare and tradeoff label runs
// "<server>/<scenario>/r<round>"; v2load's --label is free-form, so a label
// without that shape is used whole, and an empty one falls back to the
// target URL.
func seriesOf(label, target string) string {
	label = strings.TrimSpace(label)
	if label == "" {
		return target
	}
	if roundSuffix.MatchString(label) {
		rest := roundSuffix.ReplaceAllString(label, "")
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			return rest[:i] // drop the scenario too; a server name may hold '/'
		}
		return rest
	}
	return label
}

// kindOf names a workload by its PUT share.
func kindOf(putPercent int) string {
	switch putPercent {
	case 100:
		return "PUT"
	case 0:
		return "GET"
	}
	return fmt.Sprintf("%d%% PUT", putPercent)
}

// readRows parses a CSV written by compare --csv, tradeoff --csv or v2load
// --csv. Repeated header lines (v2load --csv >> file appends one per run)
// are skipped; columns are found by name, so extra columns are harmless.
func readRows(r io.Reader) ([]row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var col map[string]int
	var rows []row
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) > 0 && rec[0] == "label" {
			col = map[string]int{}
			for i, h := range rec {
				col[strings.TrimSpace(h)] = i
			}
			for _, need := range []string{"clients", "put_percent", "req_per_sec"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("line %d: header has no %q column", line, need)
				}
			}
			continue
		}
		if col == nil {
			return nil, fmt.Errorf("line %d: data before the header row (want loadclient.CSVHeader columns)", line)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		clients, err := strconv.Atoi(get("clients"))
		if err != nil || clients < 1 {
			return nil, fmt.Errorf("line %d: bad clients %q", line, get("clients"))
		}
		put, err := strconv.Atoi(get("put_percent"))
		if err != nil || put < 0 || put > 100 {
			return nil, fmt.Errorf("line %d: bad put_percent %q", line, get("put_percent"))
		}
		rw := row{Series: seriesOf(get("label"), get("target")), Kind: kindOf(put), Clients: clients, Values: map[string]float64{}}
		for name, i := range col {
			if i >= len(rec) {
				continue
			}
			if v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64); err == nil {
				rw.Values[name] = v
			}
		}
		rows = append(rows, rw)
	}
	if len(rows) == 0 {
		return nil, errors.New("no data rows")
	}
	return rows, nil
}

// point is the summary of every run of one series × kind × client count.
type point struct {
	Clients       int
	Med, Min, Max float64
	N             int
}

// panel is one chart: a workload kind, with a line (or bar group) per series.
type panel struct {
	Kind    string
	Clients []int              // x positions, ascending
	Series  map[string][]point // by series, points ascending by clients
}

// chartData groups rows into panels (one per workload kind) of medians of
// metric. order, if not empty, selects and orders the series; otherwise
// series appear in order of first appearance.
func chartData(rows []row, metric string, order []string) ([]panel, []string, error) {
	type key struct {
		kind, series string
		clients      int
	}
	vals := map[key][]float64{}
	var kinds, series []string
	for _, r := range rows {
		v, ok := r.Values[metric]
		if !ok {
			return nil, nil, fmt.Errorf("no %q column", metric)
		}
		if len(order) > 0 && !slices.Contains(order, r.Series) {
			continue
		}
		k := key{r.Kind, r.Series, r.Clients}
		vals[k] = append(vals[k], v)
		if !slices.Contains(kinds, r.Kind) {
			kinds = append(kinds, r.Kind)
		}
		if !slices.Contains(series, r.Series) {
			series = append(series, r.Series)
		}
	}
	if len(order) > 0 {
		var kept []string
		for _, s := range order {
			if slices.Contains(series, s) {
				kept = append(kept, s)
			}
		}
		series = kept
	}
	if len(series) == 0 {
		return nil, nil, errors.New("no series left to plot")
	}
	// PUT first, then GET, then mixes: the order a reader expects.
	slices.SortStableFunc(kinds, func(a, b string) int { return kindRank(a) - kindRank(b) })
	var panels []panel
	for _, kind := range kinds {
		p := panel{Kind: kind, Series: map[string][]point{}}
		for k, vs := range vals {
			if k.kind != kind {
				continue
			}
			if !slices.Contains(p.Clients, k.clients) {
				p.Clients = append(p.Clients, k.clients)
			}
			p.Series[k.series] = append(p.Series[k.series], point{
				Clients: k.clients, Med: load.Median(vs), Min: slices.Min(vs), Max: slices.Max(vs), N: len(vs),
			})
		}
		slices.Sort(p.Clients)
		for _, pts := range p.Series {
			slices.SortFunc(pts, func(a, b point) int { return a.Clients - b.Clients })
		}
		panels = append(panels, p)
	}
	return panels, series, nil
}

func kindRank(k string) int {
	switch k {
	case "PUT":
		return 0
	case "GET":
		return 1
	}
	return 2
}
