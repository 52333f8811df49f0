package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// compareCSV is shaped like compare --csv output, plus a second header and
// a row appended by v2load --csv --label (as `>> file` produces).
const compareCSV = `label,target,clients,put_percent,value_size,keys,requests,ok,non2xx,errors,elapsed_s,req_per_sec,mean_ms,p50_ms,p90_ms,p99_ms,p999_ms,max_ms
etcd/put1/r1,http://127.0.0.1:1,1,100,64,1000,100,100,0,0,1.000,1000.0,1,1,1,2,3,4
etcd/put1/r2,http://127.0.0.1:1,1,100,64,1000,100,100,0,0,1.000,1200.0,1,1,1,2,3,4
etcd/put1/r3,http://127.0.0.1:1,1,100,64,1000,100,100,0,0,1.000,1100.0,1,1,1,2,3,4
strata-bbolt/put16/r1,http://127.0.0.1:2,16,100,64,1000,100,100,0,0,1.000,9000.0,1,1,1,2,3,4
strata-bbolt/put16/r2,http://127.0.0.1:2,16,100,64,1000,100,100,0,0,1.000,8000.0,1,1,1,2,3,4
strata-bbolt/put1/r1,http://127.0.0.1:2,1,100,64,1000,100,100,0,0,1.000,1500.0,1,1,1,2,3,4
etcd/get16/r1,http://127.0.0.1:1,16,0,64,1000,100,100,0,0,1.000,20000.0,1,1,1,2,3,4
strata-bbolt/get16/r1,http://127.0.0.1:2,16,0,64,1000,100,100,0,0,1.000,30000.0,1,1,1,2,3,4
label,target,clients,put_percent,value_size,keys,requests,ok,non2xx,errors,elapsed_s,req_per_sec,mean_ms,p50_ms,p90_ms,p99_ms,p999_ms,max_ms
my <run> & co,http://127.0.0.1:3,64,20,64,1000,100,100,0,0,1.000,5000.0,1,1,1,2,3,4
`

func TestSeriesOf(t *testing.T) {
	for _, tc := range []struct{ label, target, want string }{
		{"etcd/put16/r1", "t", "etcd"},
		{"strata-bbolt/get1/r12", "t", "strata-bbolt"},
		{"net/http ceiling/put1/r2", "t", "net/http ceiling"},
		{"run1", "t", "run1"},
		{"a/b", "t", "a/b"},
		{"", "http://x:1", "http://x:1"},
	} {
		if got := seriesOf(tc.label, tc.target); got != tc.want {
			t.Errorf("seriesOf(%q, %q) = %q, want %q", tc.label, tc.target, got, tc.want)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		top  float64
		want []float64
	}{
		{0, []float64{0, 1}},
		{1, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{9000, []float64{0, 2000, 4000, 6000, 8000, 10000}},
		{30000, []float64{0, 10000, 20000, 30000}},
		{31000, []float64{0, 10000, 20000, 30000, 40000}},
		{123, []float64{0, 50, 100, 150}},
	} {
		if got := niceTicks(tc.top); !slices.Equal(got, tc.want) {
			t.Errorf("niceTicks(%v) = %v, want %v", tc.top, got, tc.want)
		}
	}
}

func TestShortNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 2.5: "2.5", 0.123: "0.12", 150: "150", 2000: "2k", 2500: "2.5k", 12000: "12k", 12345: "12.3k", 1.5e6: "1.5M"} {
		if got := shortNum(v); got != want {
			t.Errorf("shortNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestChartData(t *testing.T) {
	rows, err := readRows(strings.NewReader(compareCSV))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 {
		t.Fatalf("%d rows, want 9", len(rows))
	}
	panels, series, err := chartData(rows, "req_per_sec", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"etcd", "strata-bbolt", "my <run> & co"}; !slices.Equal(series, want) {
		t.Errorf("series %q, want %q", series, want)
	}
	var kinds []string
	for _, p := range panels {
		kinds = append(kinds, p.Kind)
	}
	if want := []string{"PUT", "GET", "20% PUT"}; !slices.Equal(kinds, want) {
		t.Fatalf("panels %q, want %q", kinds, want)
	}
	put := panels[0]
	if !slices.Equal(put.Clients, []int{1, 16}) {
		t.Errorf("PUT clients %v, want [1 16]", put.Clients)
	}
	if got, want := put.Series["etcd"], []point{{Clients: 1, Med: 1100, Min: 1000, Max: 1200, N: 3}}; !slices.Equal(got, want) {
		t.Errorf("etcd PUT %+v, want %+v", got, want)
	}
	want := []point{{Clients: 1, Med: 1500, Min: 1500, Max: 1500, N: 1}, {Clients: 16, Med: 8500, Min: 8000, Max: 9000, N: 2}}
	if got := put.Series["strata-bbolt"]; !slices.Equal(got, want) {
		t.Errorf("bbolt PUT %+v, want %+v", got, want)
	}

	// --only selects and orders.
	_, series, err = chartData(rows, "p99_ms", []string{"strata-bbolt", "nope", "etcd"})
	if err != nil || !slices.Equal(series, []string{"strata-bbolt", "etcd"}) {
		t.Errorf("only: series %q err %v", series, err)
	}
	if _, _, err := chartData(rows, "bogus", nil); err == nil {
		t.Error("unknown metric: no error")
	}
}

func TestReadRowsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          "",
		"header only":    "label,target,clients,put_percent,req_per_sec\n",
		"no header":      "etcd/put1/r1,http://x,1,100,5\n",
		"missing column": "label,clients,put_percent\nx,1,100\n",
		"bad clients":    "label,target,clients,put_percent,req_per_sec\nx,t,zero,100,5\n",
		"bad percent":    "label,target,clients,put_percent,req_per_sec\nx,t,1,101,5\n",
	} {
		if _, err := readRows(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// svgStats parses doc as XML and counts what a reader of the chart needs.
type svgStats struct {
	root               string
	width, height      string
	polylines, circles int
	rects              int
	texts              []string
	seriesGroups       []string
}

func parseSVG(t *testing.T, doc []byte) svgStats {
	t.Helper()
	var s svgStats
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				s.root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", el.Name.Space)
				}
				for _, a := range el.Attr {
					switch a.Name.Local {
					case "width":
						s.width = a.Value
					case "height":
						s.height = a.Value
					}
				}
			}
			depth++
			switch el.Name.Local {
			case "polyline":
				s.polylines++
			case "circle":
				s.circles++
			case "rect":
				s.rects++
			case "text":
				inText = true
			case "g":
				for _, a := range el.Attr {
					if a.Name.Local == "data-series" {
						s.seriesGroups = append(s.seriesGroups, a.Value)
					}
				}
			}
		case xml.EndElement:
			depth--
			if el.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				s.texts = append(s.texts, string(el))
			}
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements (depth %d)", depth)
	}
	return s
}

