package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/bench/internal/probe"
	"github.com/strata-kv/strata/bench/load"
	"github.com/strata-kv/strata/internal/loadclient"
)

func TestMeasureDisk(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"member/wal/0.wal":   8192,
		"member/snap/1.snap": 4096,
		"member/snap/db":     4096,
		"db/strata.db":       12288,
		"LOCK":               0,
		"walnut/x":           4096, // not "wal": the store
	}
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{1}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := probe.MeasureDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Written data of a multiple of 4 KiB takes exactly that many blocks
	// on the usual file systems; allow for bigger blocks, never fewer.
	if d.Apparent != 32768 {
		t.Errorf("apparent %d, want 32768", d.Apparent)
	}
	if d.WAL < 8192 || d.Snap < 8192 || d.Store < 16384 || d.Total() != d.WAL+d.Snap+d.Store {
		t.Errorf("usage %+v: want WAL ≥ 8192, snap ≥ 8192, store ≥ 16384", d)
	}
	if got := newestSnapSize(dir); got != 4096 {
		t.Errorf("newest snapshot %d bytes, want 4096", got)
	}
}

func TestLastSnapshot(t *testing.T) {
	// A debug line of older builds and the current info line.
	log := `time=2026-11-21T02:40:29.919Z level=DEBUG msg="consensus: snapshot" member=bdae9bbc11dd390d index=5 term=2 duration=1.598946ms
time=2026-11-21T02:40:29.920Z level=INFO msg="something else" index=99 duration=1s
time=2026-11-21T02:40:31.953Z level=INFO msg="consensus: snapshot taken" member=bdae9bbc11dd390d index=1000004 term=2 duration=2.5s image=true
`
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	idx, d, ok, err := lastSnapshot(p)
	if err != nil || !ok || idx != 1000004 || d != 2500*time.Millisecond {
		t.Errorf("lastSnapshot = %d, %v, %v, %v; want 1000004, 2.5s, true", idx, d, ok, err)
	}
	if err := os.WriteFile(p, []byte("nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := lastSnapshot(p); ok || err != nil {
		t.Errorf("no snapshot line: ok %v err %v", ok, err)
	}
}

func TestParseSpecs(t *testing.T) {
	got, err := parseSpecs("etcd, memory,bbolt-nofsync")
	if err != nil {
		t.Fatal(err)
	}
	want := []spec{{Name: "etcd"}, {Name: "strata-memory", Backend: "memory"}, {Name: "strata-bbolt-nofsync", Backend: "bbolt", NoFsync: true}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"memory,memory", "-nofsync", "Bad Name", "a/b"} {
		if _, err := parseSpecs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestAggregate(t *testing.T) {
	res := func(rps float64, p99ms int, failed int64) *load.Result {
		return &load.Result{Summary: loadclient.Summary{Throughput: rps, P99: time.Duration(p99ms) * time.Millisecond, Non2xx: failed}}
	}
	r := &Results{order: []string{"a"}, Samples: []sample{
		{"a", "put", 1, 1, res(100, 3, 0)}, {"a", "put", 1, 2, res(300, 1, 1)}, {"a", "put", 1, 3, res(200, 2, 0)},
		{"a", "get", 1, 1, res(50, 1, 0)}, {"a", "get", 1, 2, res(70, 1, 0)},
		{"b", "put", 1, 1, res(1, 1, 0)}, // not in order: not reported
	}}
	r.aggregate(&Options{Workloads: []string{"put", "get"}, Clients: []int{1, 16}})
	want := []Throughput{
		{Server: "a", Workload: "put", Clients: 1, RPS: 200, RPSMin: 100, RPSMax: 300, P99ms: 2, Failed: 1},
		{Server: "a", Workload: "get", Clients: 1, RPS: 60, RPSMin: 50, RPSMax: 70, P99ms: 1},
	}
	if !slices.Equal(r.Throughput, want) {
		t.Errorf("got %+v\nwant %+v", r.Throughput, want)
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	for _, args := range [][]string{
		{"--clients", "0"}, {"--workloads", "delete"}, {"--rounds", "0"}, {"--large-servers", "bbolt-nofsync"}, {"extra"},
	} {
		stderr.Reset()
		if _, err := parseFlags(args, &stderr); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	o, err := parseFlags(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Servers) != 6 || !slices.Equal(o.Clients, []int{1, 16, 64}) || o.Keys != 100_000 || o.Large != 1_000_000 {
		t.Errorf("defaults: %+v", o)
	}
}

// TestTinyRun runs the whole tool against a tiny Strata (memory backend):
// every phase, the markdown, the CSV and the JSON.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	dir := t.TempDir()
	csvPath, jsonPath := filepath.Join(dir, "runs.csv"), filepath.Join(dir, "res.json")
	var stdout, stderr bytes.Buffer
	o, err := parseFlags([]string{"--servers", "memory", "--large-servers", "bbolt", "--keys", "50", "--load-clients", "4",
		"--clients", "1,2", "--rounds", "2", "--duration", "100ms", "--warmup", "0s", "--large", "300",
		"--data-root", dir, "--csv", csvPath, "--json", jsonPath}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, o, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"| strata-memory | ", "PUT ×2", "GET ×1", "### 300 keys: snapshot and restart", "| strata-bbolt | "} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	var res Results
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Throughput) != 4 || len(res.Footprint) != 1 || len(res.Large) != 1 {
		t.Fatalf("results: %d throughput, %d footprint, %d large rows", len(res.Throughput), len(res.Footprint), len(res.Large))
	}
	for _, tp := range res.Throughput {
		if tp.RPS <= 0 || tp.Failed != 0 {
			t.Errorf("throughput %+v", tp)
		}
	}
	if f := res.Footprint[0]; f.Mem.VmRSS <= 0 || f.Heap <= 0 || f.HeapAfter <= 0 || f.Disk.WAL <= 0 || f.RestartSeconds <= 0 || f.MemAfter.VmRSS <= 0 {
		t.Errorf("footprint %+v", f)
	}
	if l := res.Large[0]; l.Error != "" || l.Heap <= 0 || l.HeapAfter <= 0 || l.SnapshotIndex < 300 || l.SnapshotBytes <= 0 || l.RestartSeconds <= 0 {
		t.Errorf("large %+v", l)
	}
	csv, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	// Header + 2 workloads × 2 client counts × 2 rounds.
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != 9 || !strings.HasPrefix(lines[1], "strata-memory/put1/r1,") {
		t.Errorf("csv:\n%s", csv)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("data root holds %d entries after the run, want only the csv and json", len(entries))
	}
}
