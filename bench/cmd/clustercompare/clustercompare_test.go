package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != 3 || !slices.Equal(o.Clients, []int{16, 64}) || !slices.Equal(o.Modes, []Mode{Spread, Leader}) ||
		o.Rounds != 3 || o.Duration != 5*time.Second || o.Warmup != time.Second ||
		o.EtcdBin != "/usr/bin/etcd" || o.NoStrata || o.CPUProfile != "" || o.Keys != 1000 || o.ValueSize != 64 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--cluster", "5", "--clients", " 1, 8 ,", "--modes", "leader", "--rounds", "1",
		"--duration", "2s", "--warmup", "0s", "--strata-args", "--backend  bbolt", "--etcd-args", "--quota-backend-bytes=1",
		"--cpu-profile", "/tmp/p"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != 5 || !slices.Equal(o.Clients, []int{1, 8}) || !slices.Equal(o.Modes, []Mode{Leader}) || o.Rounds != 1 ||
		o.Duration != 2*time.Second || o.Warmup != 0 || !slices.Equal(o.StrataArgs, []string{"--backend", "bbolt"}) ||
		!slices.Equal(o.EtcdArgs, []string{"--quota-backend-bytes=1"}) || o.CPUProfile != "/tmp/p" {
		t.Fatalf("parsed: %+v", o)
	}
	for _, bad := range [][]string{
		{"--cluster", "2"}, {"--cluster", "9"}, {"--clients", "0"}, {"--clients", "x"}, {"--clients", ","},
		{"--modes", "follower"}, {"--modes", ""}, {"--rounds", "0"}, {"--duration", "0s"}, {"--warmup", "-1s"},
		{"--keys", "0"}, {"--no-strata", "--etcd-bin", ""}, {"extra"},
	} {
		var errOut strings.Builder
		if _, err := parseFlags(bad, &errOut); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(errOut.String(), "clustercompare: ") && !strings.Contains(errOut.String(), "invalid value") {
			t.Errorf("%q: no message: %q", bad, errOut.String())
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want []int
	}{{16, 3, []int{6, 5, 5}}, {64, 3, []int{22, 21, 21}}, {2, 3, []int{1, 1, 0}}, {9, 3, []int{3, 3, 3}}, {5, 1, []int{5}}} {
		if got := split(tc.n, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("split(%d, %d) = %v, want %v", tc.n, tc.k, got, tc.want)
		}
	}
}

func TestArgv(t *testing.T) {
	ms := layout("etcd", "/d", 3, []int{1, 2, 3, 4, 5, 6})
	ic := "etcd1=http://127.0.0.1:2,etcd2=http://127.0.0.1:4,etcd3=http://127.0.0.1:6"
	want := "/usr/bin/etcd --enable-v2=true --name etcd2 --data-dir /d/etcd2" +
		" --listen-client-urls http://127.0.0.1:3 --advertise-client-urls http://127.0.0.1:3" +
		" --listen-peer-urls http://127.0.0.1:4 --initial-advertise-peer-urls http://127.0.0.1:4" +
		" --initial-cluster " + ic + " --initial-cluster-state new --initial-cluster-token tok --log-level warn --x"
	if got := strings.Join(etcdArgv("/usr/bin/etcd", ms[1], ms, "tok", []string{"--x"}), " "); got != want {
		t.Fatalf("etcd argv\n got %s\nwant %s", got, want)
	}
	ss := layout("strata", "/s", 3, []int{1, 2, 3, 4, 5, 6})
	got := strings.Join(strataArgv("/b/strata", ss[0], ss, "tok", true, nil), " ")
	want = "/b/strata --name strata1 --data-dir /s/strata1" +
		" --listen-client-urls http://127.0.0.1:1 --advertise-client-urls http://127.0.0.1:1" +
		" --listen-peer-urls http://127.0.0.1:2 --initial-advertise-peer-urls http://127.0.0.1:2" +
		" --initial-cluster strata1=http://127.0.0.1:2,strata2=http://127.0.0.1:4,strata3=http://127.0.0.1:6" +
		" --initial-cluster-state new --initial-cluster-token tok --log-level warn --enable-pprof"
	if got != want {
		t.Fatalf("strata argv\n got %s\nwant %s", got, want)
	}
}

