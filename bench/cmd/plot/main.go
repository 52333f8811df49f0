// Command plot renders load-test results as an SVG chart: requests/s (or a
// latency column) by server and client count, one panel per workload (PUT,
// GET, mixes), medians of the rounds with min–max whiskers.
//
//	go run ./bench/cmd/compare --csv /tmp/runs.csv
//	go run ./bench/cmd/plot --out docs/compare.svg /tmp/runs.csv
//	go run ./bench/cmd/plot --metric p99_ms --style bar --only etcd,strata runs.csv > p99.svg
//
// Input is the CSV written by compare --csv, tradeoff --csv or v2load --csv
// (the loadclient.CSVHeader columns; several files may be given). A label
// of the form <series>/<scenario>/r<N> puts the run on the <series> line;
// any other label (v2load --label) is the series name itself. The SVG is
// written by hand: no dependencies, and it renders in browsers and on
// GitHub.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// metricLabels are the axis titles of the columns worth plotting.
var metricLabels = map[string]string{
	"req_per_sec": "requests/s",
	"mean_ms":     "mean latency (ms)",
	"p50_ms":      "p50 latency (ms)",
	"p90_ms":      "p90 latency (ms)",
	"p99_ms":      "p99 latency (ms)",
	"p999_ms":     "p99.9 latency (ms)",
	"max_ms":      "max latency (ms)",
}

func mainErr(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the SVG here (default stdout)")
	title := fs.String("title", "", "chart title (default from the metric)")
	metric := fs.String("metric", "req_per_sec", "CSV column to plot: req_per_sec, mean_ms, p50_ms, p90_ms, p99_ms, p999_ms, max_ms")
	style := fs.String("style", "line", "line or bar")
	only := fs.String("only", "", "comma-separated series to plot, in legend order (default: all, in order of appearance)")
	width := fs.Int("width", 960, "image width in pixels")
	height := fs.Int("height", 420, "image height in pixels")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plot [flags] [file.csv ...]   (no file: read stdin)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "plot: %v\n", err)
		return 1
	}
	ylabel, ok := metricLabels[*metric]
	if !ok {
		return fail(fmt.Errorf("--metric %q: not a plottable column", *metric))
	}
	if *style != "line" && *style != "bar" {
		return fail(fmt.Errorf("--style %q: want line or bar", *style))
	}
	if *width < 400 || *height < 200 || *width > 10000 || *height > 10000 {
		return fail(errors.New("--width must be 400..10000 and --height 200..10000"))
	}
	rows, err := readInputs(fs.Args(), stdin)
	if err != nil {
		return fail(err)
	}
	var order []string
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			order = append(order, s)
		}
	}
	panels, series, err := chartData(rows, *metric, order)
	if err != nil {
		return fail(err)
	}
	if *title == "" {
		*title = ylabel + " by client count"
	}
	c := chart{Title: *title, YLabel: ylabel, Style: *style, Width: *width, Height: *height, Panels: panels, Series: series}
	if err := writeSVG(*out, stdout, c); err != nil {
		return fail(err)
	}
	return 0
}

// readInputs reads the rows of every named CSV file, or of stdin if none
// is named.
func readInputs(names []string, stdin io.Reader) ([]row, error) {
	if len(names) == 0 {
		rows, err := readRows(stdin)
		if err != nil {
			return nil, fmt.Errorf("stdin: %w", err)
		}
		return rows, nil
	}
	var rows []row
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r, err := readRows(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// writeSVG renders c to the file out, or to stdout if out is empty.
func writeSVG(out string, stdout io.Writer, c chart) error {
	if out == "" {
		return render(stdout, c)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := render(f, c); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
