package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	tests := []struct {
		in      string
		want    []Scenario
		wantErr bool
	}{
		{in: "put1,put16,get16", want: []Scenario{{"put1", 100, 1}, {"put16", 100, 16}, {"get16", 0, 16}}},
		{in: " mixed20x8 ,", want: []Scenario{{"mixed20x8", 20, 8}}},
		{in: "", wantErr: true},
		{in: "put0", wantErr: true},
		{in: "del4", wantErr: true},
		{in: "mixed120x4", wantErr: true},
		{in: "mixed20", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseScenarios(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	got := expand("{bin} --data-dir {data}  --listen-client-urls {client}", map[string]string{
		"bin": "/x/strata", "data": "/d", "client": "http://127.0.0.1:9"})
	want := "/x/strata --data-dir /d --listen-client-urls http://127.0.0.1:9"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q", got)
	}
}

func testOptions(t *testing.T) *Options {
	sc, err := ParseScenarios("put1,get4")
	if err != nil {
		t.Fatal(err)
	}
	return &Options{
		Duration: 200 * time.Millisecond, Rounds: 2, Scenarios: sc, Keys: 20, ValueSize: 16,
		StrataBin: "/nonexistent/strata", StrataCmd: defaultStrataCmd,
		DataRoot: t.TempDir(), Quiet: true, StartupMax: 5 * time.Second,
		CSVPath: filepath.Join(t.TempDir(), "runs.csv"),
	}
}

// TestRunCeilingOnly runs the whole pipeline against the in-process server
// and checks that a Strata that cannot start is reported, not fatal.
func TestRunCeilingOnly(t *testing.T) {
	o := testOptions(t)
	var out, errOut strings.Builder
	if err := run(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	md := out.String()
	for _, want := range []string{"| PUT, 1 client | net/http ceiling |", "| GET, 4 clients | net/http ceiling |", "strata not run"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(o.CSVPath)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1+2*2 {
		t.Fatalf("csv has %d lines, want 5:\n%s", lines, b)
	}
	if entries, _ := os.ReadDir(o.DataRoot); len(entries) != 0 {
		t.Fatalf("temp dir not removed: %v", entries)
	}
}

func TestRunEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping etcd test in -short mode")
	}
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		t.Skipf("etcd not installed: %v", err)
	}
	o := testOptions(t)
	o.EtcdBin, o.Rounds, o.NoStrata = "/usr/bin/etcd", 1, true
	var out, errOut strings.Builder
	if err := run(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	md := out.String()
	for _, sc := range []string{"PUT, 1 client", "GET, 4 clients"} {
		row := "| " + sc + " | etcd |"
		i := strings.Index(md, row)
		if i < 0 {
			t.Fatalf("no %q row:\n%s", row, md)
		}
		line := md[i : i+strings.Index(md[i:], "\n")]
		if !strings.HasSuffix(line, "| 1.00 | 0 |") {
			t.Fatalf("etcd row should have ratio 1.00 and 0 failures: %s", line)
		}
	}
}