func TestAgreedLeader(t *testing.T) {
	ms := layout("m", "/d", 3, []int{1, 2, 3, 4, 5, 6})
	st := func(id, lead string) selfStats {
		var s selfStats
		s.ID, s.LeaderInfo.Leader = id, lead
		return s
	}
	if l := agreedLeader(ms, []selfStats{st("a", "b"), st("b", "b"), st("c", "b")}); l != ms[1] {
		t.Fatalf("leader = %v, want m2", l)
	}
	for _, stats := range [][]selfStats{
		{st("a", "b"), st("b", "b"), st("c", "a")}, // disagree
		{st("a", "0"), st("b", "0"), st("c", "0")}, // none
		{st("a", "z"), st("b", "z"), st("c", "z")}, // not a member
		{st("a", "b"), st("b", "b")},               // one did not answer
	} {
		if l := agreedLeader(ms, stats); l != nil {
			t.Errorf("%+v: leader %s, want none", stats, l.Name)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	o := &Options{Size: 3, Clients: []int{16}, Modes: []Mode{Spread, Leader}, Rounds: 3,
		Duration: 5 * time.Second, Warmup: time.Second, Keys: 1000, ValueSize: 64, DataRoot: "/data"}
	ms := time.Millisecond
	var samples []sample
	add := func(sys string, mode Mode, rps float64, p50, p99 time.Duration, failed int64) {
		samples = append(samples, sample{System: sys, Mode: mode, Clients: 16, RPS: rps, P50: p50, P99: p99, Failed: failed})
	}
	add("etcd", Spread, 9000, 2*ms, 5*ms, 0)
	add("etcd", Spread, 10000, 1*ms, 4*ms, 0)
	add("etcd", Spread, 8000, 3*ms, 6*ms, 0)
	add("strata", Spread, 13000, 1*ms, 3*ms, 1)
	add("strata", Spread, 12000, 1500*time.Microsecond, 3500*time.Microsecond, 0)
	add("strata", Spread, 14000, 1*ms, 3*ms, 2)
	add("etcd", Leader, 10000, 1*ms, 4*ms, 0)
	var out strings.Builder
	writeMarkdown(&out, o, []string{"etcd", "strata"}, samples, []string{"strata: member strata2 exited; log tail:\nboom"})
	got := out.String()
	// The CPU count line depends on the machine: check it, then drop it.
	lines := strings.Split(got, "\n")
	if !strings.HasPrefix(lines[3], "Keys 1000, value 64 B, CPUs ") || !strings.HasSuffix(lines[3], ", data root /data.") {
		t.Fatalf("line 4: %q", lines[3])
	}
	lines[3] = "Keys…"
	want := `
## 3-member Strata vs 3-member etcd, durable PUTs, 3 round(s) × 5s per run (+1s warmup), medians

Keys…

| clients | sent to | system | req/s (median) | req/s range | p50 ms | p99 ms | ÷ etcd req/s | failed reqs |
|---:|---|---|---:|---:|---:|---:|---:|---:|
| 16 | all members | etcd | 9000 | 8000–10000 | 2.000 | 5.000 | 1.00 | 0 |
| 16 | all members | strata | 13000 | 12000–14000 | 1.000 | 3.000 | 1.44 | 3 |
| 16 | leader only | etcd | 10000 | 10000–10000 | 1.000 | 4.000 | 1.00 | 0 |
| 16 | leader only | strata | – | – | – | – | – | – |

- strata: member strata2 exited; log tail:
  boom

`
	if g := strings.Join(lines, "\n"); g != want {
		t.Fatalf("markdown\n got:\n%s\nwant:\n%s", g, want)
	}
}