func TestRenderWellFormedSVG(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "runs.csv")
	if err := os.WriteFile(in, []byte(compareCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, style := range []string{"line", "bar"} {
		t.Run(style, func(t *testing.T) {
			out := filepath.Join(dir, style+".svg")
			var stderr bytes.Buffer
			if code := mainErr([]string{"--style", style, "--title", "PUT & GET", "--out", out, in}, nil, io.Discard, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			doc, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			s := parseSVG(t, doc)
			if s.root != "svg" || s.width != "960" || s.height != "420" {
				t.Errorf("root <%s width=%q height=%q>, want <svg width=960 height=420>", s.root, s.width, s.height)
			}
			// Series groups: etcd + bbolt in PUT and GET, the mix in its panel.
			if want := []string{"etcd", "strata-bbolt", "etcd", "strata-bbolt", "my <run> & co"}; !slices.Equal(s.seriesGroups, want) {
				t.Errorf("series groups %q, want %q", s.seriesGroups, want)
			}
			for _, want := range []string{"PUT & GET", "PUT", "GET", "20% PUT", "requests/s", "clients", "etcd", "strata-bbolt", "my <run> & co", "1", "16", "64", "10k", "30k"} {
				if !slices.Contains(s.texts, want) {
					t.Errorf("no text %q in %q", want, s.texts)
				}
			}
			points := 3 + 2 + 1 // PUT: etcd@1, bbolt@1 and @16; GET: one each; mix: 1
			switch style {
			case "line":
				if s.polylines != 5 || s.circles != points {
					t.Errorf("%d polylines, %d markers; want 5, %d", s.polylines, s.circles, points)
				}
			case "bar":
				if s.polylines != 0 || s.rects != points+1 { // +1: background
					t.Errorf("%d polylines, %d rects; want 0, %d", s.polylines, s.rects, points+1)
				}
			}
		})
	}
}

func TestStdinAndFlagErrors(t *testing.T) {
	var out, stderr bytes.Buffer
	if code := mainErr([]string{"--metric", "p99_ms"}, strings.NewReader(compareCSV), &out, &stderr); code != 0 {
		t.Fatalf("stdin: exit %d: %s", code, stderr.String())
	}
	if s := parseSVG(t, out.Bytes()); !slices.Contains(s.texts, "p99 latency (ms)") {
		t.Errorf("p99 chart has no p99 axis title: %q", s.texts)
	}
	for _, args := range [][]string{
		{"--metric", "label"},
		{"--style", "pie"},
		{"--width", "10"},
		{"/nonexistent.csv"},
		{"--only", "nobody"},
	} {
		stderr.Reset()
		if code := mainErr(args, strings.NewReader(compareCSV), io.Discard, &stderr); code == 0 {
			t.Errorf("%q: exit 0", args)
		} else if !strings.HasPrefix(stderr.String(), "plot: ") {
			t.Errorf("%q: stderr %q", args, stderr.String())
		}
	}
}
