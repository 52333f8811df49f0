package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape parses GET /metrics (Prometheus text format) into its families.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation) // strata_ names are legacy-valid
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric finds the series of family name whose labels include want
// ("k=v" pairs); nil if absent.
func metric(fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value (0 when absent), or a histogram's
// sample count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := metric(fams, name, labels...)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func mustStatus(t *testing.T, c *http.Client, method, u, body string, want int) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d", method, u, resp.StatusCode, want)
	}
}

// http10Put sends a PUT as HTTP/1.0, which the lean path leaves to
// net/http, so both paths are counted.
func http10Put(t *testing.T, base, key, value string) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "value=" + value
	fmt.Fprintf(c, "PUT /v2/keys%s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", key, u.Host, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("HTTP/1.0 PUT %s: %s", key, resp.Status)
	}
}

// TestMetrics scrapes a real member before and after traffic it causes
// and checks the series move by exactly that traffic, on every backend.
func TestMetrics(t *testing.T) {
	for _, be := range backendNames() {
		t.Run(be, func(t *testing.T) { testMetrics(t, be) })
	}
}

func testMetrics(t *testing.T, backend string) {
	base, _ := startLogged(t, io.Discard, "--data-dir", t.TempDir(), "--backend", backend, "--log-level", "error")
	c := &http.Client{}
	before := scrape(t, base) // also starts the key count
	keysReq := func(method, code string) []string {
		return []string{"endpoint=/v2/keys", "method=" + method, "code=" + code}
	}

	const leanPuts, slowPuts, misses = 20, 2, 3
	for i := range leanPuts {
		mustStatus(t, c, "PUT", fmt.Sprintf("%s/v2/keys/m/k%d", base, i), "value=v", 201)
	}
	for i := range slowPuts {
		http10Put(t, base, fmt.Sprintf("/m/h%d", i), "v")
	}
	for i := range misses {
		mustStatus(t, c, "GET", fmt.Sprintf("%s/v2/keys/nosuch%d", base, i), "", 404)
	}
	mustStatus(t, c, "PUT", base+"/v2/keys/m/w", "value=watched", 201)
	// A watch answered from history: the net/http path, its own endpoint.
	mustStatus(t, c, "GET", base+"/v2/keys/m/w?wait=true&waitIndex=1", "", 200)
	const puts = leanPuts + slowPuts + 1

	after := scrape(t, base)
	delta := func(name string, labels ...string) float64 {
		return value(after, name, labels...) - value(before, name, labels...)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"strata_http_requests_total", keysReq("PUT", "201"), puts},
		{"strata_http_requests_total", keysReq("GET", "404"), misses},
		{"strata_http_requests_total", []string{"endpoint=/v2/keys?wait=true", "method=GET", "code=200"}, 1},
		{"strata_http_requests_total", []string{"endpoint=/metrics", "method=GET", "code=200"}, 1}, // the first scrape
		{"strata_http_request_duration_seconds", []string{"endpoint=/v2/keys", "method=PUT"}, puts},
		{"strata_http_request_duration_seconds", []string{"endpoint=/v2/keys", "method=GET"}, misses},
		{"strata_store_events_total", nil, puts},
		{"strata_store_operations_total", []string{"op=set", "result=success"}, puts},
		{"strata_raft_proposals_failed_total", nil, 0},
		{"strata_raft_leader_changes_seen_total", nil, 0},
	} {
		if got := delta(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v moved by %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if d := delta("strata_raft_proposals_applied_total"); d < puts {
		t.Errorf("proposals applied moved by %v, want at least %d", d, puts)
	}
	if d := delta("strata_raft_proposals_committed_total"); d < puts {
		t.Errorf("proposals committed moved by %v, want at least %d", d, puts)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"strata_store_keys", nil, puts}, // m/k*, m/h*, m/w
		{"strata_store_directories", nil, 1},
		{"strata_raft_has_leader", nil, 1},
		{"strata_raft_is_leader", nil, 1},
		{"strata_raft_leader_changes_seen_total", nil, 1},
		{"strata_raft_proposals_pending", nil, 0},
		{"strata_store_watchers", nil, 0},
		{"strata_backend_info", []string{"backend=" + backend}, 1},
	} {
		if metric(after, tc.name, tc.labels...) == nil {
			t.Errorf("%s%v missing", tc.name, tc.labels)
		} else if got := value(after, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The log's fdatasyncs: one or more per write (group commit may share
	// them), each in exactly one bucket.
	fs := metric(after, "strata_wal_fsync_duration_seconds").GetHistogram()
	if fs.GetSampleCount() == 0 || fs.Bucket[len(fs.Bucket)-1].GetCumulativeCount() > fs.GetSampleCount() {
		t.Errorf("wal fsync histogram: count %d, buckets %v", fs.GetSampleCount(), fs.Bucket)
	}
	if value(after, "strata_wal_written_bytes_total") <= value(before, "strata_wal_written_bytes_total") {
		t.Error("wal bytes did not move")
	}
	if backend != "memory" && value(after, "strata_backend_size_bytes") == 0 {
		t.Errorf("%s backend size on disk is 0", backend)
	}
	if backend != "memory" {
		return
	}

	// An expiration: counted, with its lateness, and the key leaves the count.
	mustStatus(t, c, "PUT", base+"/v2/keys/ttl", "value=x&ttl=1", 201)
	for i := 0; ; i++ {
		resp, err := c.Get(base + "/v2/keys/ttl")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 {
			break
		}
		if i > 500 {
			t.Fatal("the TTL key never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	last := scrape(t, base)
	if got := value(last, "strata_store_expired_keys_total"); got != 1 {
		t.Errorf("expired keys = %v, want 1", got)
	}
	if got := value(last, "strata_store_expiry_lateness_seconds"); got != 1 {
		t.Errorf("expiry lateness samples = %v, want 1", got)
	}
	if got := value(last, "strata_store_keys"); got != puts {
		t.Errorf("keys after the expiry = %v, want %d", got, puts)
	}
	if got := value(last, "strata_store_events_total") - value(after, "strata_store_events_total"); got != 2 {
		t.Errorf("events moved by %v, want 2 (the set and the expiry)", got)
	}
}

// TestJSONLogs: --log-format json writes one JSON object per line with
// time, level and msg, and the state changes an operator cares about
// carry their details as keys.
func TestJSONLogs(t *testing.T) {
	var log syncBuffer
	base, _ := startLogged(t, &log, "--data-dir", t.TempDir(), "--log-format", "json", "--log-level", "debug", "--snapshot-count", "5")
	c := &http.Client{}
	for i := range 12 {
		mustStatus(t, c, "PUT", fmt.Sprintf("%s/v2/keys/k%d", base, i), "value=v", 201)
	}
	want := map[string][]string{
		"consensus: leader elected": {"member", "leader", "term"},
		"consensus: snapshot taken": {"member", "index", "term", "duration", "image"},
	}
	found := map[string]bool{}
	for i := 0; len(found) < len(want); i++ {
		if i > 500 {
			t.Fatalf("log lacks %v; it holds:\n%s", want, log.String())
		}
		time.Sleep(10 * time.Millisecond) // the snapshot is written off the raft loop
		for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q: %v", line, err)
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := rec[k]; !ok {
					t.Fatalf("log line %q lacks %q", line, k)
				}
			}
			keys, ok := want[rec["msg"].(string)]
			if !ok {
				continue
			}
			for _, k := range keys {
				if _, ok := rec[k]; !ok {
					t.Fatalf("%q line lacks %q: %s", rec["msg"], k, line)
				}
			}
			found[rec["msg"].(string)] = true
		}
	}
}

func TestLogFormatFlag(t *testing.T) {
	err := run(context.Background(), []string{"--data-dir", t.TempDir(), "--listen-client-urls", "http://127.0.0.1:0", "--log-format", "xml"}, io.Discard, io.Discard)
	if err == nil || err.Error() != `--log-format must be text or json, not "xml"` {
		t.Fatalf("--log-format xml: %v", err)
	}
}
